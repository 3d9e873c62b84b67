"""An input gain applied as the first layer's parameters, for the optimizers that allow it.

Inputs multiplied by g train the same network as inputs left alone with the first layer's weights
initialised g times larger (V = g W), if the optimizer's update of V is g times its update of W.
The first layer's gradient is then 1/g times as large (∂L/∂V = ∂L/∂W / g), so each optimizer
needs its own factors on the first layer's weight, here as powers of g (derivations in
docs/science.md, "The identity for every optimizer"):

- **SGD** (momentum, dampening and Nesterov included: linear in the gradient): lr × g², weight
  decay ÷ g² (the L2 term wd · W = wd · V / g, times the g² of the lr).
- **Adam** (L2 decay coupled to the gradient, amsgrad included): lr × g, eps ÷ g, weight decay
  ÷ g². Adam divides by the root of its running squared gradient, which is 1/g as large, so
  the step is scale-free except for eps: ``m / (sqrt(v) + eps)`` takes eps ÷ g to stay the same.
  With eps unchanged the two runs differ through eps alone: relatively by at most
  eps · (g - 1) / (sqrt(v̂) + eps) per step where g > 1.
- **AdamW** (decoupled decay, ``V ← V · (1 - lr · wd)``): lr × g, eps ÷ g, weight decay ÷ g
  (lr · wd must stay the same product).

No such identity exists where something sees the first layer's gradient together with the
others' (gradient clipping by the global norm: its clip factor changes for every layer), where
the input is normalised before the first layer (an input BatchNorm removes the gain itself, up
to its eps), or where something is added to the input after the gain (additive noise: g · x + n
is x + n / g at the first layer, another noise).
"""

from __future__ import annotations

from typing import Any

from fmnist_scaling.utils.errors import ConfigError

#: optimizer class name -> {param-group key: power of the gain it is multiplied by}
FACTORS: dict[str, dict[str, int]] = {
    "SGD": {"lr": 2, "weight_decay": -2},
    "Adam": {"lr": 1, "eps": -1, "weight_decay": -2},
    "AdamW": {"lr": 1, "eps": -1, "weight_decay": -1},
}


def factors_for(name: str) -> dict[str, int]:
    """The first layer's factors (powers of the gain) for the optimizer class named ``name``
    (``SGD``, or a dotted path ``torch.optim.SGD``)."""
    name = name.rsplit(".", 1)[-1]
    if name not in FACTORS:
        raise ConfigError(
            f"model.first_layer_gain is not available with the optimizer {name}: no input-gain identity is "
            f"known for it; available with {', '.join(FACTORS)} (or set model.first_layer_gain=1.0)"
        )
    return FACTORS[name]


def apply_gain(group: dict[str, Any], optimizer: Any, gain: float) -> None:
    """Scale a param group (the first layer's weight, already holding the optimizer's values) by
    ``gain``: the factors of :data:`FACTORS` for this optimizer."""
    for key, power in factors_for(type(optimizer).__name__).items():
        group[key] = group[key] * gain**power
