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


def user_path(text: str) -> Path:
    """A path typed on a command line (an argparse ``type``), ``~`` expanded: the shell expands
    ``--out ~/x`` but leaves ``--out=~/x`` as it is."""
    return Path(os.path.expanduser(text))


@contextlib.contextmanager
def atomic_file(target: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside ``target``; rename it onto ``target`` when the block ends
    without error, delete it when it does not. The file gets the mode any new file would (0666
    less the umask: mkstemp's own 0600 would hide records and data from other accounts), and an
    ``OSError`` names ``target`` (a write into an open file names none)."""
    target = Path(target)
    try:
        fd, partial = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial")
    except OSError as err:
        raise _naming(err, target) from None
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, mode) as f:
            yield f
        os.replace(partial, target)
    except BaseException as err:
        Path(partial).unlink(missing_ok=True)
        if isinstance(err, OSError) and not err.filename:
            raise _naming(err, target) from err
        raise


def current_umask() -> int:
    """The process's umask (reading it means setting it: set back at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _naming(err: OSError, target: Path) -> OSError:
    """``err`` as the same kind of error about ``target``."""
    return type(err)(err.errno, err.strerror, str(target)) if err.errno is not None else err
