"""Importing torch and Lightning without Python's garbage collector walking them again and again."""

from __future__ import annotations

import contextlib
import gc
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def heavy_imports() -> Iterator[None]:
    """Import torch and Lightning inside this block. Their import makes about 700,000 objects
    and almost no garbage (13,000 objects); Python's cyclic collector, run every few hundred new
    objects, walks the whole growing heap at each of its full passes: 0.8 s of the 4.3 s that
    ``import lightning.pytorch`` takes on 2 cores. So the collector is off during the block;
    then everything it made is frozen (``gc.freeze``: kept out of every later pass, the
    training's included) and the collector is switched back on.

    Only the first time in a process, when Lightning is not yet imported: later, the imports
    cost nothing, and a freeze would keep the garbage of whatever ran before (a previous job of
    a sweep: its model and data) for good."""
    if "lightning" in sys.modules:
        yield
        return
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()
