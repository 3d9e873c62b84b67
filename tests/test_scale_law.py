"""The scale-law experiment and the threshold: the gain sweep's configs, its summary section, the
eigenvalue by power iteration and the critical-lr search (tiny data)."""

import json
import math

import pytest
import torch
import yaml

from fmnist_scaling.run.config_tree import compose
from fmnist_scaling.run.resolvers import group_choices
from fmnist_scaling.tools import threshold
from fmnist_scaling.tools.report import write_report
from tests.conftest import run_module, write_record


def test_power_iteration_finds_the_largest_eigenvalue():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3000, 40, generator=g) * torch.linspace(0.1, 3.0, 40) + 0.5
    moment = threshold.second_moment(x, chunk=512)
    assert torch.allclose(moment, (x.double().T @ x.double()) / len(x), rtol=1e-12)
    assert threshold.top_eigenvalue(moment) == pytest.approx(float(torch.linalg.eigvalsh(moment)[-1]), rel=1e-9)


@pytest.mark.parametrize(
    ("family", "init", "lr", "gain", "max_value"),
    [
        ("input", 1.0, 1.0, 1.0, 255 / 64),
        ("equivalent", 1.0, 1.0, 64, 255.0),  # init x 64 and the optimizer's factors (SGD: lr x 64^2)
        ("init_only", 64, 1.0, 1.0, 255.0),
        ("lr_only", 1.0, 64**2, 1.0, 255.0),
    ],
)
def test_each_way_of_applying_a_gain_composes_to_its_parameters(family, init, lr, gain, max_value):
    cfg = compose("train", ["+experiment=scale_law", f"gain_as={family}", "gain=64"])
    assert cfg.scaling.max_value == pytest.approx(max_value)
    assert cfg.model.first_layer_init_scale == init and cfg.model.first_layer_lr_scale == lr
    assert cfg.model.first_layer_gain == gain


def test_a_gain_of_zero_is_refused_by_name(tmp_path):
    from tests.conftest import train

    proc = train("+experiment=scale_law", "gain=0", "data.root=unused", cwd=tmp_path)
    assert proc.returncode == 2
    assert (
        proc.stderr.strip() == "error: gain=0 is invalid: must be a finite number > 0 (the input gain; 255: raw pixels)"
    )


def fake_job(sweep, family, gain, acc, dead, std):
    job = sweep / f"gain={gain},gain_as={family}"
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"gain_as={family}", f"gain={gain}"]))
    record = {
        "status": "completed",
        "final": {"val/acc": acc, "diag/dead_frac": dead},
        "initial": {"diag/preact_std": std},
        "history": [{"epoch": 1, "val/acc": acc}],
    }
    write_record(job, [f"gain_as={family}", f"gain={gain}"], record)


def test_the_summary_tabulates_each_family_by_gain_and_draws_the_figure(tmp_path):
    for gain, acc in (("1", 0.84), ("255", 0.12)):
        fake_job(tmp_path, "input", gain, acc, 0.0 if acc > 0.5 else 0.98, 0.26 * float(gain))
        fake_job(tmp_path, "equivalent", gain, acc + 0.01, 0.0 if acc > 0.5 else 0.97, 0.26 * float(gain))
        fake_job(tmp_path, "lr_only", gain, acc, 0.5, 0.26)
    write_report(tmp_path)
    text = (tmp_path / "summary.md").read_text()
    assert "dead first-layer ReLUs % after training by gain g (columns: gain_as):" in text
    assert "| g | input | equivalent | lr_only |" in text
    assert "| 255 | 12.0 | 13.0 | 12.0 |" in text  # validation accuracy, %
    assert "| 255 | 98.0 | 97.0 | 50.0 |" in text  # dead units, %
    assert "| 255 | 66.3 | 66.3 | 0.26 |" in text  # pre-activation std at step 0
    assert "input against equivalent: accuracies at most 1.0 points apart" in text
    assert (tmp_path / "scale_law.png").read_bytes()[:4] == b"\x89PNG"


