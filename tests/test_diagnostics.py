"""The diagnostics on a tiny model with hand-set weights: known inputs, known numbers."""

import math

import pytest
import torch

from fmnist_scaling.diagnostics import probe
from fmnist_scaling.mlp import MLP


def tiny(activation: str) -> MLP:
    net = MLP(in_features=2, hidden=[3], num_classes=2, activation=activation)
    with torch.no_grad():
        net.layers.fc1.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]]))
        net.layers.fc1.bias.zero_()
        net.layers.out.weight.copy_(torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))
        net.layers.out.bias.zero_()
    return net


X = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
Y = torch.tensor([0, 1])


def test_relu_preactivations_dead_units_logits_and_norms():
    stats, tensors = probe(tiny("relu"), X, Y)
    preacts = torch.tensor([1.0, 2.0, -3.0, 3.0, 4.0, -7.0])  # x @ W.T
    assert stats["preact_mean"] == pytest.approx(0.0)
    assert stats["preact_std"] == pytest.approx(preacts.std().item())
    assert stats["dead_frac"] == pytest.approx(1 / 3)  # the third unit is never positive
    # logits = first two hidden units: [1, 2] and [3, 4]
    assert stats["logit_norm"] == pytest.approx((math.sqrt(5) + 5) / 2)
    loss = torch.nn.functional.cross_entropy(torch.tensor([[1.0, 2.0], [3.0, 4.0]]), Y)
    assert stats["loss"] == pytest.approx(loss.item())
    assert stats["weight_norm/fc1"] == pytest.approx(2.0)  # sqrt(1 + 1 + 1 + 1)
    assert stats["grad_norm/fc1"] > 0 and "grad_norm/out" in stats
    assert tensors["preact/fc1"].flatten().tolist() == preacts.tolist()


def test_sigmoid_saturation_on_large_inputs():
    stats, _ = probe(tiny("sigmoid"), 255 * X, Y)
    # 255 * x puts every pre-activation at |z| >= 255: every unit output is at a rail
    assert stats["saturated_frac"] == 1.0 and "dead_frac" not in stats
    stats, _ = probe(tiny("sigmoid"), X / 255, Y)
    assert stats["saturated_frac"] == 0.0


def test_probe_leaves_gradients_and_mode_alone():
    net = tiny("relu")
    net.train()
    probe(net, X, Y)
    assert net.training and all(p.grad is None for p in net.parameters())
