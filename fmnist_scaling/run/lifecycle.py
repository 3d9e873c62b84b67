"""How a run ends when it does not end by finishing: signals, a rejected config, a failure.

- :class:`StopSignals`: Ctrl-C (SIGINT) and SIGTERM stop a training run at the next step
  boundary, through Lightning's SIGTERM path; before training they stop it at once (:class:`StopRun`).
- :func:`end_early`: a run that stops or fails during training records how it ended
  (``interrupted``, ``failed``), says so in one line with the resume command, and exits with its code.
- :func:`reject`: a run refused before training (bad input, a fault of the data, a signal)
  leaves no half-made folder behind; in a sweep the job records the failure and the sweep goes on.

Exit codes: :mod:`fmnist_scaling.utils.errors`.
"""

from __future__ import annotations

import logging
import math
import shutil
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fmnist_scaling.run import context, records
from fmnist_scaling.run.experiment import resume_command
from fmnist_scaling.utils.errors import EXIT_BAD_INPUT, EXIT_FAULT, SIGNAL_EXIT, BadInput, Fault, as_fault, full_error
from fmnist_scaling.utils.log import log


class StopRun(Exception):
    """SIGINT or SIGTERM before training started: nothing to record or resume yet."""

    def __init__(self, name: str) -> None:
        super().__init__(f"stopped by {name} before training started; nothing to resume")
        self.name = name
        self.exit_code = SIGNAL_EXIT[name]


def quiet_interrupts() -> None:
    """Ctrl-C that lands in a finalizer (a weakref's callback, as joblib's workers and the
    sweep's process wind down) is printed by Python as "Exception ignored in ..." with a
    traceback; the interrupt is handled where it matters, so that print is dropped."""

    def hook(unraisable: Any) -> None:
        if not isinstance(unraisable.exc_value, KeyboardInterrupt):
            sys.__unraisablehook__(unraisable)

    sys.unraisablehook = hook


class StopSignals:
    """Ctrl-C (SIGINT) ends a run as SIGTERM does: during training, the first one stops it at the
    next step boundary through Lightning's SIGTERM path (the last checkpoint stays, the record
    says ``interrupted``, the resume command is printed); a second one stops at once. Before
    training (no ``trainer`` yet), either signal stops the run at once (:class:`StopRun`).
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, job: str | None = None) -> None:
        self.job = f"{job}: " if job else ""  # a sweep's job names itself: several may stop at once
        self.trainer: Any = None
        self.received: str | None = None
        self.forwarding = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        quiet_interrupts()  # in a sweep's worker too, idle between jobs
        if threading.current_thread() is threading.main_thread():  # Python's rule for handlers
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.forwarding:  # the SIGTERM sent below, after Lightning's own handler saw it
            self.forwarding = False
            return
        name = signal.Signals(signum).name
        if self.trainer is None:
            raise StopRun(name)
        first = self.received is None
        self.received = self.received or name
        if not first:
            raise KeyboardInterrupt  # the second signal: at once (Lightning then exits)
        if signum == signal.SIGINT:
            log.warning(f"\n{self.job}stopping at the next step boundary (Ctrl-C again to stop at once)")
            # Lightning stops at a step boundary on SIGTERM: its handler, which runs before this
            # one while it trains or tests, sets trainer.received_sigterm. Ctrl-C is passed on as one.
            self.forwarding = True
            signal.raise_signal(signal.SIGTERM)


def end_early(
    err: BaseException,
    stop: StopSignals,
    run_dir: Path,
    in_sweep: bool,
    write: Callable[..., object],
    overrides: list[str],
) -> float:
    """Record how the run ended (``interrupted`` or ``failed``) with ``write(**fields)``, say it
    in one line, and exit with its code; a failed sweep job returns NaN instead so the sweep goes on."""
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    signal_name = stop.received or ("SIGTERM" if isinstance(err, SIGTERMException) else None)
    if in_sweep and signal_name != "SIGINT" and isinstance(err, (SystemExit, KeyboardInterrupt)):
        from fmnist_scaling.run import slurm  # only a run that ends early asks (every command imports this module)

        by_slurm = slurm.scheduler_stop()  # a SLURM job: requeued (it comes back by itself) or cancelled
        if by_slurm and (by_slurm.requeued or signal_name):
            note = _try_write(write, status="interrupted", error=by_slurm.error)
            (log.warning if by_slurm.requeued else log.error)(by_slurm.message(run_dir.parent, note))
            if by_slurm.requeued:  # no result for submitit: the job is not over
                raise err if signal_name is None else SystemExit(SIGNAL_EXIT[signal_name])
            return math.nan  # a result: the sweep goes on, its summary counts the job as stopped
    if signal_name and isinstance(err, (SystemExit, KeyboardInterrupt)):
        note = _try_write(write, status="interrupted", error=f"stopped by {signal_name}")
        if in_sweep:
            how = f"re-run the same sweep command with hydra.sweep.dir={run_dir.parent}"
        else:
            how = resume_command(run_dir, overrides)
        log.error(f"interrupted ({signal_name}){note}; resume with: {how}")
        sys.exit(SIGNAL_EXIT[signal_name])
    if isinstance(err, (SystemExit, KeyboardInterrupt)):
        raise err
    known = err if isinstance(err, (BadInput, Fault)) else as_fault(err, f"write the run's files in {run_dir}")
    message = str(known) if known else f"the run failed: {type(err).__name__}: {err}"
    note = _try_write(write, status="failed", error=message)
    _log_traceback(err)
    if full_error():
        raise err
    if (run_dir / records.LAST_CHECKPOINT).is_file():
        note += f"; resume with: {resume_command(run_dir, overrides)}"
    hint = "" if known else " (HYDRA_FULL_ERROR=1 shows the traceback; it is also in train.log)"
    log.error(f"error: {message}{hint}{note}")
    if in_sweep:
        return math.nan
    sys.exit(getattr(known, "exit_code", EXIT_FAULT))


def busy(run_dir: Path, in_sweep: bool) -> float:
    """Another process trains in ``run_dir``: a sweep job says so and goes on (NaN), a single run
    exits 2; nothing in the folder is touched."""
    message = f"{run_dir} is being trained by another process; this one leaves it to finish"
    if in_sweep:
        log.warning(f"warning: {message}")
        return math.nan
    log.error(f"error: {message}")
    sys.exit(EXIT_BAD_INPUT)


def reject(err: Exception, run_dir: Path, in_sweep: bool, previous: dict[str, Any] | None) -> float:
    """One line on stderr. A single run exits (2 for bad input, 3 for a fault, 130/143 for a
    signal) and leaves no half-made run folder behind; a sweep job records the failure (the
    summary lists it), unless its folder holds another run's record, and the sweep goes on."""
    log.error(f"error: {err}")
    code = getattr(err, "exit_code", EXIT_BAD_INPUT)
    if in_sweep and not isinstance(err, StopRun):
        if previous is None:
            try:
                records.write(run_dir, {"status": "failed", "error": str(err), "run_dir": str(run_dir)})
            except OSError:
                pass
        return math.nan
    run_files = (records.METRICS_FILE, records.CHECKPOINTS)  # a run's, even one whose record is damaged: left alone
    if previous is None and run_dir.is_dir() and not any((run_dir / name).exists() for name in run_files):
        # what Hydra wrote for this run goes, and so do the folders this run made (its own,
        # lightning_logs/runs); a folder that was there before stays, with the user's files
        shutil.rmtree(run_dir / ".hydra", ignore_errors=True)
        (run_dir / "train.log").unlink(missing_ok=True)
        for folder in context.command.made:
            try:
                folder.rmdir()
            except OSError:
                break  # not empty (another run's), or gone
    sys.exit(code)


def _try_write(write: Callable[..., object], **fields: Any) -> str:
    """Write the final record; what to add to the message if even that failed (a full disk)."""
    try:
        write(**fields)
        return ""
    except OSError as err:
        return f" (and {records.METRICS_FILE} could not be updated: {err.strerror})"


def _log_traceback(err: BaseException) -> None:
    """The traceback into the run's log file only (Hydra's ``train.log``), not onto the console."""
    import traceback

    text = "".join(traceback.format_exception(err))
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler) and handler.stream is not None:  # None: not opened yet
            try:
                handler.stream.write(text)
                handler.flush()
            except (OSError, ValueError):
                pass
