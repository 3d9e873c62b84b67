"""SLURM through Hydra's submitit launcher (``+launcher=slurm``): what this project adds to it.

- :class:`SlurmSweep`, a Hydra callback of ``conf/launcher/slurm.yaml``, in the sweep's own
  process. On a cluster that keeps no job accounting, submitit asks ``sacct`` for its jobs'
  states, which fails on every poll (three lines each time), and a job that ends without a result
  (cancelled, killed) is never seen to end: the sweep waited for ever. There the states come from
  ``squeue`` (:func:`queue_watcher`), said once. When the sweep ends, the jobs that did not finish
  are named, with how to complete them.
- :func:`scheduler_stop`, in a job: whether SLURM, having stopped the run, is requeuing the job
  (``scontrol requeue``, a preemption, submitit at the time limit: it starts again by itself and
  resumes from its last checkpoint) or ending it (``scancel``, the time limit): the run's record
  and its log line say which (:func:`fmnist_scaling.run.lifecycle.end_early`).

Which signal handler does what under SLURM: docs/configuration.md, "SLURM".
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from fmnist_scaling.utils.log import log

#: squeue's states of a job that is not over (submitit's list, and the other transient ones).
NOT_OVER = (
    "PENDING",
    "CONFIGURING",
    "RUNNING",
    "COMPLETING",
    "REQUEUED",
    "REQUEUE_HOLD",
    "REQUEUE_FED",
    "RESIZING",
    "SIGNALING",
    "STAGE_OUT",
    "SUSPENDED",
    "STOPPED",
    "PREEMPTED",
    "READY",
    "UNKNOWN",
)
#: The state given to a job that squeue no longer lists: it ended, MinJobAge ago or more.
GONE = "ENDED_NOT_IN_QUEUE"


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def keeps_accounting() -> tuple[bool | None, str]:
    """Whether the cluster keeps job accounting (``sacct`` has records), and its setting;
    None where ``scontrol`` cannot tell (no SLURM here, or no controller answers)."""
    try:
        proc = _run("scontrol", "show", "config")
    except (OSError, subprocess.SubprocessError):
        return None, ""
    setting = next((line for line in proc.stdout.splitlines() if line.startswith("AccountingStorageType")), "")
    if proc.returncode != 0 or not setting:
        return None, ""
    value = setting.split("=", 1)[-1].strip()
    return value != "accounting_storage/none", f"AccountingStorageType={value}"


def queue_watcher(poll_s: float = 30.0) -> Any:
    """A :class:`QueueWatcher` (its class made on first use: submitit is imported only by a SLURM sweep)."""
    from submitit.slurm.slurm import SlurmInfoWatcher

    class QueueWatcher(SlurmInfoWatcher):
        """submitit's watch over its jobs' states, from ``squeue``. squeue lists a job while it is
        queued or running and for ``MinJobAge`` (300 s by default) after it ended; a job it no
        longer lists has ended (:data:`GONE`). Polls come 2 s apart at first, then further
        apart as the wait grows, at most ``poll_s`` (under MinJobAge)."""

        def __init__(self, poll_s: float = 30.0) -> None:
            super().__init__(delay_s=int(poll_s))
            self.poll_s = poll_s
            self.states: dict[str, str] = {}
            self.watched: set[str] = set()
            self.since = self.polled_at = 0.0

        def register_job(self, job_id: str) -> None:
            super().register_job(job_id)
            self.watched.add(job_id)
            self.since, self.polled_at = time.monotonic(), 0.0

        def get_info(self, job_id: str, mode: str = "standard") -> dict[str, str]:
            if job_id not in self.watched:
                self.register_job(job_id)
            now = time.monotonic()
            wait = 0.0 if mode == "force" else min(self.poll_s, max(2.0, (now - self.since) / 2))
            if mode != "cache" and now - self.polled_at >= wait:
                self.update()
            state = self.states.get(job_id)
            return {"State": state} if state else {}

        def update(self) -> None:
            """Every watched job that is not over, from one squeue call."""
            open_jobs = sorted(j for j in self.watched if self.states.get(j, "PENDING") in NOT_OVER)
            if not open_jobs:
                return
            main_ids = sorted({j.split("_")[0] for j in open_jobs})
            try:
                proc = _run(
                    "squeue", "--noheader", "--array", "--states=all", "--format=%i|%T", "--jobs=" + ",".join(main_ids)
                )
            except (OSError, subprocess.SubprocessError):
                return  # asked again at the next poll
            self.polled_at = time.monotonic()
            if proc.returncode != 0 and "Invalid job id" not in proc.stderr:  # one id asked, and it is gone
                return
            listed = dict(line.split("|", 1) for line in proc.stdout.split() if "|" in line)
            for job in open_jobs:
                self.states[job] = listed.get(job, GONE)

        def clear(self) -> None:
            super().clear()
            self.states.clear()

    return QueueWatcher(poll_s)


class SlurmSweep(Callback):
    """Hydra callback of ``+launcher=slurm`` (``hydra.callbacks.slurm``), in the sweep's process."""

    def __init__(self, poll_s: float = 30.0) -> None:
        self.poll_s = poll_s

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """On a cluster without accounting: job states from squeue, said in one line."""
        accounting, setting = keeps_accounting()
        if accounting is not False:
            return  # sacct answers (or no controller does: sbatch will say so)
        from submitit.slurm.slurm import SlurmJob

        SlurmJob.watcher = queue_watcher(self.poll_s)
        log.info(f"SLURM keeps no job accounting here ({setting}): the sweep reads its jobs' states from squeue")

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """Name the jobs that did not finish (cancelled, failed): the same command continues them."""
        from fmnist_scaling.run import records
        from fmnist_scaling.tools.report import load_jobs

        sweep_dir = Path(str(config.hydra.sweep.dir))
        try:
            jobs = load_jobs(sweep_dir)
        except OSError:
            return
        unfinished = [j for j in jobs if (j["record"] or {}).get("status") not in records.FINISHED]
        if unfinished:
            named = ", ".join(f"{j['dir'].name} ({(j['record'] or {}).get('status', 'no record')})" for j in unfinished)
            log.warning(
                f"{len(unfinished)} of {len(jobs)} jobs did not finish: {named}; re-run the same sweep command "
                f"with hydra.sweep.dir={sweep_dir} to continue them"
            )


