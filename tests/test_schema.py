"""The config schema as a class: every leaf of every shipped config has a rule, each rule holds
the values it should and refuses the ones it should, and any bad value for any leaf, drawn by
hypothesis, is refused through the command line's own check: exit 2, one line naming the key,
no traceback, nothing made. All in this process: a composition costs milliseconds, a process
seconds."""

from __future__ import annotations

import io
import math
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from fmnist_scaling.run import cli, resolvers, schema, signatures
from fmnist_scaling.run.resolvers import group_choices
from fmnist_scaling.run.validate import validate
from fmnist_scaling.utils.errors import ConfigError

CONF = resolvers.CONF_DIR


def group_options() -> list[list[str]]:
    """The default config, then one more config per option of every group (a yaml in conf/)."""
    options: list[list[str]] = [[]]
    for group in ("data", "scaling", "model/net", "model/optimizer", "trainer", "logger", "callbacks"):
        options += [[f"{group}={choice}"] for choice in group_choices(group)]
    options += [[f"+arch={choice}"] for choice in group_choices("arch")]
    options += [[f"+experiment={choice}"] for choice in group_choices("experiment")]
    options += [["+experiment=scale_law", f"gain_as={choice}"] for choice in group_choices("gain_as")]
    return options


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(str(CONF), version_base="1.3"):
        return hydra_compose("train", overrides=overrides)


CONFIGS = {" ".join(o) or "default": compose(o) for o in group_options()}
#: (overrides that make the leaf exist, leaf key) for every checked leaf of every shipped config
LEAVES = sorted(
    {
        (tuple(o), key)
        for name, cfg in CONFIGS.items()
        for o in [[] if name == "default" else name.split()]
        for key, own, _ in schema.leaves(cfg)
        if own and schema.rule_for(key, cfg) is not None
    },
    key=lambda leaf: (leaf[1], len(leaf[0]), leaf[0]),
)
FIRST = {}  # the simplest config in which each key exists, and the key's rule there
RULE = {}
for overrides, key in LEAVES:
    if key not in FIRST:
        FIRST[key] = overrides
        RULE[key] = schema.rule_for(key, CONFIGS[" ".join(overrides) or "default"])


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_every_leaf_of_every_shipped_config_has_a_rule_and_passes_it(name):
    cfg = CONFIGS[name]
    unruled = [
        k for k, own, _ in schema.leaves(cfg) if own and k.split(".")[0] != "hydra" and not schema.rule_for(k, cfg)
    ]
    assert not unruled, f"keys with no rule in fmnist_scaling/run/schema.py, nor in their class's signature: {unruled}"
    schema.check_leaves(cfg, skip_unresolved=True)  # the shipped values are valid


RULES = [  # key, values it holds, values it refuses
    ("seed", [0, 7, 2**32 - 1], [-5, 2**32, 99999999999, 1.5, True, "a", None]),
    ("threads", [1, 64, None], [0, -1, 2.0, "two", False]),
    ("model.optimizer.lr", [1e-6, 0.01, 1e6, 3], [0, -0.1, math.inf, math.nan, "fast", True, None]),
    ("model.optimizer.momentum", [0.0, 0, 0.9], [-0.1, math.nan, "x"]),
    ("model.optimizer.betas", [[0.9, 0.999], [0, 0]], [[0.9], [1.0, 0.9], 0.9, ["a", "b"]]),
    ("data.val_size", [0, 5000], [-1, 0.5, None]),
    ("data.eval_batch_size", [1, 2000, None], [0, "big"]),
    ("model.net.hidden", [[1000], [8, 8]], [[], [0], [8, -1], [True], 1000, None]),
    ("model.net.activation", ["relu", "gelu"], ["swish", 1, None]),
    ("trainer.max_time", ["00:01:00:00", {"hours": 1}, {"minutes": 0.5}, None], ["1h", {"hour": 1}, {}, 5]),
    ("trainer.limit_train_batches", [0, 10, 0.5, 1.0, None], [-1, 1.5, "all"]),
    ("trainer.precision", ["bf16-mixed", 32, "32", None], [8, "fp8", True]),
    ("trainer.devices", [1, "auto", -1, [0, 1]], [0, -2, "many", True]),
    ("trainer.max_steps", [-1, 1, 100], [0, -2, 1.5]),
    ("trainer.deterministic", [True, False, "warn", None], ["yes", 1]),
    ("callbacks.checkpoint.save_last", [True, False, "link"], ["yes", None]),
    ("callbacks.diagnostics._target_", ["my.Callback", "a.b.C"], ["NoDots", "a..b", "", 3]),
    ("data.root", ["data", "/a/b", 2024], ["", True, None, [1]]),
]


@pytest.mark.parametrize("key,good,bad", RULES, ids=[r[0] for r in RULES])
def test_each_rule_holds_and_refuses_known_values(key, good, bad):
    rule = schema.rule_for(key, CONFIGS["default"])  # a network's argument: from its signature
    assert rule is not None
    assert [v for v in good if not rule.ok(v)] == []
    assert [v for v in bad if rule.ok(v)] == []


def test_a_bad_value_set_in_a_yaml_is_caught_inside_the_run_too():
    cfg = compose([])
    OmegaConf.update(cfg, "trainer.log_every_n_steps", 0)
    with pytest.raises(ConfigError, match=r"^trainer.log_every_n_steps=0 is invalid: must be an integer >= 1$"):
        validate(cfg, before_hydra=True)


