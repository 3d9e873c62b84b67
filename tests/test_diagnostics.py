"""The diagnostics on a tiny model with hand-set weights: known inputs, known numbers."""

import math

import pytest
import torch

from fmnist_scaling.models.classifier import ScalingClassifier
from fmnist_scaling.models.diagnostics import probe
from fmnist_scaling.models.networks import CNN, MLP


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
    assert stats["weight_norm/layers.fc1.weight"] == pytest.approx(2.0)  # sqrt(1 + 1 + 1 + 1)
    assert stats["grad_norm/layers.fc1.weight"] > 0 and "grad_norm/layers.out.bias" in stats
    assert tensors["preact/layers.fc1"].flatten().tolist() == preacts.tolist()
    assert set(tensors) == {"preact/layers.fc1", "weight/layers.fc1", "activation/layers.act1"}


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


def tiny_cnn() -> CNN:
    """One convolution of two channels on 4 x 4 images: channel 0 copies the image, channel 1
    negates it (centre taps +1 and -1), so on positive images channel 1 is never active."""
    net = CNN(channels=[2], num_classes=2, image_size=4)
    with torch.no_grad():
        net.layers.conv1.weight.zero_()
        net.layers.conv1.weight[0, 0, 1, 1] = 1.0
        net.layers.conv1.weight[1, 0, 1, 1] = -1.0
        net.layers.conv1.bias.zero_()
        net.layers.out.weight.zero_()
        net.layers.out.bias.copy_(torch.tensor([1.0, 2.0]))
    return net


def test_a_cnn_gives_known_numbers_per_channel():
    images = torch.arange(1.0, 33.0).reshape(2, 1, 4, 4)  # positive pixels
    stats, tensors = probe(tiny_cnn(), images, Y)
    both = torch.cat([images, -images], dim=1)  # the two channels' pre-activations
    assert stats["preact_mean"] == pytest.approx(0.0)
    assert stats["preact_std"] == pytest.approx(both.std().item())
    assert stats["dead_frac"] == 0.5  # one channel of two never positive
    assert stats["logit_norm"] == pytest.approx(math.sqrt(5))  # logits = the bias [1, 2]
    loss = torch.nn.functional.cross_entropy(torch.tensor([[1.0, 2.0], [1.0, 2.0]]), Y)
    assert stats["loss"] == pytest.approx(loss.item())
    assert stats["weight_norm/layers.conv1.weight"] == pytest.approx(math.sqrt(2))
    assert stats["grad_norm/layers.out.weight"] > 0 and stats["weight_norm/layers.out.weight"] == 0
    assert tensors["preact/layers.conv1"].shape == (2, 2, 4, 4) and "activation/layers.act1" in tensors


def test_an_input_batchnorm_is_probed_with_batch_statistics_and_left_alone():
    torch.manual_seed(0)
    model = ScalingClassifier(input_norm="batchnorm")
    x, y = torch.rand(64, 784), torch.randint(0, 10, (64,))
    scaled, _ = probe(model, x, y)
    raw, _ = probe(model, 255 * x, y)  # normalised by the batch: the scale is gone at the first layer
    assert raw["preact_std"] == pytest.approx(scaled["preact_std"], rel=1e-3)
    norm = model.input_norm
    assert torch.equal(norm.running_mean, torch.zeros(784)) and int(norm.num_batches_tracked) == 0
    assert norm.momentum == 0.1 and model.training
    assert "grad_norm/input_norm.weight" in raw
