"""The end of a command-line run."""

from __future__ import annotations

import atexit
import os
import sys
import threading


def exit_at_once() -> None:
    """End a command that finished well without Python's own teardown of torch and Lightning
    (1-2 s on 2 cores, every run and every sweep): what a normal exit would run first still runs
    (the threading module's exit callbacks and the joining of non-daemon threads, then the
    ``atexit`` handlers: logging's flush, TensorBoard's writers, joblib's workers), the output
    is flushed, then the process ends with status 0. Only for the command-line entry points: a
    caller in the same process (a test, a notebook) gets a plain return from
    :func:`fmnist_scaling.run.cli.run`."""
    # CPython's own first steps of an exit, in its order; elsewhere, exit normally
    join_threads = getattr(threading, "_shutdown", None)
    run_exitfuncs = getattr(atexit, "_run_exitfuncs", None)
    if join_threads is None or run_exitfuncs is None:
        return
    # the threading module's exit callbacks, then the non-daemon threads joined: joblib's process
    # pool is told to stop here, and without it its atexit handler waits out the workers' idle
    # timeout (300 s at the end of every +launcher=parallel sweep)
    join_threads()
    run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing left to say
            pass
    os._exit(0)