def test_a_network_of_your_own_checks_its_own_arguments():
    cfg = compose(["model.net._target_=my_package.Net", "+model.net.width=-3"])
    schema.check_leaves(cfg, skip_unresolved=True)  # width is the class's business
    cfg = compose(["model.net._target_=not a path"])
    with pytest.raises(ConfigError, match="model.net._target_='not a path' is invalid: must be a dotted class path"):
        schema.check_leaves(cfg, skip_unresolved=True)


PLUGIN = """
from collections.abc import Sequence
from typing import Annotated, Literal, Optional

from fmnist_scaling.data.scaling import Positive, Scaling
from fmnist_scaling.models.options import Widths

Odd = Literal[1, 3, 5]


class Net:
    def __init__(
        self, channels: int = 8, widths: Widths = (4, 4), kernel: Odd = 3, rate: Annotated[float, ">= 0", "< 1"] = 0.5,
        tag: str | None = None, flag=False, scale=1.0, names=("a",), blob=None, *, depth: "Optional[int]" = None, **more
    ):
        pass


class Mode(Scaling):
    pass


class Floor(Mode):
    def __init__(self, floor: Positive = 0.1):
        super().__init__()
        self.floor = floor
"""


def test_a_plug_ins_argument_rules_come_from_its_signature(tmp_path, monkeypatch):
    """Annotations (aliases of this package's and of the module's own, bounds in Annotated,
    Literal, unions with None), else the default's type; inherited constructors; a class whose
    source cannot be read has none. Read from the source: nothing is imported."""
    (tmp_path / "schema_plugin.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    for cache in (schema.argument_rule, signatures._module):
        cache.cache_clear()
    rules = {
        name: schema.argument_rule("schema_plugin.Net", name) for name in signatures.arguments("schema_plugin.Net")
    }
    assert {name: rule.allowed for name, rule in rules.items()} == {
        "channels": "an integer",
        "widths": "a non-empty list of integers >= 1, e.g. [4, 4]",
        "kernel": "one of 1, 3, 5",
        "rate": "a finite number >= 0 and < 1",
        "tag": "a string, or null",
        "flag": "true or false",
        "scale": "a finite number",
        "names": "a list of strings, e.g. ['a']",
        "blob": schema.anything().allowed,
        "depth": "an integer, or null",
    }
    assert rules["rate"].ok(0) and not rules["rate"].ok(1.0) and not rules["widths"].ok([4, 0])
    assert rules["kernel"].ok(5) and not rules["kernel"].ok(2) and rules["depth"].ok(None)
    assert signatures.arguments("schema_plugin.Mode") == {}  # Scaling's __init__ takes nothing
    assert schema.argument_rule("schema_plugin.Floor", "floor").allowed == "a finite number > 0"
    assert signatures.arguments("schema_plugin.Missing") is None and signatures.arguments("no_such.Net") is None
    assert "schema_plugin" not in sys.modules
    cfg = compose(["model.net._target_=schema_plugin.Net", "+model.net.channels=[8,16]"])
    with pytest.raises(ConfigError, match=r"^model.net.channels=\[8, 16\] is invalid: must be an integer$"):
        schema.check_leaves(cfg, skip_unresolved=True)  # the CNN's list of channels is not this net's rule
    schema.check_leaves(
        compose(["model.net._target_=schema_plugin.Net", "+model.net.channels=8"]), skip_unresolved=True
    )


def as_override(value) -> str:
    """A Python value written as a Hydra override value that parses back to it."""
    if value is None or isinstance(value, bool):
        return schema.show(value)
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, list):
        return "[" + ",".join(as_override(v) for v in value) + "]"
    return repr(value)


VALUES = st.one_of(
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.booleans(),
    st.none(),
    st.text(alphabet="abcxyz-_:0123456789", min_size=1, max_size=10),
    st.lists(st.one_of(st.integers(-3, 3), st.floats(-2, 2)), max_size=3),
)
CHECKED = sorted(key for key in FIRST if RULE[key].allowed != schema.anything().allowed)


@st.composite
def bad_leaf(draw):
    key = draw(st.sampled_from(CHECKED))
    rule = RULE[key]
    value = draw(VALUES.filter(lambda v: not rule.ok(v)))
    return key, value


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(bad_leaf())
def test_any_bad_value_of_any_leaf_is_one_line_and_makes_nothing(tmp_path_factory, monkeypatch_module, leaf):
    key, value = leaf
    folder = tmp_path_factory.mktemp("run")
    monkeypatch_module.chdir(folder)
    override = f"{key}={as_override(value)}"
    argv = ["train", *FIRST[key], override]
    started = []
    err, out = io.StringIO(), io.StringIO()
    monkeypatch_module.setattr(sys, "argv", argv)
    with redirect_stderr(err), redirect_stdout(out), pytest.raises(SystemExit) as exit_:
        cli.run(lambda: started.append(True))
    lines = err.getvalue().strip().splitlines()
    assert exit_.value.code == 2 and not started, (override, err.getvalue())
    assert len(lines) == 1 and lines[0].startswith(f"error: {key}=") and "is invalid: must be" in lines[0], lines
    assert "Traceback" not in err.getvalue() and out.getvalue() == ""
    assert list(Path(folder).iterdir()) == []  # no run folder, no data folder


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch
