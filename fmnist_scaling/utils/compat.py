"""The project's only reaches into other libraries' private parts.

Each one buys something a user feels, was written for the releases in :data:`WRITTEN_FOR`, and
falls back to a public path (slower, same result) on any other release.
``tests/test_compat.py`` fails on a release not listed here, and runs each fallback.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from collections.abc import Callable
from importlib.metadata import version
from typing import Any, TypeVar

T = TypeVar("T")

#: What each shim was written for: a distribution's major.minor release, or CPython's.
WRITTEN_FOR = {"lightning": "2.6", "python": "3.11"}


def _written_for(name: str) -> bool:
    installed = "{}.{}".format(*sys.version_info[:2]) if name == "python" else version(name)
    return installed == WRITTEN_FOR[name] or installed.startswith(WRITTEN_FOR[name] + ".")


#: Read once: the fused step asks at every step (a metadata read is 1 ms: 8 s of a 5-epoch run).
STEP_HOOKS = _written_for("lightning")


def counted_step(optimizer: Any, update: Callable[[], T], private: bool | None = None) -> T:
    """Run ``update()``, a parameter update made without the optimizer (the fused SGD step), as
    one step of Lightning's ``optimizer`` (a ``LightningOptimizer``): ``global_step`` counts it.

    Private: the step hooks that ``LightningOptimizer.step`` runs around the optimizer's step.
    Public fallback: ``optimizer.step(closure=update)``: the optimizer runs the closure and then
    finds no gradient to apply (the same weights and count, ``tests/test_compat.py``); it also
    runs Lightning's optimizer-step machinery and ``on_before_optimizer_step`` hooks each step."""
    if private is None:
        private = STEP_HOOKS
    if private:
        optimizer._on_before_step()
        result = update()
        optimizer._on_after_step()
        return result
    results: list[T] = []
    optimizer.step(closure=lambda: results.append(update()))
    return results[0]


def exit_without_teardown(private: bool | None = None) -> None:
    """End a command that finished well without CPython's teardown of torch and Lightning (1-2 s
    on 2 cores, every run and sweep). What a normal exit runs first still runs, in its order: the
    threading module's exit callbacks and the joining of non-daemon threads (joblib's process pool
    is told to stop there; without it, its ``atexit`` handler waits out the workers' idle
    timeout, 300 s), then the ``atexit`` handlers (logging's flush, TensorBoard's writers); then
    the output is flushed and the process ends with status 0.

    Private: ``threading._shutdown`` and ``atexit._run_exitfuncs``, CPython's first steps of an
    exit. Fallback: return, and Python exits as usual (with its teardown)."""
    if private is None:
        private = _written_for("python")
    join_threads = getattr(threading, "_shutdown", None)
    run_exitfuncs = getattr(atexit, "_run_exitfuncs", None)
    if not private or join_threads is None or run_exitfuncs is None:
        return
    join_threads()
    run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing left to say
            pass
    os._exit(0)
