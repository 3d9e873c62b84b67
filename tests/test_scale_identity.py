"""Scale is a learning rate, exactly: inputs multiplied by c train the same network as inputs
unscaled with the first layer's weights initialised c times larger and their learning rate c²
times larger (README, "Is scaling just a learning rate?"). Checked in float64 for 200 SGD steps:
raw pixels (c = 255 against / 255) with the first layer's init ÷ 255 and its weight lr ÷ 255²
reproduce the / 255 run step by step, on the fused path and on the autograd path."""

from __future__ import annotations

import pytest
import torch

from fmnist_scaling.data.scaling import MaxScaling, NoScaling
from fmnist_scaling.models import fused
from fmnist_scaling.models.classifier import ScalingClassifier
from fmnist_scaling.models.networks import first_weighted as first_linear

C = 255.0
STEPS, BATCH, LR = 200, 32, 1e-2


def pixels(n: int = STEPS * BATCH, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Learnable 0..255 images: each class lights its own band of rows over a noisy background."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 10, (n,), generator=g)
    images = torch.randint(0, 80, (n, 28, 28), generator=g)
    for c in range(10):
        images[labels == c, 2 * c + 4 : 2 * c + 6, 4:24] = 250
    return images.flatten(1).to(torch.uint8), labels


@pytest.fixture(autouse=True)
def float64():
    """Networks built in float64, so the init multiplier too is applied without float32 rounding."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(before)


def model(**scales: float) -> ScalingClassifier:
    torch.manual_seed(0)  # the same draw of initial weights for both networks
    return ScalingClassifier(optimizer={"_target_": "torch.optim.SGD", "lr": LR}, **scales)


def train(net: ScalingClassifier, scaling, images, labels, path: str) -> list[float]:
    optimizer = net.configure_optimizers()
    losses = []
    for x, y in zip(scaling.transform(images.double()).split(BATCH), labels.split(BATCH)):  # float64 end to end
        if path == "fused":
            assert fused.why_not_fused(net.net, optimizer) is None  # the first-layer lr keeps the fast path
            lr, first_lr = optimizer.param_groups[-1]["lr"], optimizer.param_groups[0]["lr"]
            loss, _ = fused.sgd_step(net.net, x, y, lr, first_weight_lr=first_lr)
        else:
            optimizer.zero_grad()
            loss = net.loss_fn(net(x), y)
            loss.backward()
            optimizer.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("path", ["fused", "autograd"])
def test_raw_pixels_with_the_equivalent_first_layer_reproduce_the_scaled_run(path):
    images, labels = pixels()
    scaled = model()
    raw = model(first_layer_init_scale=1 / C, first_layer_lr_scale=1 / C**2)
    assert torch.allclose(first_linear(raw.net).weight * C, first_linear(scaled.net).weight, rtol=1e-12, atol=0)
    scaled_losses = train(scaled, MaxScaling(), images, labels, path)
    raw_losses = train(raw, NoScaling(), images, labels, path)
    assert len(raw_losses) == STEPS
    assert raw_losses == pytest.approx(scaled_losses, rel=1e-9, abs=0)
    assert scaled_losses[-1] < 0.5 * scaled_losses[0]  # it learned: the identity is not about a frozen net
    first_raw, first_scaled = first_linear(raw.net), first_linear(scaled.net)
    assert torch.allclose(first_raw.weight * C, first_scaled.weight, rtol=1e-9, atol=1e-12)  # equal up to the factor c
    assert torch.allclose(first_raw.bias, first_scaled.bias, rtol=1e-9, atol=1e-12)  # bias: same gradient, same lr
    for (name, p_raw), p_scaled in zip(raw.net.layers.out.named_parameters(), scaled.net.layers.out.parameters()):
        assert torch.allclose(p_raw, p_scaled, rtol=1e-9, atol=1e-12), name


def test_either_half_alone_is_not_the_scaled_run():
    """Both halves are needed: the init alone or the lr alone gives another run."""
    images, labels = pixels(n=50 * BATCH)
    reference = train(model(), MaxScaling(), images, labels, "fused")
    init_only = train(model(first_layer_init_scale=1 / C), NoScaling(), images, labels, "fused")
    lr_only = train(model(first_layer_lr_scale=1 / C**2), NoScaling(), images, labels, "fused")
    assert init_only[0] == pytest.approx(reference[0], rel=1e-9)  # the same forward pass at step 0 ...
    assert init_only[-1] != pytest.approx(reference[-1], rel=1e-3)  # ... then steps c² too large
    assert lr_only[0] != pytest.approx(reference[0], rel=1e-3)  # pre-activations c times too large from the start


def test_the_options_reach_the_run_and_bad_values_are_refused(tmp_path):
    from tests.conftest import train as run

    proc = run("model.first_layer_lr_scale=0", "data.root=unused", cwd=tmp_path)
    assert (
        proc.returncode == 2 and "model.first_layer_lr_scale=0 is invalid: must be a finite number > 0" in proc.stderr
    )
    net = ScalingClassifier(first_layer_lr_scale=4.0)
    groups = net.configure_optimizers().param_groups
    assert [g["lr"] for g in groups] == [pytest.approx(0.04), 0.01] and groups[0]["params"][
        0
    ] is net.net.layers.fc1.weight
    assert len(ScalingClassifier().configure_optimizers().param_groups) == 1  # the default: one group, as before


# ---- the identity for every optimizer: model.first_layer_gain computes each one's factors

OPTIMIZERS = {
    "sgd": {"_target_": "torch.optim.SGD", "lr": 1e-2},
    "sgd_momentum": {"_target_": "torch.optim.SGD", "lr": 1e-2, "momentum": 0.9},
    "sgd_nesterov_weight_decay": {
        "_target_": "torch.optim.SGD",
        "lr": 1e-2,
        "momentum": 0.9,
        "nesterov": True,
        "weight_decay": 5e-3,
    },
    "adam": {"_target_": "torch.optim.Adam", "lr": 1e-3},
    "adam_weight_decay": {"_target_": "torch.optim.Adam", "lr": 1e-3, "weight_decay": 1e-3, "amsgrad": True},
    "adamw": {"_target_": "torch.optim.AdamW", "lr": 1e-3, "weight_decay": 1e-2},
}


def run_with(optimizer: dict, scaling, images, labels, **first_layer: float) -> tuple[ScalingClassifier, list[float]]:
    torch.manual_seed(0)
    net = ScalingClassifier(optimizer=optimizer, **first_layer)
    return net, train(net, scaling, images, labels, "autograd")


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_identity_raw_pixels_as_first_layer_parameters_for_every_optimizer(name):
    images, labels = pixels()
    scaled, reference = run_with(OPTIMIZERS[name], MaxScaling(), images, labels)
    raw, losses = run_with(OPTIMIZERS[name], NoScaling(), images, labels, first_layer_gain=1 / C)
    assert len(losses) == STEPS and reference[-1] < 0.6 * reference[0]  # it learned
    assert losses == pytest.approx(reference, rel=1e-9, abs=0)
    assert torch.allclose(first_linear(raw.net).weight * C, first_linear(scaled.net).weight, rtol=1e-9, atol=1e-12)
    for p_raw, p_scaled in zip(raw.net.layers.out.parameters(), scaled.net.layers.out.parameters()):
        assert torch.allclose(p_raw, p_scaled, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(
    "name,wrong",
    [
        ("adam", {"first_layer_init_scale": 1 / C, "first_layer_lr_scale": 1 / C**2}),  # SGD's factor c² on Adam
        ("adam", {"first_layer_init_scale": 1 / C, "first_layer_lr_scale": 1 / C}),  # c, but eps left alone
        ("sgd_nesterov_weight_decay", {"first_layer_init_scale": 1 / C, "first_layer_lr_scale": 1 / C**2}),  # decay
    ],
)
def test_the_factors_matter_where_the_identity_could_fail(name, wrong):
    images, labels = pixels(n=100 * BATCH)
    _, reference = run_with(OPTIMIZERS[name], MaxScaling(), images, labels)
    _, losses = run_with(OPTIMIZERS[name], NoScaling(), images, labels, **wrong)
    assert losses[0] == pytest.approx(reference[0], rel=1e-9)  # the same forward pass at step 0 ...
    assert max(abs(a - b) / abs(b) for a, b in zip(losses, reference)) > 1e-6  # ... then another run


def test_the_gain_option_scales_the_first_layers_group_and_refuses_unknown_optimizers():
    from fmnist_scaling.utils.errors import ConfigError

    net = ScalingClassifier(optimizer={"_target_": "torch.optim.AdamW", "lr": 1e-3, "weight_decay": 1e-2})
    net_gain = ScalingClassifier(
        optimizer={"_target_": "torch.optim.AdamW", "lr": 1e-3, "weight_decay": 1e-2}, first_layer_gain=4.0
    )
    first, rest = net_gain.configure_optimizers().param_groups
    assert (first["lr"], first["eps"], first["weight_decay"]) == pytest.approx((4e-3, 1e-8 / 4, 1e-2 / 4))
    assert (rest["lr"], rest["eps"], rest["weight_decay"]) == (1e-3, 1e-8, 1e-2)
    assert len(net.configure_optimizers().param_groups) == 1
    sgd = ScalingClassifier(
        optimizer={"_target_": "torch.optim.SGD", "lr": 1e-2, "weight_decay": 1e-4}, first_layer_gain=2.0
    )
    first = sgd.configure_optimizers().param_groups[0]
    assert (first["lr"], first["weight_decay"]) == pytest.approx((4e-2, 2.5e-5))
    rms = ScalingClassifier(optimizer={"_target_": "torch.optim.RMSprop", "lr": 1e-3}, first_layer_gain=2.0)
    with pytest.raises(ConfigError, match="not available with the optimizer RMSprop.*SGD, Adam, AdamW"):
        rms.configure_optimizers()
