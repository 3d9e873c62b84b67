"""The schema of the composed config: for every leaf, the values it may take.

One table (:data:`SCHEMA`, key pattern → :class:`Rule`) says for each key what it accepts: its
type, range or choices, and whether null means something. :func:`check_leaves` walks every leaf
of a composed config and checks it against the table; :mod:`fmnist_scaling.run.validate` adds the
checks that involve two keys or the machine. A test composes the config with every group
option and asserts that every leaf has a rule, so a new key cannot go unchecked.

Subtrees built by a class of your own (``data.dataset``, ``model.net``, ``scaling``, a callback whose ``_target_`` is
outside this package and Lightning) check their own arguments: only their ``_target_`` is checked
here. Keys added with ``+`` under a known subtree, with no rule, go to the class they configure.

Nothing here imports torch: the checks run before a run starts, in well under a second.
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from fmnist_scaling.models.options import ACTIVATION_NAMES, INITS, INPUT_NORMS
from fmnist_scaling.utils.errors import ConfigError

#: The largest seed numpy's and so Lightning's seeding takes (2^32 - 1).
MAX_SEED = 2**32 - 1
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")
#: Lightning's precision names (``trainer.precision``), null: its default (32-true).
PRECISIONS = (
    "64-true", "64", 64, "32-true", "32", 32, "16-true", "16-mixed", "16", 16,
    "bf16-true", "bf16-mixed", "bf16", "transformer-engine", "transformer-engine-float16",
)  # fmt: skip
#: Subtrees whose class, when it is your own, checks its own arguments.
PLUGGABLE = ("data.dataset", "scaling", "model.net", "callbacks.*", "logger")
#: The packages whose classes the rules below are written for.
KNOWN_PACKAGES = ("fmnist_scaling.", "lightning.", "pytorch_lightning.", "torch.optim.")


@dataclass(frozen=True)
class Rule:
    """What one key accepts: ``allowed`` says it in words (the error message), ``ok`` checks a
    resolved value (a plain Python value: lists as lists, mappings as dicts)."""

    allowed: str
    ok: Callable[[Any], bool]

    def __or__(self, other: Rule) -> Rule:
        return Rule(f"{self.allowed}, or {other.allowed}", lambda v: self.ok(v) or other.ok(v))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)


def integer(low: int | None = None, high: int | None = None) -> Rule:
    if low is not None and high is not None:
        words = f"an integer in {low}..{high}"
    else:
        words = "an integer" + (f" >= {low}" if low is not None else "")
    return Rule(
        words,
        lambda v: _is_int(v) and (low is None or v >= low) and (high is None or v <= high),
    )


def number(low: float = 0.0, low_open: bool = True, high: float = math.inf) -> Rule:
    """A finite number above ``low`` (or at it, with ``low_open=False``), at most ``high``."""
    above = f"> {low:g}" if low_open else f">= {low:g}"
    words = f"a finite number {above}" + (f" and <= {high:g}" if high < math.inf else "")
    return Rule(
        words,
        lambda v: _is_number(v) and math.isfinite(v) and (v > low if low_open else v >= low) and v <= high,
    )


def fraction() -> Rule:
    return Rule("a fraction in 0.0..1.0", lambda v: isinstance(v, float) and 0.0 <= v <= 1.0)


def boolean() -> Rule:
    return Rule("true or false", lambda v: isinstance(v, bool))


def choice(*values: Any) -> Rule:
    return Rule(
        f"one of {', '.join(dict.fromkeys(str(v) for v in values))}",
        lambda v: not isinstance(v, (bool, list, dict)) and v in values,
    )


def null(meaning: str) -> Rule:
    return Rule(f"null ({meaning})", lambda v: v is None)


def path() -> Rule:
    # Hydra reads data.root=2024 as an integer: a folder name all the same
    return Rule("a path", lambda v: (isinstance(v, str) and v != "") or _is_int(v))


def target() -> Rule:
    return Rule(
        "a dotted class path, e.g. fmnist_scaling.models.networks.MLP",
        lambda v: isinstance(v, str) and re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+", v) is not None,
    )


def widths(example: str) -> Rule:
    return Rule(
        f"a non-empty list of integers >= 1, e.g. {example}",
        lambda v: isinstance(v, list) and len(v) > 0 and all(_is_int(h) and h >= 1 for h in v),
    )


def anything() -> Rule:
    """A value the class it configures checks (a list of plugins, a strategy object)."""
    return Rule("anything its class accepts", lambda v: True)


def max_time() -> Rule:
    clock = re.compile(r"\d+:\d{1,2}:\d{1,2}:\d{1,2}")
    units = {"days", "hours", "minutes", "seconds", "milliseconds", "microseconds", "weeks"}
    return Rule(
        'a duration "DD:HH:MM:SS" or a mapping like {hours: 1}',
        lambda v: (
            (isinstance(v, str) and clock.fullmatch(v) is not None)
            or (
                isinstance(v, dict)
                and v
                and set(v) <= units
                and all(_is_number(x) and math.isfinite(x) and x >= 0 for x in v.values())
            )
        ),
    )


_BATCHES = integer(0) | fraction() | null("all of them")
_FLAG = boolean() | null("Lightning's default")
_POSITIVE = number()

SCHEMA: dict[str, Rule] = {
    # the run
    "seed": integer(0, MAX_SEED),
    "threads": integer(1) | null("torch's default, or the launcher's share of the cores"),
    "resume": path() | null("a new run"),
    "gain": Rule(number().allowed + " (the input gain; 255: raw pixels)", number().ok),
    # data
    "data._target_": target(),
    "data.dataset._target_": target(),
    "data.root": path(),
    "data.local_copy": path() | null("no local copy"),
    "data.download": boolean(),
    "data.verify": boolean(),
    "data.val_size": integer(0),
    "data.split_seed": integer(0, MAX_SEED),
    "data.batch_size": integer(1),
    "data.steps_per_batch": integer(1),
    "data.eval_batch_size": integer(1) | null("the network's own choice"),
    "data.eval_train": boolean(),
    "data.probe_size": integer(1),
    "data.seed": integer(0, MAX_SEED),
    # scaling
    "scaling._target_": target(),
    "scaling.max_value": _POSITIVE,
    "scaling.eps": _POSITIVE,
    # model
    "model._target_": target(),
    "model.num_classes": integer(2),
    "model.input_norm": choice(*INPUT_NORMS),
    "model.init": choice(*INITS),
    "model.fused_step": boolean(),
    "model.first_layer_init_scale": Rule(_POSITIVE.allowed + " (1.0: the ordinary network)", _POSITIVE.ok),
    "model.first_layer_lr_scale": Rule(_POSITIVE.allowed + " (1.0: the ordinary network)", _POSITIVE.ok),
    "model.first_layer_gain": Rule(_POSITIVE.allowed + " (an input gain as parameters; 1.0: none)", _POSITIVE.ok),
    "model.optimizer._target_": target(),
    "model.optimizer.lr": _POSITIVE,
    "model.optimizer.momentum": number(0.0, low_open=False),
    "model.optimizer.dampening": number(0.0, low_open=False),
    "model.optimizer.weight_decay": number(0.0, low_open=False),
    "model.optimizer.nesterov": boolean(),
    "model.optimizer.amsgrad": boolean(),
    "model.optimizer.eps": _POSITIVE,
    "model.optimizer.betas": Rule(
        "two numbers in [0, 1), e.g. [0.9, 0.999]",
        lambda v: isinstance(v, list) and len(v) == 2 and all(_is_number(b) and 0 <= b < 1 for b in v),
    ),
    "model.net._target_": target(),
    "model.net.in_features": integer(1),
    "model.net.hidden": widths("[1000]"),
    "model.net.channels": widths("[8, 16]"),
    "model.net.image_size": integer(1),
    "model.net.num_classes": integer(2),
    "model.net.activation": choice(*ACTIVATION_NAMES),
    # trainer: Lightning's Trainer arguments
    "trainer._target_": target(),
    "trainer.accelerator": choice(*ACCELERATORS),
    "trainer.devices": integer(1) | choice("auto", -1) | Rule("a list of device ids", lambda v: isinstance(v, list)),
    "trainer.strategy": Rule("a strategy name, e.g. auto or ddp", lambda v: isinstance(v, str) and v != ""),
    "trainer.num_nodes": integer(1),
    "trainer.precision": choice(*PRECISIONS) | null("32-true"),
    "trainer.max_epochs": integer(1),
    "trainer.min_epochs": integer(0) | null("none"),
    "trainer.max_steps": integer(1) | choice(-1),
    "trainer.min_steps": integer(0) | null("none"),
    "trainer.max_time": max_time() | null("no limit"),
    "trainer.limit_*_batches": _BATCHES,
    "trainer.overfit_batches": integer(0) | fraction(),
    "trainer.val_check_interval": integer(1) | fraction() | null("once per epoch"),
    "trainer.check_val_every_n_epoch": integer(1) | null("never"),
    "trainer.num_sanity_val_steps": integer(-1),
    "trainer.log_every_n_steps": integer(1),
    "trainer.enable_*": _FLAG,
    "trainer.accumulate_grad_batches": integer(1),
    "trainer.gradient_clip_val": number(0.0, low_open=False) | null("no clipping"),
    "trainer.gradient_clip_algorithm": choice("norm", "value") | null("norm"),
    "trainer.deterministic": _FLAG | choice("warn"),
    "trainer.benchmark": _FLAG,
    "trainer.inference_mode": boolean(),
    "trainer.use_distributed_sampler": boolean(),
    "trainer.profiler": choice("simple", "advanced", "pytorch", "xla") | null("no profiler"),
    "trainer.detect_anomaly": boolean(),
    "trainer.barebones": boolean(),
    "trainer.sync_batchnorm": boolean(),
    "trainer.reload_dataloaders_every_n_epochs": integer(0),
    "trainer.fast_dev_run": boolean() | integer(0),
    "trainer.plugins": anything(),
    "trainer.default_root_dir": path() | null("the run folder"),
    # logger and callbacks
    "logger._target_": target(),
    "logger.save_dir": path(),
    "logger.name": Rule("a string", lambda v: isinstance(v, str)),
    "logger.version": Rule("a string or an integer", lambda v: isinstance(v, str) or _is_int(v)),
    "logger.default_hp_metric": boolean(),
    "callbacks.*._target_": target(),
    "callbacks.checkpoint.dirpath": path(),
    "callbacks.checkpoint.save_top_k": integer(-1),
    "callbacks.checkpoint.save_last": boolean() | choice("link"),
    "callbacks.checkpoint.save_on_train_epoch_end": boolean(),
    "callbacks.diagnostics.histograms": boolean(),
    "callbacks.progress.refresh_rate": integer(0),
}


def rule_for(key: str) -> Rule | None:
    """The rule of ``key`` (an exact entry, else the first pattern that matches), or None."""
    if key in SCHEMA:
        return SCHEMA[key]
    patterns = (rule for pattern, rule in SCHEMA.items() if "*" in pattern and fnmatch.fnmatchcase(key, pattern))
    return next(patterns, None)


def leaves(cfg: DictConfig, prefix: str = "") -> Iterator[tuple[str, bool, bool]]:
    """``(key, own, interpolated)`` for every leaf of ``cfg``: a value, a list, or a mapping
    that has a rule of its own; ``own`` is False in a subtree whose class checks its own
    arguments; ``interpolated``: the leaf's value is an interpolation (``${seed}``)."""
    for name in cfg:
        key = f"{prefix}{name}"
        if OmegaConf.is_interpolation(cfg, name) or OmegaConf.is_missing(cfg, name):
            yield key, True, OmegaConf.is_interpolation(cfg, name)
            continue
        node = cfg[name]  # not an interpolation: reading it resolves nothing here (a None mapping reads None)
        if isinstance(node, DictConfig) and rule_for(key) is None:
            foreign = _foreign(key, node)
            for inner, own, interpolated in leaves(node, f"{key}."):
                yield inner, own and not (foreign and not inner.endswith("._target_")), interpolated
        else:
            yield key, True, False


