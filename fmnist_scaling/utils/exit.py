"""The end of a command-line run."""

from __future__ import annotations

import atexit
import os
import sys


def exit_at_once() -> None:
    """End a command that finished well without Python's own teardown of torch and Lightning
    (1-2 s on 2 cores, every run and every sweep): what a normal exit would run first still runs
    (the ``atexit`` handlers: logging's flush, TensorBoard's writers, joblib's workers), the output
    is flushed, then the process ends with status 0. Only for the command-line entry points: a
    caller in the same process (a test, a notebook) gets a plain return from
    :func:`fmnist_scaling.run.cli.run`."""
    run_exitfuncs = getattr(atexit, "_run_exitfuncs", None)  # CPython's; elsewhere, exit normally
    if run_exitfuncs is None:
        return
    run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing left to say
            pass
    os._exit(0)
