"""Files written whole or not at all.

Every file a run leaves for a later one (``metrics.json``, checkpoints, the decoded data cache,
unpacked IDX files, ``evaluation.json``) is written under a unique temporary name beside its
target and renamed onto it when complete: readers see the old file or the new one, never part of
one, and a full disk, a kill or a crash leaves no 0-byte or truncated file behind. The name is
unique per writer, so processes writing the same target at once never share a temporary file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


@contextlib.contextmanager
def atomic_file(target: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside ``target``; rename it onto ``target`` when the block ends
    without error, delete it when it does not."""
    target = Path(target)
    fd, partial = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial")
    try:
        with os.fdopen(fd, mode) as f:
            yield f
        os.replace(partial, target)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
