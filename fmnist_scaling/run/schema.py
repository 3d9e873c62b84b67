"""The schema of the composed config: for every leaf, the values it may take.

One table (:data:`SCHEMA`, key pattern → :class:`Rule`) says for each key what it accepts: its
type, range or choices, and whether null means something. :func:`check_leaves` walks every leaf
of a composed config and checks it against the table; :mod:`fmnist_scaling.run.validate` adds the
checks that involve two keys or the machine. A test composes the config with every group
option and asserts that every leaf has a rule, so a new key cannot go unchecked.

The arguments of a plug-in class (``data.dataset``, ``scaling``, ``model.net``), built-in or your
own, have no entry in the table: each one's rule comes from the class's constructor signature
(:func:`argument_rule`): its annotation (``int``, ``float``, ``bool``, ``str``, a list of one of
them, ``Literal[...]`` for choices, ``X | None``, and bounds as strings in ``Annotated[int, ">= 1"]``),
else its default's type. A key the signature does not name, or a class whose source cannot be read,
is left to the class. A callback or logger whose ``_target_`` is outside this package and Lightning
checks its own arguments: only its ``_target_`` is checked here. Keys added with ``+`` under a
known subtree, with no rule, go to the class they configure.

Nothing here imports torch (a plug-in's signature is read from its source,
:mod:`fmnist_scaling.run.signatures`): the checks run before a run starts, in well under a second.
"""

from __future__ import annotations

import ast
import fnmatch
import functools
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from fmnist_scaling.models.options import INITS, INPUT_NORMS
from fmnist_scaling.run import signatures
from fmnist_scaling.utils.errors import ConfigError

#: The largest seed numpy's and so Lightning's seeding takes (2^32 - 1).
MAX_SEED = 2**32 - 1
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")
#: Lightning's precision names (``trainer.precision``), null: its default (32-true).
PRECISIONS = (
    "64-true", "64", 64, "32-true", "32", 32, "16-true", "16-mixed", "16", 16,
    "bf16-true", "bf16-mixed", "bf16", "transformer-engine", "transformer-engine-float16",
)  # fmt: skip
#: Subtrees built by a plug-in class: the rules of its arguments come from its signature.
PLUGINS = ("data.dataset", "scaling", "model.net")
#: Subtrees whose class, when it is your own, checks its own arguments.
PLUGGABLE = ("callbacks.*", "logger")
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
                and len(v) > 0
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
    # scaling: its arguments' rules come from its class (argument_rule)
    "scaling._target_": target(),
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
    "model.net._target_": target(),  # its arguments' rules come from its class (argument_rule)
    # trainer: Lightning's Trainer arguments
    "trainer._target_": target(),
    "trainer._convert_": choice("all"),  # Lightning takes plain containers only (max_time={minutes: 30})
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


def rule_for(key: str, cfg: DictConfig | None = None) -> Rule | None:
    """The rule of ``key``: for an argument of a plug-in class (``scaling.eps``), the one its
    signature gives (:func:`argument_rule`; the class is the ``_target_`` of ``cfg``, and without
    ``cfg`` there is none); else an exact entry of the table, else its first pattern that matches."""
    plugin = _plugin_argument(key)
    if plugin is not None:
        subtree, name = plugin
        if cfg is None:
            return None
        target_ = OmegaConf.select(cfg, f"{subtree}._target_", default=None, throw_on_resolution_failure=False)
        return argument_rule(target_, name) if isinstance(target_, str) else None
    if key in SCHEMA:
        return SCHEMA[key]
    patterns = (rule for pattern, rule in SCHEMA.items() if "*" in pattern and fnmatch.fnmatchcase(key, pattern))
    return next(patterns, None)


def _plugin_argument(key: str) -> tuple[str, str] | None:
    """``(subtree, argument)`` for a key that names an argument of a plug-in class
    (``model.net.hidden``), not one of Hydra's own (``_target_``) nor a key inside one."""
    for subtree in PLUGINS:
        name = key[len(subtree) + 1 :] if key.startswith(f"{subtree}.") else ""
        if name and "." not in name and not name.startswith("_"):
            return subtree, name
    return None


@functools.lru_cache(maxsize=256)
def argument_rule(target_: str, name: str) -> Rule | None:
    """The rule of the argument ``name`` of the class at ``target_``, from its constructor's
    signature: its annotation, else its default's type, else anything; None where the class's
    source cannot be read or its signature has no such argument (the class checks it)."""
    found = signatures.arguments(target_)
    if found is None or name not in found:
        return None
    argument = found[name]
    has_default, default = signatures.literal(argument.default)
    rule = _annotation_rule(argument.annotation, default if has_default else None)
    return rule or (_default_rule(default) if has_default else None) or anything()


@dataclass(frozen=True)
class _Kind:
    """A scalar type an annotation names: its words for one value and for a list of them."""

    one: str
    many: str
    ok: Callable[[Any], bool]


