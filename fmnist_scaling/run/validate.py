"""Checks of the composed config, run before any data is loaded or any result is written.

Hydra already rejects an unknown config-group choice (``scaling=foo``, ``model/optimizer=foo``)
and lists the choices; :mod:`fmnist_scaling.run.schema` checks every leaf's value against its
rule; this module adds the checks that involve two keys or the machine. Each failure is one line
naming the key, the bad value and what is allowed. torch is imported only to count a GPU that
was asked for.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from fmnist_scaling.data.datasets import dataset_class
from fmnist_scaling.data.splits import check_val_size
from fmnist_scaling.models.gain import factors_for
from fmnist_scaling.run.experiment import check_resume, check_same_experiment, chosen_groups, override_key
from fmnist_scaling.run.schema import MAX_SEED, check_leaves
from fmnist_scaling.utils.errors import ConfigError

__all__ = ["MAX_SEED", "check_run", "validate"]


def check_run(
    cfg: DictConfig, run_dir: Path, previous: dict[str, Any] | None, in_sweep: bool, overrides: list[str]
) -> None:
    """Every check of a run before it starts: its config, then its folder (a resume, another
    experiment's record); raises :class:`BadInput` for the first problem. ``overrides``: the
    command line's (Hydra's ``overrides.task``)."""
    validate(cfg)
    check_resume(cfg, run_dir)
    set_now = {override_key(o) for o in overrides}
    check_same_experiment(cfg, run_dir, previous, in_sweep, chosen_groups(), set_now)


def validate(cfg: DictConfig, before_hydra: bool = False) -> None:
    """Raise :class:`ConfigError` for the first bad value in ``cfg``. ``before_hydra``: the
    check of :mod:`fmnist_scaling.run.cli`, where values that only Hydra's run resolves are left
    for the check inside the run."""
    check_leaves(cfg, skip_unresolved=before_hydra)
    dataset = dataset_class(OmegaConf.select(cfg, "data.dataset._target_", default=None))
    if cfg.data.verify:  # unverified data: checked against the images at setup
        check_val_size(cfg.data.val_size, dataset.train_size, dataset.name)
    if cfg.model.get("first_layer_gain", 1.0) != 1.0:  # an input gain as parameters: known optimizers only
        factors_for(str(cfg.model.optimizer._target_))
    _check_accelerator(cfg.trainer.accelerator, cfg.trainer.get("devices", "auto"))


def _check_accelerator(accelerator: str, devices: Any) -> None:
    if accelerator in ("auto", "cpu") and devices in ("auto", -1, "-1"):
        return  # nothing to count: no torch needed
    import torch

    available = {
        "gpu": torch.cuda.device_count(),
        "cuda": torch.cuda.device_count(),
        "mps": int(torch.backends.mps.is_available()),
        "cpu": os.cpu_count() or 1,
    }
    if accelerator in ("gpu", "cuda", "mps") and available[accelerator] == 0:
        raise ConfigError(
            f"trainer.accelerator={accelerator!r} is invalid: no {accelerator} device on this machine; use auto or cpu"
        )
    if devices in ("auto", -1, "-1"):
        return
    if isinstance(devices, str) and devices.isdigit():
        devices = int(devices)
    if not isinstance(devices, int) or isinstance(devices, bool) or devices < 1:
        return  # a list of device ids or another form Lightning understands: Lightning checks it
    kind = accelerator if accelerator != "auto" else ("gpu" if available["gpu"] else "cpu")
    if devices > available[kind]:
        raise ConfigError(f"trainer.devices={devices} is invalid: this machine has {available[kind]} {kind} device(s)")
