"""The names the networks' options take and the types of their arguments, without torch: the
config's schema checks them before a run imports anything (:mod:`fmnist_scaling.run.schema`
reads a network's annotations as the rules of its arguments), the networks build from them."""

from collections.abc import Sequence
from typing import Annotated, Literal, get_args

#: ``model.net.activation``: the hidden activation.
Activation = Literal["relu", "sigmoid", "tanh", "gelu"]
ACTIVATION_NAMES: tuple[str, ...] = get_args(Activation)
#: ``model.init``: how the weights of every linear and convolution layer are drawn (biases: 0).
INITS = ("default", "he", "lecun")
#: ``model.input_norm``: a BatchNorm on the input, the learned-scaling baseline (or none).
INPUT_NORMS = ("none", "batchnorm")

# The types of the networks' arguments; a string in Annotated is a bound the schema checks.
#: A size: input features, an image's side.
Size = Annotated[int, ">= 1"]
#: One width (or channel count) per layer: at least one layer, each at least 1 wide.
Widths = Annotated[Sequence[int], "non-empty", ">= 1"]
#: The classes to tell apart: at least two.
Classes = Annotated[int, ">= 2"]
