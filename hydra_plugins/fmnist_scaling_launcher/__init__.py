"""``hydra/launcher=paced_local``: submitit's local launcher, paced: at most ``array_parallelism`` jobs at once.

submitit's local executor starts every job of a sweep at once and ignores ``array_parallelism``
(only its SLURM executor reads it): on a 2-core machine a 12-job sweep then runs 12 processes that
import torch together and share 2 cores, 1.6x slower than the same sweep run 2 at a time. This
launcher keeps submitit's local executor (its job folders, logs, pickled results, timeouts) and
submits the next job as soon as one ends, so at most ``array_parallelism`` run at once; null: as
many as the cores allow (the cores this process may use over ``cpus_per_task``).

It lives in the ``hydra_plugins`` namespace because Hydra instantiates launchers only from there.
Its config, every field of submitit's plus ``array_parallelism``, has a name of its own:
``hydra/launcher=submitit_local`` stays submitit's own launcher, as its users expect. The config
is stored from a search-path plugin's hook, which Hydra calls after its plugin scan and before it
composes, so that it is there whatever the order of the scan.
"""

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Optional

from hydra.core.config_search_path import ConfigSearchPath
from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn
from hydra.plugins.search_path_plugin import SearchPathPlugin
from hydra_plugins.hydra_submitit_launcher.config import LocalQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import LocalLauncher


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def jobs_at_once(array_parallelism: int | None, cpus_per_task: int | None) -> int:
    """How many jobs run side by side: ``array_parallelism`` if set, else the cores this process
    may use shared out ``cpus_per_task`` (default 1) to a job."""
    if array_parallelism:
        return max(1, int(array_parallelism))
    return max(1, usable_cores() // max(1, int(cpus_per_task or 1)))


class PacedLocalLauncher(LocalLauncher):
    """submitit's ``LocalLauncher`` with a limit on the jobs that run at once."""

    def __init__(self, array_parallelism: int | None = None, **params: Any) -> None:
        super().__init__(**params)  # submitit's local executor would reject array_parallelism
        self.array_parallelism = jobs_at_once(array_parallelism, params.get("cpus_per_task"))

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        """Each job is submitted on its own by one of ``array_parallelism`` threads, which waits
        for it to end and takes the next: a sliding window, in the sweep's order."""
        if len(job_overrides) <= self.array_parallelism:
            return super().launch(job_overrides, initial_job_idx)

        def one(index: int) -> JobReturn:
            return super(PacedLocalLauncher, self).launch([job_overrides[index]], initial_job_idx + index)[0]

        with ThreadPoolExecutor(max_workers=self.array_parallelism) as pool:
            return list(pool.map(one, range(len(job_overrides))))


@dataclass
class PacedLocalQueueConf(LocalQueueConf):
    _target_: str = "hydra_plugins.fmnist_scaling_launcher.PacedLocalLauncher"
    #: Jobs that run at once; None: the cores this process may use over cpus_per_task.
    array_parallelism: Optional[int] = None  # noqa: UP045 - OmegaConf reads Optional


def store_config() -> None:
    ConfigStore.instance().store(
        group="hydra/launcher", name="paced_local", node=PacedLocalQueueConf(), provider="fmnist_scaling"
    )


class PacedLocalConfig(SearchPathPlugin):
    """Stores the paced config (``paced_local``) once every plugin has been imported."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        store_config()


store_config()