@dataclass(frozen=True)
class SchedulerStop:
    """What SLURM does to the job whose run it stopped: ``requeued`` (it starts again by
    itself) or not (cancelled, out of time); ``job``: its id as squeue shows it."""

    requeued: bool
    job: str

    @property
    def error(self) -> str:
        """The record's ``error`` field."""
        return f"requeued by SLURM (job {self.job})" if self.requeued else f"cancelled by SLURM (job {self.job})"

    def message(self, sweep_dir: Path, note: str = "") -> str:
        """The job's log line (``note``: that the record could not be written)."""
        if self.requeued:
            return f"requeued by SLURM (job {self.job}){note}: it starts again by itself, from its last checkpoint"
        return (
            f"cancelled by SLURM (job {self.job}: scancel, or its time limit){note}; not finished: re-run the same "
            f"sweep command with hydra.sweep.dir={sweep_dir} to complete it"
        )


def scheduler_stop() -> SchedulerStop | None:
    """In a job of the submitit SLURM launcher whose run stopped: whether SLURM is requeuing it
    (its restart count, as ``scontrol`` has it now, is above the one this run started with:
    ``scontrol requeue`` counts at once, before it signals the job). None outside such a job, or
    where ``scontrol`` cannot tell."""
    job_id = os.environ.get("SLURM_JOB_ID")
    if os.environ.get("SUBMITIT_EXECUTOR") != "slurm" or not job_id:
        return None
    # SLURM's SIGTERM reaches every process of the job, this scontrol too when it comes late (after
    # submitit's own requeue): scontrol ignores it, and is asked again if a signal still ended it
    ask = ["sh", "-c", 'trap "" TERM; exec scontrol show job --oneliner "$0"', job_id]
    for _ in range(3):
        try:
            proc = _run(*ask)
        except (OSError, subprocess.SubprocessError):
            return None
        if proc.returncode >= 0:
            break
    fields = dict(word.split("=", 1) for word in proc.stdout.split() if "=" in word)
    if proc.returncode != 0 or not fields.get("Restarts", "").isdigit():
        return None
    this_run = int(os.environ.get("SLURM_RESTART_COUNT") or 0)
    array_job, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    shown = f"{array_job}_{task}" if array_job and task else job_id
    return SchedulerStop(requeued=int(fields["Restarts"]) > this_run, job=shown)
