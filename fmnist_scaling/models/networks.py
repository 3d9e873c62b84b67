"""The networks: plain ``nn.Module`` classes, one per variant, each chosen by one yaml in
``conf/model/net/`` whose ``_target_`` names it (``model/net=mlp``, ``model/net=cnn``).

Adding a network takes one class (here or in any importable module) and one yaml. The class
takes its sizes as plain constructor arguments and says what input it wants with an
``input_shape`` attribute: ``(784,)`` for flat images, ``(1, 28, 28)`` for one channel of 28 x 28
(the data module reshapes the scaled images to it; without the attribute a network gets flat
images). Nothing else is asked of it: the diagnostics find its first layer with weights and
the activation after it by watching a forward pass (use activation modules, ``nn.ReLU()``, not
``F.relu``, so they can be seen), and the LightningModule adds the input BatchNorm and the
initialisation (``model.input_norm``, ``model.init``) to any network.

No network here has a normalization layer of its own: nothing may hide the scale of its input
unless the run asks for it (``model.input_norm=batchnorm``).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from fmnist_scaling.data.datasets import DEFAULT
from fmnist_scaling.models.options import ACTIVATION_NAMES, INITS, INPUT_NORMS, Activation, Classes, Size, Widths

ACTIVATIONS: dict[str, type[nn.Module]] = dict(
    zip(ACTIVATION_NAMES, (nn.ReLU, nn.Sigmoid, nn.Tanh, nn.GELU), strict=True)
)
#: The input of a network that does not say what it wants (no ``input_shape``): flat images of the
#: default dataset (784 values); a network for other images says its ``input_shape``, as these do.
FLAT_INPUT = (DEFAULT.pixels(),)
#: Layers whose weights meet the input (or the layer below): where a gain lands, what ``init`` sets.
WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def make_activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"activation={name!r} is not one of: {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


class MLP(nn.Module):
    """``in_features -> hidden... -> num_classes`` with PyTorch's default init: the article's
    network (784 -> 1000 -> ReLU -> 10). Layers are named ``fc1, act1, fc2, act2, ..., out``."""

    def __init__(
        self,
        in_features: Size = FLAT_INPUT[0],
        hidden: Widths = (1000,),
        num_classes: Classes = 10,
        activation: Activation = "relu",
    ) -> None:
        super().__init__()
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        width = in_features
        for i, out in enumerate(hidden, start=1):
            layers[f"fc{i}"] = nn.Linear(width, out)
            layers[f"act{i}"] = make_activation(activation)
            width = out
        layers["out"] = nn.Linear(width, num_classes)
        self.layers = nn.Sequential(layers)
        self.activation = activation
        self.input_shape = (in_features,)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


class CNN(nn.Module):
    """A small CNN for square grey images (``image_size``, 28 by default): per block a 3 x 3
    convolution (padding 1), the activation and a 2 x 2 max-pool (28 -> 14 -> 7), then one linear
    layer to the classes.
    ``channels=(8, 16)``: about 0.29 M multiply-adds per image (the MLP: 0.8 M), 1,248
    parameters in the convolutions and 7,850 in the linear layer."""

    def __init__(
        self,
        channels: Widths = (8, 16),
        num_classes: Classes = 10,
        activation: Activation = "relu",
        image_size: Size = 28,
    ) -> None:
        super().__init__()
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        width, side = 1, image_size
        for i, out in enumerate(channels, start=1):
            layers[f"conv{i}"] = nn.Conv2d(width, out, kernel_size=3, padding=1)
            layers[f"act{i}"] = make_activation(activation)
            layers[f"pool{i}"] = nn.MaxPool2d(2)
            width, side = out, side // 2
        layers["flatten"] = nn.Flatten()
        layers["out"] = nn.Linear(width * side * side, num_classes)
        self.layers = nn.Sequential(layers)
        self.activation = activation
        self.input_shape = (1, image_size, image_size)
        # evaluation passes in batches of 256: its activations (25 KB an image) then stay in the
        # CPU's caches; 0.5 s per 10,000 images against 0.9 s at 2,000 (2 cores)
        self.eval_batch_size = 256

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


def input_shape_of(net: nn.Module) -> tuple[int, ...]:
    """The shape of one input ``net`` asks for: its ``input_shape``, else flat images."""
    return tuple(getattr(net, "input_shape", FLAT_INPUT))


def first_weighted_index(modules: Sequence[nn.Module]) -> int | None:
    """Where the first layer is among ``modules`` in the order a forward pass reached them: the
    first linear or convolution layer, the one that sees the (scaled) input. The one definition
    of "the first layer": the probe reads it off the pass it watches, :func:`first_weighted`
    off a pass of its own."""
    return next((i for i, m in enumerate(modules) if isinstance(m, WEIGHTED)), None)


def first_weighted(net: nn.Module) -> nn.Module:
    """The network's first layer (:func:`first_weighted_index`), found by one forward pass of
    zeros in eval mode, without gradients (no running statistics or parameters change)."""
    reached: list[nn.Module] = []
    leaves = [m for m in net.modules() if not list(m.children())]
    hooks = [m.register_forward_hook(lambda module, args, out: reached.append(module)) for m in leaves]
    modes = {m: m.training for m in net.modules()}
    param = next(net.parameters(), None)
    zeros = torch.zeros(
        2,
        *input_shape_of(net),
        device=param.device if param is not None else None,
        dtype=param.dtype if param is not None else None,
    )
    try:
        net.eval()
        with torch.no_grad():
            net(zeros)
    finally:
        for hook in hooks:
            hook.remove()
        for module, training in modes.items():
            module.train(training)
    index = first_weighted_index(reached)
    if index is None:
        raise ValueError(f"{type(net).__name__} has no linear or convolution layer")
    return reached[index]


def initialize(net: nn.Module, scheme: str) -> None:
    """Re-draw the weights of every linear and convolution layer: ``he`` normal with std
    sqrt(2 / fan_in) (Kaiming, for ReLU), ``lecun`` normal with std sqrt(1 / fan_in); biases 0.
    ``default`` keeps PyTorch's (uniform, bound 1 / sqrt(fan_in) for weights and biases)."""
    if scheme not in INITS:
        raise ValueError(f"init={scheme!r} is not one of: {', '.join(INITS)}")
    if scheme == "default":
        return
    gain = 2.0 if scheme == "he" else 1.0
    for module in net.modules():
        if isinstance(module, WEIGHTED):
            fan_in = module.weight[0].numel()
            nn.init.normal_(module.weight, std=math.sqrt(gain / fan_in))
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def input_norm(kind: str, input_shape: Sequence[int]) -> nn.Module:
    """``batchnorm``: per feature for flat input (BatchNorm1d(784): a learned per-pixel
    standardization), per channel for images (BatchNorm2d(1): one learned mean and std)."""
    if kind not in INPUT_NORMS:
        raise ValueError(f"input_norm={kind!r} is not one of: {', '.join(INPUT_NORMS)}")
    if kind == "none":
        return nn.Identity()
    return nn.BatchNorm1d(input_shape[0]) if len(input_shape) == 1 else nn.BatchNorm2d(input_shape[0])