def test_a_sweep_without_gain_has_no_scale_law_section(tmp_path):
    job = tmp_path / "scaling=max"
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(["scaling=max"]))
    write_record(job, ["scaling=max"], {"status": "completed", "final": {"val/acc": 0.8}})
    write_report(tmp_path)
    assert "gain" not in (tmp_path / "summary.md").read_text() and not (tmp_path / "scale_law.png").exists()


TINY = ["data.verify=false", "data.val_size=100", "model.net.hidden=[64]"]


def test_the_threshold_is_the_first_broken_lr_above_one_that_learned(tiny_root):
    overrides = ["scaling=none", f"data.root={tiny_root}", *TINY]
    row = threshold.find_threshold("none", overrides, seeds=[0, 1])
    case = threshold.Case(overrides)
    x, _ = case.data.scaled("train")
    assert row["lambda"] == pytest.approx(float(torch.linalg.eigvalsh(threshold.second_moment(x))[-1]), rel=1e-9)
    assert set(row["critical_lr_by_seed"]) == {0, 1}
    for seed, critical in row["critical_lr_by_seed"].items():
        trials = sorted((t for t in row["trials"] if t["seed"] == seed), key=lambda t: t["lr"])
        at = next(t for t in trials if t["lr"] == critical)
        assert at["broken"] and at["why"]
        below = [t for t in trials if t["lr"] < critical and t["lr"] >= critical / 10 ** (1 + 1e-9)]
        assert below and not below[-1]["broken"]  # the grid step just below it learned
        assert below[-1]["lr"] == pytest.approx(critical / threshold.grid_lr(1))
    assert row["product"] == pytest.approx(row["critical_lr"] * row["lambda"])
    scaled = threshold.find_threshold("max", ["scaling=max", f"data.root={tiny_root}", *TINY], seeds=[0])
    assert row["lambda"] / scaled["lambda"] == pytest.approx(255**2, rel=1e-6)  # λ scales with the gain squared
    assert scaled["critical_lr"] > 100 * row["critical_lr"]


def test_a_stricter_definition_of_breaking_breaks_no_earlier(tiny_root):
    overrides = ["scaling=none", f"data.root={tiny_root}", *TINY]
    default = threshold.find_threshold("none", overrides, seeds=[0])
    chance_only = threshold.find_threshold("none", overrides, seeds=[0], dead_limit=1.0)
    assert chance_only["critical_lr"] >= default["critical_lr"]
    assert "dead" not in chance_only["broke_by"] and chance_only["broke_by"]  # chance or diverged


def test_the_command_writes_its_table(tiny_root, tmp_path):
    proc = run_module(
        "fmnist_scaling.tools.threshold",
        "--cases",
        "none",
        "max",
        "--seeds",
        "0",
        "--out",
        str(tmp_path / "out"),
        f"data.root={tiny_root}",
        *TINY,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    table = (tmp_path / "out" / "threshold.md").read_text()
    assert table.startswith("| case | λ of E[x xᵀ] |") and "| none |" in table and "| max |" in table
    assert "λ spans 4.8 decades" in table  # 255² between none and max
    data = json.loads((tmp_path / "out" / "threshold.json").read_text())
    assert [c["case"] for c in data["cases"]] == ["none", "max"] and all(
        math.isfinite(c["product"]) for c in data["cases"]
    )


def test_an_unknown_case_is_refused_with_the_choices(tmp_path):
    proc = run_module("fmnist_scaling.tools.threshold", "--cases", "nope", cwd=tmp_path)
    modes = ", ".join(group_choices("scaling"))  # conf/scaling/: every mode, a new one too
    assert proc.returncode == 2
    assert f"scaling=nope is invalid: must be one of {modes} (or a case: {modes}," in proc.stderr
