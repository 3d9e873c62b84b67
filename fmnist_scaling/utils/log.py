"""The project's log lines: one logger, its messages printed as they are (no time or level
prefix), informative lines on stdout, warnings and errors on stderr, by rank zero only, and also
into Hydra's ``train.log`` of the run.

``log.info`` for what a run is doing (resuming, skipped, threads, the summary), ``log.warning`` for
a repaired problem or a notice that belongs on stderr, ``log.error`` for the one line that says
why a command failed. What a tool prints as its product (the benchmark's table, a reference
loop's JSON, the GPU check's report) stays plain ``print``: it is output, not a log line.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

log = logging.getLogger("fmnist_scaling")


class _Console(logging.StreamHandler):
    """A handler that writes to ``sys.<name>`` as it is at each message (tests and tools replace it)."""

    def __init__(self, name: str, keep: Callable[[logging.LogRecord], bool] | None = None) -> None:
        super().__init__()
        self._name = name
        if keep is not None:
            self.addFilter(keep)

    @property
    def stream(self):  # noqa: ANN201 - whatever sys.stdout or sys.stderr is now
        return getattr(sys, self._name)

    @stream.setter
    def stream(self, value: object) -> None:  # StreamHandler.__init__ sets it; the property wins
        pass


def _rank_zero(record: logging.LogRecord) -> bool:
    """Under DDP every rank runs the same code: only rank zero speaks (Lightning's rank, where known)."""
    rank_zero = sys.modules.get("lightning_utilities.core.rank_zero")
    return getattr(getattr(rank_zero, "rank_zero_only", None), "rank", 0) == 0


log.setLevel(logging.INFO)
log.propagate = False  # Hydra's console handler would print each line a second time, prefixed
log.addFilter(_rank_zero)
_plain = logging.Formatter("%(message)s")
for _handler in (
    _Console("stdout", lambda r: r.levelno < logging.WARNING),
    _Console("stderr", lambda r: r.levelno >= logging.WARNING),
):
    _handler.setFormatter(_plain)
    log.addHandler(_handler)


def follow_hydra_files() -> None:
    """Send the project's and Lightning's lines to the log files Hydra set up for this job
    (``train.log``), once each. Each job of a sweep in one process has its own file: the file
    handlers follow the root logger's."""
    root = logging.getLogger()
    files = [h for h in root.handlers if isinstance(h, logging.FileHandler)]
    for logger in (log, logging.getLogger("lightning")):
        for handler in [h for h in logger.handlers if isinstance(h, logging.FileHandler) and h not in files]:
            logger.removeHandler(handler)
        for handler in [h for h in files if h not in logger.handlers]:
            logger.addHandler(handler)


def quiet_lightning() -> None:
    """Drop Lightning's notices that say nothing about a run here (an advert, a deprecation
    inside Lightning, a per-step logging interval this project does not use, the warning that a
    resumed run's own checkpoint folder is not empty, the hint to use srun), and print each of its
    lines once."""
    import warnings

    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
    warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
    # on any machine with SLURM's srun (a login node), every run got a hint to prepend srun: this
    # project reaches SLURM through the submitit launcher, which starts its jobs with srun itself
    warnings.filterwarnings("ignore", message="The `srun` command is available on your system")
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(lambda r: "litlogger" not in r.getMessage())
    # Ctrl-C reaches Lightning as SIGTERM (run/lifecycle.py), which it notes in a line of its own
    signals = "lightning.pytorch.trainer.connectors.signal_connector"
    logging.getLogger(signals).addFilter(lambda r: "Received SIGTERM" not in r.getMessage())
    # Lightning's top logger prints its lines itself ("INFO: ..."); where Hydra has set up logging
    # they would also reach Hydra's console handler, twice in all. Keep Lightning's short line
    # on the console, and send the lines to Hydra's log files (train.log) too.
    if logging.getLogger().handlers:
        logging.getLogger("lightning").propagate = False
        follow_hydra_files()
