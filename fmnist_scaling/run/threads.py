"""How many torch threads a run uses, and why.

Oversubscribed threads made steps 10-20x slower on a 2-core machine: jobs that run side by side
must share the cores, not each take all of them.
"""

from __future__ import annotations

import os
from typing import Any

from omegaconf import DictConfig

from fmnist_scaling.utils.log import log


def set_threads(cfg: DictConfig, launcher: Any, job: str | None = None) -> str:
    """Set torch's threads as :func:`choose_threads` says (a sweep's ``job`` says so in one line);
    returns why."""
    threads, reason = choose_threads(cfg, launcher)
    if threads:
        import torch

        torch.set_num_threads(threads)
        if job:
            log.info(f"{job}: {threads} torch thread(s) ({reason})")
    return reason


def usable_cores() -> int:
    """The cores this process may use (taskset, cgroups)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def choose_threads(cfg: DictConfig, launcher: Any) -> tuple[int | None, str]:
    """Torch threads per process and why: ``threads`` if set; else, under a launcher that runs
    jobs side by side on this machine, the cores shared among them; on a SLURM node, the cores
    given to the task; else torch's default, at most the cores this process may use (taskset,
    cgroups). ``launcher``: Hydra's ``hydra.launcher`` config. None: leave torch's default."""
    if cfg.get("threads"):
        return int(cfg.threads), f"threads={cfg.threads}"
    cores = usable_cores()
    target = str(launcher.get("_target_", "")).rsplit(".", 1)[-1]
    per_task = launcher.get("cpus_per_task")
    if target == "JoblibLauncher":
        jobs = launcher.get("n_jobs", -1)
        jobs = cores if jobs is None or jobs < 1 else min(jobs, cores)
        return max(1, cores // jobs), f"joblib launcher: {jobs} jobs side by side on {cores} cores"
    if target == "PacedLocalLauncher":  # hydra/launcher=paced_local: at most array_parallelism at once
        from hydra_plugins.fmnist_scaling_launcher import jobs_at_once

        if per_task:
            return int(per_task), f"submitit local launcher: hydra.launcher.cpus_per_task={per_task}"
        jobs = jobs_at_once(launcher.get("array_parallelism"), None)
        return max(1, cores // jobs), f"submitit local launcher: {jobs} jobs side by side on {cores} cores"
    if target == "LocalLauncher":  # submitit's own local executor starts every job of the sweep at once
        if per_task:
            return int(per_task), f"submitit local launcher: hydra.launcher.cpus_per_task={per_task}"
        return (
            1,
            f"submitit local launcher: every job at once on {cores} cores (hydra.launcher.cpus_per_task=N to change)",
        )
    if target == "RayLauncher":
        return 1, f"ray launcher: jobs side by side on {cores} cores"
    if per_task:  # SLURM and other cluster launchers: the task's own cores
        return int(per_task), f"hydra.launcher.cpus_per_task={per_task}"
    import torch

    if torch.get_num_threads() > cores:
        return cores, f"the {cores} cores this process may use"
    return None, "torch's default"
