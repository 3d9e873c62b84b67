"""One process at a time in a run folder: the same sweep started twice into one
``hydra.sweep.dir`` trained every job twice at the same moment (two sets of TensorBoard events,
``last-v1.ckpt`` beside ``last.ckpt``, an interleaved ``train.log``). A run holds an exclusive
lock on its folder itself (``flock`` on the directory: no file is added, and the lock goes with
the process, however it ends); a second process that finds it held trains nothing there."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

#: Set to another rank than 0 in the other processes of one distributed run (Lightning's DDP
#: children, the nodes of a multi-node run, SLURM's tasks): rank 0 holds the folder for all of them.
RANK_VARIABLES = ("LOCAL_RANK", "NODE_RANK", "SLURM_PROCID")


@contextlib.contextmanager
def only_writer(run_dir: Path) -> Iterator[bool]:
    """Hold ``run_dir``'s lock for the block; yields False (and holds nothing) where another
    process holds it. A distributed run's other ranks hold nothing and yield True."""
    if any(os.environ.get(name, "0") != "0" for name in RANK_VARIABLES):
        yield True
        return
    fd = os.open(run_dir, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held = True
    except BlockingIOError:
        held = False
    try:
        yield held
    finally:
        os.close(fd)  # and with it the lock
