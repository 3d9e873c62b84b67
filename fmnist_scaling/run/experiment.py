"""What makes a run's experiment, and whether a run that continues is the same one.

A run continues where it stopped (``resume=<run dir>``, or a sweep re-run in its folder); its
history must then stay one experiment. Keys that do not change what a run computes (threads,
where the data lies, the progress bar) may differ; anything else is refused by name.

:data:`NOT_THE_EXPERIMENT` is the one list of such keys: the resume check reads it, and so does
the naming of sweep jobs' folders (``hydra.job.config.override_dirname.exclude_keys``, through
the ``not_the_experiment`` resolver), which also leaves out :data:`SAME_FOR_EVERY_JOB`.
To add such a key, add it here.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from fmnist_scaling.run import records
from fmnist_scaling.run.config_tree import flatten
from fmnist_scaling.run.migrate import upgrade_config
from fmnist_scaling.utils.errors import ConfigError
from fmnist_scaling.utils.log import log

#: Limits that stop a run before its plan: a stopped run resumes without them or with others,
#: each spell with its own limit.
LIMITS = ("trainer.max_time", "trainer.max_steps")
#: Config keys (and their subkeys) that do not change what a run computes: a resume may differ in them.
NOT_THE_EXPERIMENT = (
    "threads",
    "resume",
    "data.root",
    "data.local_copy",
    "data.download",
    "data.eval_batch_size",
    "trainer.enable_progress_bar",
    "trainer.accelerator",
    "callbacks.progress",
    *LIMITS,
)
#: Keys a run that continues may raise: a finished run extended to more epochs.
EXTENDABLE = ("trainer.max_epochs",)
#: Of those, the keys that say where the data is: a resume command repeats them, or it would
#: look for the data elsewhere.
LOCATE_THE_DATA = ("data.root", "data.local_copy", "data.download")
#: Overrides that a sweep gives every job alike: no part of a job's folder name.
SAME_FOR_EVERY_JOB = ("experiment", "launcher", "hydra.launcher.n_jobs")
#: What ``hydra.job.override_dirname`` leaves out (see the module's docstring).
NOT_IN_JOB_NAMES = NOT_THE_EXPERIMENT + SAME_FOR_EVERY_JOB


def harmless(key: str) -> bool:
    """Whether ``key`` (or a key above it) is not part of the experiment."""
    return any(key == k or key.startswith(k + ".") for k in NOT_THE_EXPERIMENT)


def override_key(override: str) -> str:
    return override.lstrip("+~").split("=", 1)[0]


def resume_overrides(overrides: list[str]) -> list[str]:
    """The overrides a resume repeats: those of the experiment, and those that locate the data."""
    return [o for o in overrides if not harmless(override_key(o)) or override_key(o) in LOCATE_THE_DATA]


def resume_command(run_dir: Path, overrides: list[str]) -> str:
    """The command that continues this run: its folder, the overrides that made its experiment
    and those that locate its data."""
    return f"python -m fmnist_scaling.train {shlex.join(['resume=' + str(run_dir), *resume_overrides(overrides)])}"


def previous_record(run_dir: Path, in_sweep: bool) -> dict[str, Any] | None:
    """The record of the run that this one continues, if its folder holds one. A file there that
    is not a record is never trusted: a sweep job sets it aside (with the rest of its run, nothing
    deleted) and runs anew; a single run (``resume=``) is refused, naming the file."""
    try:
        return records.read(run_dir)
    except records.RecordProblem as problem:
        if not in_sweep:
            raise ConfigError(f"{problem}; resume a run folder of fmnist_scaling, or move the file away") from None
        aside = records.set_aside(run_dir)
        log.warning(
            f"warning: {problem}; set it aside (with its checkpoints and event files) in {aside}, and the job runs anew"
        )
        return None


def no_run_to_resume(resume: str, run_dir: Path) -> str | None:
    """Why ``resume=<resume>`` (the folder ``run_dir``) cannot be resumed, or None."""
    if not (run_dir / records.LAST_CHECKPOINT).is_file():
        return f"resume={resume!r} is invalid: it must be a run directory holding {records.LAST_CHECKPOINT}"
    return None


def check_resume(cfg: DictConfig, run_dir: Path) -> None:
    """``resume=`` names a run folder whose last checkpoint loads."""
    if cfg.get("resume") is None:
        return
    from fmnist_scaling.run.checkpoint_io import load_checkpoint

    problem = no_run_to_resume(cfg.resume, run_dir)
    if problem:
        raise ConfigError(problem)
    load_checkpoint(run_dir / records.LAST_CHECKPOINT)


def check_same_experiment(
    cfg: DictConfig,
    run_dir: Path,
    previous: dict[str, Any] | None,
    in_sweep: bool,
    choices: dict[str, str],
    set_now: set[str],
) -> None:
    """A run that continues must be the experiment recorded in its folder, else its history
    would mix two. ``choices``: the config groups chosen now; ``set_now``: the keys overridden now
    (an option newer than the run's record is fine at its default, not when set)."""
    if not previous or "config" not in previous:
        return
    now, then = flatten(OmegaConf.to_container(cfg, resolve=True)), upgrade_config(flatten(previous["config"]))
    differs = sorted(
        k
        for k in now.keys() | then.keys()
        if now.get(k) != then.get(k) and not harmless(k) and (k in then or k in set_now) and not _raised(k, now, then)
    )
    if not differs:
        return
    # a different group choice (scaling=none) is named as such, not as the keys it changes
    choices_then = previous.get("choices", {})
    groups = sorted(g for g in choices if g in choices_then and choices[g] != choices_then[g])
    named = [f"{g}={choices[g]} (the run: {choices_then[g]})" for g in groups]
    in_groups = tuple(g.replace("/", ".") for g in groups)
    named += [
        f"{k}={now.get(k, '<unset>')} (the run: {then.get(k, '<unset>')})"
        for k in differs
        if not any(k == g or k.startswith(g + ".") for g in in_groups)
    ]
    shown = ", ".join(named[:4]) + (f" and {len(named) - 4} more" if len(named) > 4 else "")
    own = shlex.join(resume_overrides(previous.get("overrides", [])))
    if in_sweep:
        raise ConfigError(f"{run_dir} holds a run of other settings: {shown}; sweep into another hydra.sweep.dir")
    if cfg.get("resume") is None:  # hydra.run.dir named the folder of an earlier run
        raise ConfigError(
            f"{run_dir} already holds a run of other settings: {shown}; train into another hydra.run.dir, "
            f"or continue that run as it was: {resume_command(run_dir, previous.get('overrides', []))}"
        )
    raise ConfigError(
        f"resume={cfg.resume} is invalid: the run was trained with other settings: {shown}; "
        f"resume it with its own overrides: resume={cfg.resume} {own}".rstrip()
    )


def extends(cfg: DictConfig, previous: dict[str, Any] | None) -> int | None:
    """The epochs of a completed or stopped run that this one extends to more epochs, else None."""
    if not previous or previous.get("status") not in ("completed", "stopped"):
        return None
    then = (previous.get("config") or {}).get("trainer", {}).get("max_epochs")
    return then if isinstance(then, int) and cfg.trainer.max_epochs > then else None


def _raised(key: str, now: dict[str, Any], then: dict[str, Any]) -> bool:
    before, after = then.get(key), now.get(key)
    return key in EXTENDABLE and isinstance(before, int) and isinstance(after, int) and after > before


def chosen_groups() -> dict[str, str]:
    """The config-group choices of the run Hydra is running (``scaling: max``), Hydra's own left out."""
    from hydra.core.hydra_config import HydraConfig

    return {
        g: str(c) for g, c in HydraConfig.get().runtime.choices.items() if not g.startswith("hydra/") and c is not None
    }