def _foreign(key: str, node: DictConfig) -> bool:
    """A pluggable subtree whose ``_target_`` is a class from outside the known packages."""
    if not any(fnmatch.fnmatchcase(key, pattern) for pattern in PLUGGABLE):
        return False
    target_ = OmegaConf.select(node, "_target_", default=None, throw_on_resolution_failure=False)
    return isinstance(target_, str) and not target_.startswith(KNOWN_PACKAGES)


def check_leaves(cfg: DictConfig, skip_unresolved: bool = False) -> None:
    """Raise :class:`ConfigError` for the first leaf of ``cfg`` whose value its rule refuses:
    ``<key>=<value> is invalid: must be <allowed>``. ``skip_unresolved``: leave out values that
    only resolve inside a Hydra run (``${hydra:...}``), for the check before Hydra starts.
    Interpolated leaves come last, so that ``seed=-5`` is named as typed, not as ``data.seed``."""
    for key, own, _ in sorted(leaves(cfg), key=lambda leaf: leaf[2]):
        if key.split(".", 1)[0] == "hydra" or not own:
            continue
        rule = rule_for(key)
        if rule is None:
            continue  # a key added with +: the class it configures checks it
        try:
            value = OmegaConf.select(cfg, key, throw_on_resolution_failure=True)
        except Exception:  # noqa: BLE001 - an interpolation that only Hydra's run can resolve
            if skip_unresolved:
                continue
            raise
        if isinstance(value, (DictConfig, ListConfig)):
            value = OmegaConf.to_container(value, resolve=True)
        if not rule.ok(value):
            raise ConfigError(f"{key}={show(value)} is invalid: must be {rule.allowed}")


def show(value: Any) -> str:
    """A value as the user would type it back: null, true, false, lists as lists, strings quoted."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    return str(value) if isinstance(value, (list, dict)) else repr(value)
