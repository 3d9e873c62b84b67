"""Checks of the composed config, run before any data is loaded or any result is written.

Hydra already rejects an unknown config-group choice (``scaling=foo``, ``model/optimizer=foo``)
and lists the choices; this module checks the values. Each failure is one line naming the key,
the bad value and what is allowed.
"""

from __future__ import annotations

import math
import os
from typing import Any

import torch
from omegaconf import DictConfig, ListConfig

from fmnist_scaling.data.sources import TRAIN_SIZE
from fmnist_scaling.models.networks import ACTIVATIONS, INITS, INPUT_NORMS
from fmnist_scaling.utils.errors import ConfigError

ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")
#: The largest seed numpy's and so Lightning's seeding takes (2^32 - 1).
MAX_SEED = 2**32 - 1


def _number(cfg: DictConfig, key: str, allowed: str, ok: Any, integer: bool = False) -> None:
    value = cfg
    for part in key.split("."):
        value = value[part]
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or (not integer and math.isnan(value)) or not ok(value):
        raise ConfigError(f"{key}={value!r} is invalid: {allowed}")


def validate(cfg: DictConfig) -> None:
    """Raise :class:`ConfigError` for the first bad value in ``cfg``."""
    _number(cfg, "seed", f"must be an integer in 0..{MAX_SEED}", lambda v: 0 <= v <= MAX_SEED, integer=True)
    if cfg.get("threads") is not None:  # null: torch's default, or the launcher's share of the cores
        _number(cfg, "threads", "must be an integer >= 1 (or null: torch's default)", lambda v: v >= 1, integer=True)
    _number(cfg, "model.optimizer.lr", "must be a finite number > 0", lambda v: 0 < v < math.inf)
    _number(cfg, "data.batch_size", "must be an integer >= 1", lambda v: v >= 1, integer=True)
    _number(cfg, "data.steps_per_batch", "must be an integer >= 1", lambda v: v >= 1, integer=True)
    if cfg.data.eval_batch_size is not None:  # null: the network's own choice
        _number(cfg, "data.eval_batch_size", "must be an integer >= 1 (or null)", lambda v: v >= 1, integer=True)
    _number(cfg, "data.probe_size", "must be an integer >= 1", lambda v: v >= 1, integer=True)
    _number(cfg, "trainer.max_epochs", "must be an integer >= 1", lambda v: v >= 1, integer=True)
    upper = TRAIN_SIZE - 1 if cfg.data.verify else math.inf  # own data: checked against its size at setup
    _number(
        cfg,
        "data.val_size",
        f"must be an integer in 0..{TRAIN_SIZE - 1} (0: train on all {TRAIN_SIZE:,})",
        lambda v: 0 <= v <= upper,
        integer=True,
    )
    net = cfg.model.net
    ours = str(net.get("_target_", "")).startswith(
        "fmnist_scaling.models.networks."
    )  # a network of your own checks its own
    for key in ("hidden", "channels"):  # the package's networks: widths
        if ours and key in net:
            widths = net[key]
            if (
                not isinstance(widths, (list, ListConfig))
                or not widths
                or any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in widths)
            ):
                raise ConfigError(
                    f"model.net.{key}={_show(widths)} is invalid: must be a non-empty list of integers >= 1, "
                    f"e.g. {[1000] if key == 'hidden' else [8, 16]}"
                )
    if ours and "activation" in net and net.activation not in ACTIVATIONS:
        raise ConfigError(
            f"model.net.activation={net.activation!r} is invalid: must be one of {', '.join(ACTIVATIONS)}"
        )
    for key, allowed in (("input_norm", INPUT_NORMS), ("init", INITS)):
        if cfg.model.get(key, allowed[0]) not in allowed:
            raise ConfigError(f"model.{key}={cfg.model[key]!r} is invalid: must be one of {', '.join(allowed)}")
    if "gain" in cfg:  # +experiment=scale_law
        _number(
            cfg, "gain", "must be a finite number > 0 (the input gain; 255: raw pixels)", lambda v: 0 < v < math.inf
        )
    for key in ("first_layer_init_scale", "first_layer_lr_scale"):
        if key in cfg.model:
            _number(
                cfg,
                f"model.{key}",
                "must be a finite number > 0 (1.0: the ordinary network)",
                lambda v: 0 < v < math.inf,
            )
    if not isinstance(cfg.model.get("fused_step", True), bool):
        raise ConfigError(f"model.fused_step={cfg.model.fused_step!r} is invalid: must be true or false")
    for key in ("eps", "max_value"):
        if key in cfg.scaling:
            _number(cfg, f"scaling.{key}", "must be a finite number > 0", lambda v: 0 < v < math.inf)
    _check_accelerator(cfg.trainer.accelerator, cfg.trainer.get("devices", "auto"))


def _check_accelerator(accelerator: str, devices: Any) -> None:
    if accelerator not in ACCELERATORS:
        raise ConfigError(f"trainer.accelerator={accelerator!r} is invalid: must be one of {', '.join(ACCELERATORS)}")
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


def _show(value: Any) -> str:
    return str(list(value)) if hasattr(value, "__iter__") and not isinstance(value, str) else repr(value)
