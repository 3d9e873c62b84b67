"""The model as a plain ``nn.Module``: an MLP with nothing that could hide the input's scale."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from torch import Tensor, nn

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "gelu": nn.GELU}


class MLP(nn.Module):
    """``in_features -> hidden... -> num_classes`` with PyTorch's default init and no
    normalization layer: nothing in the model may hide the scale of its input.

    Layers are named ``fc1, act1, fc2, act2, ..., out`` so diagnostics can address them.
    """

    def __init__(
        self, in_features: int = 784, hidden: Sequence[int] = (1000,), num_classes: int = 10, activation: str = "relu"
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation={activation!r} is not one of: {', '.join(ACTIVATIONS)}")
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        width = in_features
        for i, out in enumerate(hidden, start=1):
            layers[f"fc{i}"] = nn.Linear(width, out)
            layers[f"act{i}"] = ACTIVATIONS[activation]()
            width = out
        layers["out"] = nn.Linear(width, num_classes)
        self.layers = nn.Sequential(layers)
        self.activation = activation

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


def first_linear(net: nn.Module) -> nn.Linear:
    """The network's first linear layer: the one that sees the scaled input."""
    return next(m for m in net.modules() if isinstance(m, nn.Linear))
