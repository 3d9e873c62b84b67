"""The sharpness (the loss Hessian's top eigenvalue, :mod:`fmnist_scaling.tools.sharpness`): against
the Hessian written out in full, and along an epoch of the threshold's training."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.func import functional_call

from fmnist_scaling.tools import sharpness, threshold
from tests.conftest import run_module

TINY = ["data.verify=false", "data.val_size=100", "model.net.hidden=[16]"]


@pytest.mark.parametrize("scale", [1.0, 30.0])  # a healthy init, and one with large inputs
def test_the_power_iteration_finds_the_hessians_top_eigenvalue(scale):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3)).double()
    x, y = scale * torch.randn(40, 6, dtype=torch.float64), torch.randint(0, 3, (40,))
    names = [name for name, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])

    def loss(vector):
        params, at = {}, 0
        for name, shape in zip(names, shapes):
            params[name] = vector[at : at + shape.numel()].view(shape)
            at += shape.numel()
        return nn.functional.cross_entropy(functional_call(model, params, (x,)), y)

    eigenvalues = torch.linalg.eigvalsh(torch.autograd.functional.hessian(loss, flat))
    top = eigenvalues[eigenvalues.abs().argmax()]
    found = sharpness.hessian_top_eigenvalue(model, x, y, iterations=2000, tol=1e-10)
    assert found == pytest.approx(float(top), rel=1e-6)
    assert sharpness.hessian_top_eigenvalue(model, 2 * x, y, iterations=2000, tol=1e-10) != pytest.approx(found)


def test_the_trajectory_starts_at_the_init_and_ends_with_the_epoch(tiny_root):
    case = threshold.Case(["scaling=max", f"data.root={tiny_root}", *TINY])
    rows = sharpness.trajectory(case, lr=0.1, seed=1, steps=(0, 3, 10_000))
    assert [r["step"] for r in rows] == [0, 3, case.data.steps_per_epoch]
    assert rows[0]["sharpness"] == pytest.approx(case.sharpness(1), rel=1e-6)
    assert all(0.0 <= r["dead_frac"] <= 1.0 for r in rows)
    assert all(r["lr_s_half"] == pytest.approx(0.1 * r["sharpness"] / 2) for r in rows)
    assert rows[-1]["loss"] < rows[0]["loss"]  # it trained


def test_the_threshold_and_the_trajectory_see_one_run_at_any_thread_count(tiny_root):
    """The two tools once disagreed on one lr and seed (51.5% against 45.1% dead): one trained on
    2 threads, the other on 1, and the trajectory took the lr as the table prints it (0.562, not
    the grid's 0.56234); near the threshold either decides a run. Both now train through
    Case.train on one thread, and a printed grid lr is the grid's: every trial of a search,
    diverged ones included, ends with the dead fraction the trajectory ends with."""
    torch.set_num_threads(2)  # what the tools inherited before; the case sets its own
    overrides = ["scaling=none", f"data.root={tiny_root}", *TINY]
    row = threshold.find_threshold("none", overrides, seeds=[0])
    assert torch.get_num_threads() == threshold.THREADS == 1
    case = threshold.Case(overrides)
    trials = [t for t in row["trials"] if t["lr"] >= row["critical_lr"] / 10]
    assert {t["broken"] for t in trials} == {True, False}  # both sides of the threshold are compared
    for trial in trials:
        printed = float(f"{trial['lr']:.3g}")  # as the table prints it, and a user passes it on
        assert threshold.on_grid(printed) == trial["lr"]
        end = sharpness.trajectory(case, threshold.on_grid(printed), trial["seed"], steps=(0, 3))[-1]
        assert end["dead_frac"] == trial["dead_frac"], trial
    assert threshold.on_grid(0.5) == 0.5  # an lr off the grid is left alone


def test_the_command_writes_its_table(tiny_root, tmp_path):
    out = tmp_path / "out"
    proc = run_module(
        "fmnist_scaling.tools.sharpness", "--cases", "none", "--lrs", "0.001", "--out", str(out),
        f"data.root={tiny_root}", *TINY, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| none | 0.001 | 0 | 0 |" in (out / "sharpness.md").read_text()
    bad = run_module("fmnist_scaling.tools.sharpness", "--cases", "nope", "--lrs", "1", cwd=tmp_path)
    assert bad.returncode == 2 and "nope" in bad.stderr


def test_the_threshold_reports_the_sharpness_at_init_and_trains_the_epochs_asked(tiny_root):
    overrides = ["scaling=max", f"data.root={tiny_root}", *TINY]
    case = threshold.Case(overrides)
    one, two = case.trial(0.05, seed=0), case.trial(0.05, seed=0, epochs=2)
    assert one["acc"] != two["acc"]  # the second epoch trained on
    assert case.trial(0.05, seed=0) == one  # and a trial is a function of its lr, seed and epochs
    row = threshold.find_threshold("max", overrides, seeds=[0, 1], epochs=2)
    assert row["epochs"] == 2 and row["sharpness_by_seed"] == {s: pytest.approx(case.sharpness(s)) for s in (0, 1)}
    assert row["product_sharpness"] == pytest.approx(row["critical_lr"] * row["sharpness"])


def test_a_loss_limit_breaks_no_later_and_names_the_loss(tiny_root):
    overrides = ["scaling=none", f"data.root={tiny_root}", *TINY]
    default = threshold.find_threshold("none", overrides, seeds=[0])
    strict = threshold.find_threshold("none", overrides, seeds=[0], loss_limit=0.5)  # under chance's ln 10
    assert strict["critical_lr"] <= default["critical_lr"] and strict["loss_limit"] == 0.5
    at = next(t for t in strict["trials"] if t["lr"] == strict["critical_lr"] and t["seed"] == 0)
    assert "loss" in at["why"] and at["loss"] > 0.5
    assert all(t["loss"] <= 0.5 for t in strict["trials"] if not t["broken"])


def test_the_threshold_takes_a_network_that_wants_images(tiny_root):
    """The CNN takes (1, 28, 28) inputs: the case's data gives them, as train's does (it once
    handed the CNN flat rows and failed)."""
    overrides = ["scaling=max", "+arch=cnn", f"data.root={tiny_root}", "data.verify=false", "data.val_size=100"]
    case = threshold.Case(overrides)
    assert case.data.scaled("train")[0].shape[1:] == (1, 28, 28)
    assert case.eigenvalue() > 0 and case.sharpness(0) > 0
    trial = case.trial(0.1, seed=0)
    assert 0.0 <= trial["dead_frac"] <= 1.0 and trial["acc"] > 0.1
