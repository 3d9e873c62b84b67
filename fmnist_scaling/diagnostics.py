"""Why scale matters, measured: statistics of a fixed probe batch through the model.

At step 0 and after every training epoch, :class:`Diagnostics` passes a fixed batch of training
images (``data.probe_size``, 1,000 by default) through the model: one forward pass layer by
layer and one backward pass for the gradients, without touching the optimizer or ``.grad``.
On the reference model that is about 1.6 GFLOP, under 2% of one training epoch.

Logged as ``diag/*`` (TensorBoard and ``metrics.json``):

- ``preact_mean``, ``preact_std``: first-layer pre-activations, where the input scale lands;
- ``dead_frac`` (ReLU/GELU): hidden units of the first layer never active on the probe batch;
- ``saturated_frac`` (sigmoid/tanh): first-layer unit outputs within 0.01 of the rails;
- ``logit_norm``: mean L2 norm of the logits; ``loss``: cross-entropy on the probe batch;
- ``grad_norm/<layer>``, ``weight_norm/<layer>``: per linear layer, gradient of the probe loss.

With a TensorBoard logger it also writes histograms of the pre-activations, the hidden
activations and the first-layer weights.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import Tensor, nn

from fmnist_scaling.mlp import MLP
from fmnist_scaling.visuals import HISTOGRAM_BINS, tensorboard_writers

#: An output this close to an activation's bounds counts as saturated (sigmoid: < 0.01 or > 0.99).
SATURATION_MARGIN = 0.01
_BOUNDS = {"sigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0)}


def probe(net: MLP, x: Tensor, y: Tensor) -> tuple[dict[str, float], dict[str, Tensor]]:
    """Statistics of ``net`` on ``(x, y)``; returns ``(scalars, tensors for histograms)``."""
    stats: dict[str, Tensor] = {}
    tensors: dict[str, Tensor] = {}
    linears = {name: m for name, m in net.layers.named_children() if isinstance(m, nn.Linear)}
    was_training = net.training
    net.eval()
    with torch.enable_grad():
        h = x
        for name, layer in net.layers.named_children():
            out = layer(h)
            if name == "fc1":
                stats["preact_mean"], stats["preact_std"] = out.mean(), out.std()
                tensors["preact/fc1"] = out
            if name == "act1":
                tensors["activation/act1"] = out
                stats.update(_unit_health(out, net.activation))
            h = out
        loss = nn.functional.cross_entropy(h, y)
        stats["logit_norm"] = h.norm(dim=1).mean()
        stats["loss"] = loss
        grads = torch.autograd.grad(loss, [m.weight for m in linears.values()])
    net.train(was_training)
    for (name, layer), grad in zip(linears.items(), grads):
        stats[f"grad_norm/{name}"] = grad.norm()
        stats[f"weight_norm/{name}"] = layer.weight.norm()
    tensors["weight/fc1"] = linears["fc1"].weight
    # one host transfer for all scalars
    values = torch.stack([v.detach().float() for v in stats.values()]).tolist()
    return dict(zip(stats, values)), {k: v.detach() for k, v in tensors.items()}


def _unit_health(activations: Tensor, activation: str) -> dict[str, Tensor]:
    if activation in _BOUNDS:
        low, high = _BOUNDS[activation]
        saturated = (activations < low + SATURATION_MARGIN) | (activations > high - SATURATION_MARGIN)
        return {"saturated_frac": saturated.float().mean()}
    active = (activations > 0).any(dim=0)  # ReLU/GELU: a unit never positive on the probe is dead
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
        x, y = trainer.datamodule.probe_batch()
        scalars, tensors = probe(pl_module.net, x, y)
        if self.histograms:
            for writer in tensorboard_writers(trainer):
                for tag, values in tensors.items():
                    values = values[torch.isfinite(values)]  # a diverged run's NaN/inf: no bins to put them in
                    if values.numel():
                        writer.add_histogram(f"hist/{tag}", values.float().cpu(), trainer.global_step, bins=HISTOGRAM_BINS)
        return {f"diag/{k}": v for k, v in scalars.items()}

    def state_dict(self) -> dict[str, Any]:
        return {"initial": self.initial}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.initial = state_dict["initial"]
