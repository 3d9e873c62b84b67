"""Why scale matters, measured: statistics of a fixed probe batch through the model.

At step 0 and after every training epoch, :class:`Diagnostics` passes a fixed batch of training
images (``data.probe_size``, 1,000 by default) through the model: one forward pass and one
backward pass for the gradients, without touching the optimizer or ``.grad``. On the reference
model that is about 1.6 GFLOP, under 2% of one training epoch.

It works on any network: forward hooks watch the pass and find, in the order they run, the
first linear or convolution layer (where the input's scale lands) and the first activation
module after it. Logged as ``diag/*`` (TensorBoard and ``metrics.json``):

- ``preact_mean``, ``preact_std``: the first layer's outputs (pre-activations);
- ``dead_frac`` (ReLU and the like): units (linear) or channels (convolution) of that first
  activation never positive anywhere on the probe batch;
- ``saturated_frac`` (sigmoid/tanh): its outputs within 0.01 of the rails;
- ``logit_norm``: mean L2 norm of the logits; ``loss``: cross-entropy on the probe batch;
- ``grad_norm/<parameter>``, ``weight_norm/<parameter>``: per parameter by its own name
  (``layers.fc1.weight``), gradient of the probe loss.

The probe runs in eval mode, except that BatchNorm layers normalise with the probe batch's own
statistics, as in training (their running statistics are left as they were). With a TensorBoard
logger it also writes histograms of the first layer's outputs, of the activations after it and
of its weights.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import Tensor, nn

from fmnist_scaling.data.datamodule import study_data
from fmnist_scaling.models.networks import first_weighted_index
from fmnist_scaling.models.visuals import HISTOGRAM_BINS, tensorboard_writers

#: An output this close to an activation's bounds counts as saturated (sigmoid: < 0.01 or > 0.99).
SATURATION_MARGIN = 0.01
_BOUNDS = {nn.Sigmoid: (0.0, 1.0), nn.Tanh: (-1.0, 1.0), nn.Hardtanh: (-1.0, 1.0)}
#: Activation modules the probe recognises: bounded ones are read for saturation, the rest for dead units.
ACTIVATION_TYPES = (nn.ReLU, nn.LeakyReLU, nn.GELU, nn.ELU, nn.SiLU, nn.ReLU6, nn.Mish, nn.Softplus, *_BOUNDS)
# every batch norm, SyncBatchNorm (trainer.sync_batchnorm under DDP) and the lazy ones included
_BATCH_NORMS = (
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.SyncBatchNorm,
    nn.LazyBatchNorm1d,
    nn.LazyBatchNorm2d,
    nn.LazyBatchNorm3d,
)


def probe(model: nn.Module, x: Tensor, y: Tensor) -> tuple[dict[str, float], dict[str, Tensor]]:
    """Statistics of ``model`` on ``(x, y)``; returns ``(scalars, tensors for histograms)``.
    Parameter names drop a leading ``net.`` (the LightningModule's network)."""
    stats: dict[str, Tensor] = {}
    tensors: dict[str, Tensor] = {}
    seen: list[tuple[str, nn.Module, Tensor]] = []
    names = {module: name.removeprefix("net.") for name, module in model.named_modules()}
    leaves = [m for m in model.modules() if not list(m.children())]
    hooks = [
        m.register_forward_hook(lambda module, args, out: seen.append((names[module], module, out))) for m in leaves
    ]
    params = {name.removeprefix("net."): p for name, p in model.named_parameters() if p.requires_grad}
    modes = {m: m.training for m in model.modules()}
    norms = {m: m.momentum for m in model.modules() if isinstance(m, _BATCH_NORMS)}
    model.eval()
    for norm in norms:  # batch statistics, as in training, with the running ones left alone
        norm.train()
        norm.momentum = 0.0
    tracked = [(count, count.clone()) for norm in norms if (count := norm.num_batches_tracked) is not None]
    try:
        with torch.enable_grad():
            logits = model(x)
            loss = nn.functional.cross_entropy(logits, y)
            grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
    finally:
        for hook in hooks:
            hook.remove()
        for module, training in modes.items():
            module.train(training)
        for norm, momentum in norms.items():
            norm.momentum = momentum
        for count, before in tracked:
            count.copy_(before)
    first = first_weighted_index([m for _, m, _ in seen])
    if first is not None:
        name, layer, out = seen[first]
        stats["preact_mean"], stats["preact_std"] = out.mean(), out.std()
        tensors[f"preact/{name}"] = out
        weight = layer.weight
        assert isinstance(weight, Tensor)  # a linear or convolution layer's
        tensors[f"weight/{name}"] = weight
        act = next(((n, m, o) for n, m, o in seen[first + 1 :] if isinstance(m, ACTIVATION_TYPES)), None)
        if act is not None:
            act_name, act_module, act_out = act
            tensors[f"activation/{act_name}"] = act_out
            stats.update(_unit_health(act_out, act_module))
    stats["logit_norm"] = logits.norm(dim=1).mean()
    stats["loss"] = loss
    for (name, param), grad in zip(params.items(), grads):
        if grad is not None:
            stats[f"grad_norm/{name}"] = grad.norm()
        stats[f"weight_norm/{name}"] = param.norm()
    # one host transfer for all scalars
    values = torch.stack([v.detach().float() for v in stats.values()]).tolist()
    return dict(zip(stats, values)), {k: v.detach() for k, v in tensors.items()}


def _unit_health(activations: Tensor, module: nn.Module) -> dict[str, Tensor]:
    bounds = next((b for kind, b in _BOUNDS.items() if isinstance(module, kind)), None)
    if bounds is not None:
        low, high = bounds
        saturated = (activations < low + SATURATION_MARGIN) | (activations > high - SATURATION_MARGIN)
        return {"saturated_frac": saturated.float().mean()}
    # a unit (linear) or channel (convolution) never positive anywhere on the probe is dead
    per_unit = activations.transpose(0, 1).reshape(activations.shape[1], -1)
    active = (per_unit > 0).any(dim=1)
    return {"dead_frac": 1.0 - active.float().mean()}


class Diagnostics(L.Callback):
    """Probes the model at step 0 and after each training epoch (see the module docstring)."""

    def __init__(self, histograms: bool = True) -> None:
        self.histograms = histograms
        self.initial: dict[str, float] = {}

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.global_step == 0:  # a resumed run keeps the initial values it already has
            self.initial = self._measure(trainer, pl_module)
            for logger in trainer.loggers:
                logger.log_metrics(self.initial, step=0)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        pl_module.log_dict(self._measure(trainer, pl_module), on_step=False, on_epoch=True)

    def _measure(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, float]:
        x, y = study_data(trainer).probe_batch()
        scalars, tensors = probe(pl_module, x, y)
        if self.histograms:
            for writer in tensorboard_writers(trainer):
                for tag, values in tensors.items():
                    finite = torch.isfinite(values)  # a diverged run's NaN/inf: no bins to put them in
                    if not finite.all():  # (the selection copies 1M values: only when needed)
                        values = values[finite]
                    if values.numel():
                        writer.add_histogram(
                            f"hist/{tag}", values.float().cpu(), trainer.global_step, bins=HISTOGRAM_BINS
                        )
        return {f"diag/{k}": v for k, v in scalars.items()}

    def state_dict(self) -> dict[str, Any]:
        return {"initial": self.initial}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.initial = state_dict["initial"]
