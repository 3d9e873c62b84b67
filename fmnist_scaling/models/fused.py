"""One plain SGD step for the :class:`~fmnist_scaling.models.networks.MLP` without autograd or an optimizer.

The forward pass keeps each layer's input and output; the backward pass is written out (softmax
cross-entropy, then per layer the activation's derivative from its output) and each layer's
gradient goes straight into its weights, ``W.addmm_(grad_out.T, input, alpha=-lr)``, without a
``.grad`` tensor, a zeroing pass or an optimizer loop. The update is the one ``torch.optim.SGD``
makes (no momentum, dampening, weight decay or Nesterov): the same numbers up to float rounding.

Why: at batch 32 this model's step is small enough that the machinery around it costs as much as
the arithmetic. On 2 CPU cores a step took 0.89-0.98 ms fused, 1.22 ms with hand-written
gradients and ``optimizer.step()``, 1.27-1.32 ms with autograd and ``optimizer.step()``.

:func:`why_not_fused` says when the model falls back to autograd (any other network, optimizer or
activation, DDP, mixed precision, anomaly detection).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from fmnist_scaling.models.networks import ACTIVATIONS, MLP, first_weighted


def _relu_grad(grad: Tensor, out: Tensor) -> Tensor:
    # the mask as float32 0/1 straight from the comparison: ``grad * (out > 0)`` made a bool
    # tensor and converted it (three passes over the hidden layer, 4x the time at batch 32).
    # Still a product, not autograd's threshold_backward: the numbers stay the same to the bit,
    # also after a divergence (an infinite gradient times 0 is NaN)
    return grad.mul_(torch.gt(out, 0, out=torch.empty_like(out)))


def _sigmoid_grad(grad: Tensor, out: Tensor) -> Tensor:
    return grad.mul_(out * (1 - out))


def _tanh_grad(grad: Tensor, out: Tensor) -> Tensor:
    return grad.mul_(1 - out * out)


#: Activations whose derivative follows from their output; GELU's needs its input: autograd.
ACTIVATION_GRADS = {"relu": _relu_grad, "sigmoid": _sigmoid_grad, "tanh": _tanh_grad}
#: The same activations in place: the linear layer's output is not needed once activated, and
#: writing over it spares a new tensor per layer and step (the same kernels, the same numbers).
ACTIVATIONS_IN_PLACE = {"relu": torch.relu_, "sigmoid": torch.sigmoid_, "tanh": torch.tanh_}

#: SGD arguments under which the update is ``p -= lr * grad``: their neutral values.
_PLAIN_SGD = {"momentum": 0, "dampening": 0, "weight_decay": 0, "nesterov": False, "maximize": False}


def why_not_fused(
    net: nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    world_size: int = 1,
    precision: str = "32-true",
    detect_anomaly: bool = False,
) -> str | None:
    """``None`` when :func:`sgd_step` makes the same update as autograd and ``optimizer``, else why not."""
    if type(net) is not MLP:  # a subclass may change what the step does
        return f"network {type(net).__name__} (fused: the MLP)"
    if net.activation not in ACTIVATION_GRADS:
        return f"activation {net.activation!r} (fused: {', '.join(ACTIVATION_GRADS)})"
    if type(optimizer) is not torch.optim.SGD:
        return f"optimizer {type(optimizer).__name__} (fused: plain SGD)"
    for group in optimizer.param_groups:
        changed = {k: group.get(k) for k, neutral in _PLAIN_SGD.items() if group.get(k, neutral) != neutral}
        if changed:
            return f"SGD with {', '.join(f'{k}={v}' for k, v in changed.items())} (fused: plain SGD)"
    groups = optimizer.param_groups
    first_weight = first_weighted(net).weight  # (``is``: tensors compare element-wise)
    first_layer_lr = len(groups) == 2 and len(groups[0]["params"]) == 1 and groups[0]["params"][0] is first_weight
    if len({group["lr"] for group in groups}) > 1 and not first_layer_lr:
        return "SGD with several learning rates (fused: one, or another for the first layer's weight)"
    if world_size > 1:
        return f"{world_size} processes (DDP reduces gradients through autograd)"
    if precision != "32-true":  # Trainer.precision, as Lightning normalizes it
        return f"precision {precision} (fused: 32-true)"
    if detect_anomaly:
        return "anomaly detection (it watches autograd)"
    return None


@torch.no_grad()
def sgd_step(net: MLP, x: Tensor, y: Tensor, lr: float, first_weight_lr: float | None = None) -> tuple[Tensor, Tensor]:
    """One SGD step of ``net`` on ``(x, y)`` with mean cross-entropy; returns ``(loss, logits)``
    as they were before the update, like a step through autograd. ``first_weight_lr``: the
    learning rate of the first layer's weight (``model.first_layer_lr_scale``), else ``lr``."""
    activation_grad = ACTIVATION_GRADS[net.activation]
    activate = ACTIVATIONS_IN_PLACE[net.activation]
    linears, inputs, h = [], [], x  # each linear layer and its input, for the backward pass
    for module in net.layers:
        if isinstance(module, nn.Linear):
            linears.append(module)
            inputs.append(h)
            h = torch.addmm(module.bias, h, module.weight.t())
        elif isinstance(module, ACTIVATIONS[net.activation]):
            h = activate(h)
        else:
            h = module(h)
    logits = h
    log_probs = torch.log_softmax(logits, dim=1)
    target = y.unsqueeze(1)
    loss = -log_probs.gather(1, target).mean()
    # d loss / d logits = (softmax - one_hot) / batch
    grad = log_probs.exp_().scatter_add_(1, target, torch.full_like(target, -1, dtype=log_probs.dtype))
    grad.div_(len(y))
    for i in reversed(range(len(linears))):
        linear = linears[i]
        # the gradient for the layer below uses this layer's weights before their update
        below = activation_grad(grad @ linear.weight, inputs[i]) if i > 0 else None
        linear.weight.addmm_(
            grad.t(), inputs[i], alpha=-(first_weight_lr if i == 0 and first_weight_lr is not None else lr)
        )
        linear.bias.sub_(grad.sum(0), alpha=lr)
        if below is not None:  # None for the first layer: no layer below it
            grad = below
    return loss, logits