_KINDS = {
    "int": _Kind("an integer", "integers", _is_int),
    "float": _Kind("a finite number", "finite numbers", lambda v: _is_number(v) and math.isfinite(v)),
    "bool": _Kind("true or false", "booleans (true or false)", lambda v: isinstance(v, bool)),
    "str": _Kind("a string", "strings", lambda v: isinstance(v, str)),
}
#: Annotations of a sequence: a list in the config.
_SEQUENCES = {"Sequence", "MutableSequence", "list", "List", "tuple", "Tuple", "Iterable", "Collection"}
_BOUND = re.compile(r"(>=|>|<=|<)\s*(-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)")
_COMPARE: dict[str, Callable[[float, float], bool]] = {
    ">=": lambda v, b: v >= b,
    ">": lambda v, b: v > b,
    "<=": lambda v, b: v <= b,
    "<": lambda v, b: v < b,
}


def _name(node: ast.expr) -> str | None:
    """The name an annotation node is written with: ``int``, ``typing.Literal`` -> ``Literal``."""
    if isinstance(node, ast.Name):
        return node.id
    return node.attr if isinstance(node, ast.Attribute) else None


def _annotation_rule(node: ast.expr | None, example: Any = None, limits: tuple[str, ...] = ()) -> Rule | None:
    """The rule an annotation states, None for one it does not (a class, a mapping): ``limits``
    are the strings of an enclosing ``Annotated`` (``">= 1"``, ``"non-empty"``)."""
    if node is None:
        return None
    if isinstance(node, ast.Constant) and node.value is None:
        return Rule("null", lambda v: v is None)
    name = _name(node)
    if name in _KINDS:
        return _scalar(_KINDS[name], limits)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):  # int | None
        return _union([node.left, node.right], example, limits)
    if not isinstance(node, ast.Subscript):
        return None
    base = _name(node.value)
    items = list(node.slice.elts) if isinstance(node.slice, ast.Tuple) else [node.slice]
    if base == "Annotated":
        metadata = [m.value for m in items[1:] if isinstance(m, ast.Constant) and isinstance(m.value, str)]
        return _annotation_rule(items[0], example, (*limits, *metadata))
    if base == "Optional":
        return _union([items[0], ast.Constant(None)], example, limits)
    if base == "Union":
        return _union(items, example, limits)
    if base == "Literal":
        values = [signatures.literal(item) for item in items]
        return choice(*(value for readable, value in values if readable)) if all(r for r, _ in values) else None
    if base in _SEQUENCES:
        kind = _name(items[0])
        if kind not in _KINDS or (base in ("tuple", "Tuple") and len(items) == 2 and _name(items[1]) is not None):
            return None  # a list of lists, a tuple of given length: the class checks it
        return _list(_KINDS[kind], limits, example)
    return None


def _union(nodes: list[ast.expr], example: Any, limits: tuple[str, ...]) -> Rule | None:
    rules = [_annotation_rule(n, example, limits) for n in nodes]
    if any(r is None for r in rules):
        return None
    return functools.reduce(lambda a, b: a | b, [r for r in rules if r is not None])


def _bounds(limits: tuple[str, ...]) -> tuple[str, Callable[[Any], bool]]:
    """The words (" >= 1") and the check of the numeric bounds among ``limits``."""
    found = [m for m in (_BOUND.fullmatch(limit.strip()) for limit in limits) if m]
    words = " and ".join(f"{m.group(1)} {m.group(2)}" for m in found)
    checks = [(_COMPARE[m.group(1)], float(m.group(2))) for m in found]
    return (f" {words}" if words else ""), lambda v: all(compare(v, bound) for compare, bound in checks)


def _scalar(kind: _Kind, limits: tuple[str, ...]) -> Rule:
    words, within = _bounds(limits)
    return Rule(kind.one + words, lambda v: kind.ok(v) and within(v))


def _list(kind: _Kind, limits: tuple[str, ...], example: Any) -> Rule:
    words, within = _bounds(limits)
    non_empty = "non-empty" in limits
    example_words = f", e.g. {show(example)}" if isinstance(example, list) and example else ""
    return Rule(
        f"a {'non-empty ' if non_empty else ''}list of {kind.many}{words}{example_words}",
        lambda v: isinstance(v, list) and (len(v) > 0 or not non_empty) and all(kind.ok(x) and within(x) for x in v),
    )


def _default_rule(default: Any) -> Rule | None:
    """The rule of an argument with no annotation it states: its default's type."""
    kinds = {bool: "bool", int: "int", float: "float", str: "str"}
    if type(default) in kinds:
        return _scalar(_KINDS[kinds[type(default)]], ())
    if isinstance(default, list) and default and len({type(x) for x in default}) == 1 and type(default[0]) in kinds:
        return _list(_KINDS[kinds[type(default[0])]], (), default)
    return None


def leaves(cfg: DictConfig, prefix: str = "") -> Iterator[tuple[str, bool, bool]]:
    """``(key, own, interpolated)`` for every leaf of ``cfg``: a value, a list, or a mapping
    that has a rule of its own; ``own`` is False in a subtree whose class checks its own
    arguments; ``interpolated``: the leaf's value is an interpolation (``${seed}``)."""
    for name in cfg:
        if not isinstance(name, (str, int)):  # OmegaConf's other key types: none in a config of this project
            continue
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
    """A callback or logger subtree whose ``_target_`` is a class from outside the known packages."""
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
        rule = rule_for(key, cfg)
        if rule is None:
            continue  # a key added with +, or one its plug-in's signature does not name: the class checks it
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
