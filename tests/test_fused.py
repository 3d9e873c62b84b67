"""The fused SGD step makes the update autograd and torch.optim.SGD make, and is used only where
it may be."""

import copy

import pytest
import torch
from torch import nn

from fmnist_scaling.models.fused import sgd_step, why_not_fused
from fmnist_scaling.models.networks import MLP
from tests.conftest import read_metrics, train


def autograd_step(
    net: MLP, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    logits = net(x)
    loss = nn.functional.cross_entropy(logits, y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.detach(), logits.detach()


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh"])
@pytest.mark.parametrize("scale", [1.0, 255.0])  # / 255 inputs and raw pixels
def test_fused_step_matches_autograd_and_sgd(activation, scale):
    # float64, so that float rounding (amplified by raw pixels) cannot hide a wrong formula
    torch.manual_seed(0)
    reference = MLP(784, [64, 32], 10, activation).double()  # two hidden layers: the chain rule between them
    fused = copy.deepcopy(reference)
    start = copy.deepcopy(reference)
    optimizer = torch.optim.SGD(reference.parameters(), lr=0.05)
    for _ in range(5):
        x, y = torch.rand(16, 784, dtype=torch.float64) * scale, torch.randint(0, 10, (16,))
        loss_ref, logits_ref = autograd_step(reference, optimizer, x, y)
        loss, logits = sgd_step(fused, x, y, lr=0.05)
        torch.testing.assert_close(loss, loss_ref, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(logits, logits_ref, rtol=1e-10, atol=1e-10)
    for (name, p_ref), p, p_start in zip(reference.named_parameters(), fused.parameters(), start.parameters()):
        torch.testing.assert_close(p, p_ref, rtol=1e-10, atol=1e-10, msg=lambda m, name=name: f"{name}: {m}")
        assert not torch.equal(p, p_start), f"{name} did not move"


def test_fused_step_in_float32_stays_within_rounding():
    torch.manual_seed(0)
    reference = MLP(784, [100], 10)
    fused = copy.deepcopy(reference)
    optimizer = torch.optim.SGD(reference.parameters(), lr=0.01)
    for _ in range(20):
        x, y = torch.rand(32, 784), torch.randint(0, 10, (32,))
        autograd_step(reference, optimizer, x, y)
        sgd_step(fused, x, y, lr=0.01)
    for p_ref, p in zip(reference.parameters(), fused.parameters()):
        torch.testing.assert_close(p, p_ref, rtol=1e-5, atol=1e-6)


def written_out_step(net: MLP, x: torch.Tensor, y: torch.Tensor, lr: float) -> None:
    """The fused step as its docstring says it, each operation out of place: the modules'
    forward, the derivatives as products (ReLU's mask a bool tensor)."""
    grads = {"relu": lambda g, out: g * (out > 0), "sigmoid": lambda g, out: g * (out * (1 - out))}
    grads["tanh"] = lambda g, out: g * (1 - out * out)
    with torch.no_grad():
        linears, inputs, h = [], [], x
        for module in net.layers:
            if isinstance(module, nn.Linear):
                linears.append(module)
                inputs.append(h)
                h = torch.addmm(module.bias, h, module.weight.t())
            else:
                h = module(h)
        log_probs = torch.log_softmax(h, dim=1)
        target = y.unsqueeze(1)
        grad = log_probs.exp().scatter_add(1, target, torch.full_like(target, -1, dtype=h.dtype)) / len(y)
        for i in reversed(range(len(linears))):
            below = grads[net.activation](grad @ linears[i].weight, inputs[i]) if i > 0 else None
            linears[i].weight.addmm_(grad.t(), inputs[i], alpha=-lr)
            linears[i].bias.sub_(grad.sum(0), alpha=lr)
            grad = below


def bits(t: torch.Tensor) -> torch.Tensor:
    return t.view(torch.int32)  # equal bits: NaN equals NaN, -0.0 differs from +0.0


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh"])
@pytest.mark.parametrize("lr", [0.01, 1e5])  # a sane run; raw pixels at a huge rate (ReLU: to inf and NaN)
def test_fused_step_is_its_written_out_formula_to_the_bit(activation, lr):
    # the step's speed-ups (activations in place, ReLU's mask straight in float) may not move a
    # bit: trainer=debug runs must repeat earlier versions' numbers, diverged runs included
    torch.manual_seed(0)
    fused = MLP(784, [64, 32], 10, activation)
    written = copy.deepcopy(fused)
    for _ in range(6):
        x, y = torch.randint(0, 256, (32, 784)).float(), torch.randint(0, 10, (32,))
        sgd_step(fused, x, y, lr=lr)
        written_out_step(written, x, y, lr)
        for (name, p), q in zip(fused.named_parameters(), written.parameters()):
            assert torch.equal(bits(p), bits(q)), name
    finite = all(torch.isfinite(p).all() for p in fused.parameters())
    if activation == "relu":  # (sigmoid and tanh are bounded: their weights stay finite here)
        assert finite == (lr < 1), "the huge learning rate must reach non-finite weights, the small one not"


def test_fused_step_leaves_no_gradients():
    net = MLP(784, [32], 10)
    sgd_step(net, torch.rand(8, 784), torch.randint(0, 10, (8,)), lr=0.1)
    assert all(p.grad is None for p in net.parameters())


def test_only_plain_sgd_on_one_process_is_fused():
    net = MLP(784, [32], 10)
    assert why_not_fused(net, torch.optim.SGD(net.parameters(), lr=0.01)) is None
    cases = {
        "Adam": (net, torch.optim.Adam(net.parameters()), {}),
        "momentum=0.9": (net, torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9), {}),
        "weight_decay=0.001": (net, torch.optim.SGD(net.parameters(), lr=0.01, weight_decay=1e-3), {}),
        "'gelu'": (MLP(784, [32], 10, "gelu"), torch.optim.SGD(net.parameters(), lr=0.01), {}),
        "2 processes": (net, torch.optim.SGD(net.parameters(), lr=0.01), {"world_size": 2}),
        "bf16-mixed": (net, torch.optim.SGD(net.parameters(), lr=0.01), {"precision": "bf16-mixed"}),
        "anomaly": (net, torch.optim.SGD(net.parameters(), lr=0.01), {"detect_anomaly": True}),
    }
    for expected, (model, optimizer, kwargs) in cases.items():
        reason = why_not_fused(model, optimizer, **kwargs)
        assert reason is not None and expected in reason, (expected, reason)


def test_a_run_gives_the_same_results_fused_or_not(tmp_path, tiny_root):
    """Through Lightning: same step count, same metrics, and the record says which step ran."""
    records = {}
    for fused in ("true", "false"):
        run_dir = tmp_path / f"fused_{fused}"
        proc = train(
            f"data.root={tiny_root}",
            "data.verify=false",
            "data.val_size=100",
            "trainer.max_epochs=2",
            f"model.fused_step={fused}",
            f"hydra.run.dir={run_dir}",
            cwd=tmp_path,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        records[fused] = read_metrics(run_dir)
    fused, plain = records["true"], records["false"]
    assert fused["train_step"] == "fused" and plain["train_step"] == "autograd (model.fused_step=false)"
    assert [h["step"] for h in fused["history"]] == [h["step"] for h in plain["history"]] == [16, 32]
    for key in ("train/loss", "val/loss", "test/loss", "test/acc", "diag/grad_norm/layers.fc1.weight"):
        assert fused["final"][key] == pytest.approx(plain["final"][key], rel=1e-4), key


def test_adam_takes_the_autograd_path(tmp_path, tiny_root):
    run_dir = tmp_path / "adam"
    proc = train(
        f"data.root={tiny_root}",
        "data.verify=false",
        "data.val_size=100",
        "trainer.max_epochs=1",
        "model/optimizer=adam",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert read_metrics(run_dir)["train_step"] == "autograd (optimizer Adam (fused: plain SGD))"
