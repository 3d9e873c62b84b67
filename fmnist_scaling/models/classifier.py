"""The LightningModule that trains any network of :mod:`fmnist_scaling.models.networks` (or your own)
and measures it."""

from __future__ import annotations

from typing import Any, cast

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from fmnist_scaling.data import splits
from fmnist_scaling.data.datamodule import study_data
from fmnist_scaling.models import fused
from fmnist_scaling.models.gain import apply_gain
from fmnist_scaling.models.networks import MLP, first_weighted, initialize, input_shape_of
from fmnist_scaling.models.networks import input_norm as input_norm_layer
from fmnist_scaling.utils.compat import counted_step
from fmnist_scaling.utils.errors import ConfigError, root_cause

#: Split names whose accuracy and loss the module logs as ``<name>/acc`` and ``<name>/loss``.


#: The network of the reference study, used when none is given: the MLP, whose defaults are the article's.
DEFAULT_NET = {"_target_": "fmnist_scaling.models.networks.MLP"}


class ScalingClassifier(L.LightningModule):
    """Trains a network (``net``, a Hydra config: the article's MLP by default) with
    cross-entropy and logs what the study compares. It adds to any network what the study may
    vary around it: ``input_norm`` (``batchnorm``: a BatchNorm on the input, the learned-scaling
    baseline), ``init`` (``default``, ``he``, ``lecun``: see :func:`fmnist_scaling.models.networks.initialize`)
    and the first layer's ``first_layer_init_scale`` and ``first_layer_lr_scale`` (README: scale
    is a learning rate, exactly), applied to the first linear or convolution layer.

    Metrics (per epoch): ``train/loss`` and ``train/acc`` are running values over the epoch's
    training steps, weights changing as they go; ``train_full/loss`` and ``train_full/acc`` come
    from one pass over the whole training split after the epoch, in eval mode: the article's
    training accuracy. ``val/*`` and ``test/*`` likewise after the epoch and after fit.

    Optimization is done here rather than by Lightning: each Lightning batch is a list of K
    minibatches, and ``training_step`` takes one SGD step on each (``data.steps_per_batch``).
    Lightning's automatic optimization would wrap every step in a closure and five hooks;
    ``global_step`` still counts SGD steps. Gradient clipping and accumulation through the
    Trainer are therefore not available.

    With ``fused_step`` (the default), the MLP without an input BatchNorm, and plain SGD on one
    process, each step is :func:`fmnist_scaling.models.fused.sgd_step`: the same update without
    autograd or the optimizer loop, a third faster at batch 32. Anything else (another network,
    Adam, momentum, GELU, DDP, mixed precision) takes the autograd path; ``step_kind`` says
    which one ran and why. The fused path does not call the ``on_before_optimizer_step`` hooks.

    A non-finite training loss is a result, not a crash: the run stops after the group of steps
    in which it appeared, and ``diverged_at`` holds the epoch and the step of the first one.

    Args are plain values (no modules, no callables), so checkpoints load with
    ``torch.load(weights_only=True)``. ``optimizer`` is a Hydra config: ``_target_`` and arguments.
    """

    def __init__(
        self,
        net: dict[str, Any] | None = None,
        num_classes: int = 10,
        input_norm: str = "none",
        init: str = "default",
        optimizer: dict[str, Any] | None = None,
        fused_step: bool = True,
        first_layer_init_scale: float = 1.0,
        first_layer_lr_scale: float = 1.0,
        first_layer_gain: float = 1.0,
    ) -> None:
        super().__init__()
        optimizer = _plain(optimizer) or {"_target_": "torch.optim.SGD", "lr": 1e-2}
        net = _plain(net) or dict(DEFAULT_NET)
        self.save_hyperparameters(
            {
                "net": net,
                "num_classes": int(num_classes),
                "input_norm": str(input_norm),
                "init": str(init),
                "optimizer": optimizer,
                "fused_step": bool(fused_step),
                "first_layer_init_scale": float(first_layer_init_scale),
                "first_layer_lr_scale": float(first_layer_lr_scale),
                "first_layer_gain": float(first_layer_gain),
            },
            logger=False,  # the run logs hparams once, with final metrics (TensorBoard's HPARAMS view)
        )
        self.net: nn.Module = instantiate(net)
        initialize(self.net, init)
        if first_layer_init_scale != 1.0:  # see the README: scale is a learning rate, exactly
            with torch.no_grad():
                _first_weight(self.net).mul_(first_layer_init_scale)
        if first_layer_gain != 1.0:  # an input gain as parameters: init x g, the optimizer's factors (gain.py)
            with torch.no_grad():
                _first_weight(self.net).mul_(first_layer_gain)
        #: the shape of one input the network asks for: (784,) flat, (1, 28, 28) an image
        self.input_shape = input_shape_of(self.net)
        self.input_norm: nn.Module = input_norm_layer(input_norm, self.input_shape)
        self.loss_fn = nn.CrossEntropyLoss()
        # validate_args=False: the checks cost a host sync per update
        self.accuracy = nn.ModuleDict(
            {
                f"{name}_acc": MulticlassAccuracy(num_classes, average="micro", validate_args=False)
                for name in (splits.TRAIN, *splits.EVAL_SPLITS)
            }
        )
        self.train_loss = MeanMetric(nan_strategy="disable")  # a NaN loss must show, not be dropped
        self.test_confusion = MulticlassConfusionMatrix(num_classes)
        self.automatic_optimization = False  # see the class docstring
        self.diverged_at: dict[str, int] | None = None
        self.step_kind = "autograd"  # or "fused"; chosen when training starts

    def forward(self, x: Tensor) -> Tensor:
        return self.net(self.input_norm(x))

    # ---- training
    def on_train_start(self) -> None:
        trainer, optimizer = self.trainer, self.optimizers()
        assert not isinstance(optimizer, list)  # configure_optimizers returns one optimizer
        self.choose_step(
            optimizer.optimizer,
            world_size=trainer.world_size,
            precision=trainer.precision,
            detect_anomaly=torch.is_anomaly_enabled(),  # Trainer(detect_anomaly=True) turns it on around fit
        )

    def on_train_epoch_start(self) -> None:
        self._last_batch = self.trainer.num_training_batches - 1

    def training_step(self, batch: list[tuple[Tensor, Tensor]], batch_idx: int) -> None:
        """K SGD steps, one per minibatch of ``batch`` (see ``data.steps_per_batch``)."""
        optimizer = self.optimizers()
        steps = [self._lightning_step(x, y, optimizer) for x, y in batch]
        losses = torch.stack([loss.detach() for loss, _ in steps])
        logits = torch.cat([out.detach() for _, out in steps])
        labels = torch.cat([y for _, y in batch])
        # running metrics, accumulated on the device and logged once per epoch
        self._accuracy(splits.TRAIN).update(logits, labels)
        self.train_loss.update(losses, torch.tensor([len(y) for _, y in batch], device=losses.device))
        self._check_divergence(losses)
        if batch_idx == self._last_batch or self.diverged_at:
            self._log_train_epoch()

    def _lightning_step(self, x: Tensor, y: Tensor, optimizer: Any) -> tuple[Tensor, Tensor]:
        """One SGD step in training: counted in ``global_step``; through autograd, the backward
        pass and the step go through Lightning (its precision and DDP handling)."""
        if self.step_kind == "fused":
            return counted_step(optimizer, lambda: self.sgd_step(x, y, optimizer.optimizer))
        out = self(x)
        loss = self.loss_fn(out, y)
        optimizer.zero_grad()
        self.manual_backward(loss)
        optimizer.step()
        return loss, out

    # ---- the SGD step, for any network (the network knows nothing of it)
    def choose_step(self, optimizer: torch.optim.Optimizer, **trainer: Any) -> str:
        """Set ``step_kind``: ``fused`` where :func:`fmnist_scaling.models.fused.sgd_step` makes the same
        update as autograd and ``optimizer`` (``trainer``: world_size, precision, detect_anomaly),
        else ``autograd (why)``."""
        reason: str | None = "model.fused_step=false"
        if self.hparams["input_norm"] != "none":
            reason = f"model.input_norm={self.hparams['input_norm']} (fused: the network alone)"
        elif self.hparams.get("fused_step", True):
            reason = fused.why_not_fused(self.net, optimizer, **trainer)
        self.step_kind = "fused" if reason is None else f"autograd ({reason})"
        return self.step_kind

    def sgd_step(self, x: Tensor, y: Tensor, optimizer: torch.optim.Optimizer) -> tuple[Tensor, Tensor]:
        """One step of ``optimizer`` (a plain torch one) on ``(x, y)``, of the kind ``step_kind``
        names; returns the loss and the logits as they were before the update."""
        if self.step_kind == "fused":
            # with a first-layer lr, the first group is that layer's weight
            lr, first_lr = optimizer.param_groups[-1]["lr"], optimizer.param_groups[0]["lr"]
            assert isinstance(self.net, MLP)  # choose_step picks fused for the MLP alone
            return fused.sgd_step(self.net, x, y, lr, first_weight_lr=first_lr)
        out = self(x)
        loss = self.loss_fn(out, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss, out

    def _accuracy(self, split: str) -> MulticlassAccuracy:
        """The accuracy metric of ``split`` (``train`` or one of :data:`EVAL_SPLITS`)."""
        metric = self.accuracy[f"{split}_acc"]
        assert isinstance(metric, MulticlassAccuracy)  # a ModuleDict's items are typed as any module
        return metric

    def _check_divergence(self, losses: Tensor) -> None:
        nonfinite = ~torch.isfinite(losses)
        if nonfinite.any():  # one host sync per group of steps
            first = int(nonfinite.nonzero()[0])
            self.diverged_at = {"epoch": self.current_epoch, "step": self.global_step - len(losses) + first}
            self.trainer.should_stop = True

    def _log_train_epoch(self) -> None:
        # logged from the last step rather than on_train_epoch_end, which Lightning calls after
        # the callbacks' (the run recorder must see the epoch's values)
        self._log_step_axis()
        self.log(splits.loss(splits.TRAIN), self.train_loss.compute(), on_step=False, on_epoch=True, batch_size=1)
        self.log(
            splits.acc(splits.TRAIN), self._accuracy(splits.TRAIN).compute(), on_step=False, on_epoch=True, batch_size=1
        )
        self.train_loss.reset()
        self._accuracy(splits.TRAIN).reset()

    # ---- evaluation
    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int, dataloader_idx: int = 0) -> None:
        names = getattr(study_data(self.trainer), "val_loader_names", [splits.VAL])
        self._evaluate(names[dataloader_idx], batch)

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        logits = self._evaluate(splits.TEST, batch)
        self.test_confusion.update(logits, batch[1])

    def _evaluate(self, name: str, batch: tuple[Tensor, Tensor]) -> Tensor:
        x, y = batch
        logits = self(x)
        self._accuracy(name).update(logits, y)
        # sync_dist: under DDP the epoch's mean loss over every rank's shard (once per epoch)
        kwargs: dict[str, Any] = {
            "on_step": False,
            "on_epoch": True,
            "batch_size": len(y),
            "add_dataloader_idx": False,
            "sync_dist": True,
        }
        self.log(f"{name}/loss", self.loss_fn(logits, y), **kwargs)
        self.log(f"{name}/acc", self._accuracy(name), **kwargs)
        return logits

    def on_validation_epoch_end(self) -> None:
        self._log_step_axis()

    def on_test_epoch_start(self) -> None:
        self.test_confusion.reset()

    def on_test_epoch_end(self) -> None:
        self._log_step_axis()

    def _log_step_axis(self) -> None:
        """Lightning plots logged values against a "step" value logged with them, else against
        its count of Lightning batches (108 per epoch here); the histograms, images and
        ``metrics.json`` use SGD steps (1,719 per epoch). Logging it puts everything on one axis."""
        self.log("step", float(self.global_step), on_step=False, on_epoch=True, batch_size=1)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        scale, gain = self.hparams.get("first_layer_lr_scale", 1.0), self.hparams.get("first_layer_gain", 1.0)
        if scale == 1.0 and gain == 1.0:
            return instantiate(self.hparams["optimizer"], params=self.parameters())
        # the first layer's weight in a group of its own, with its learning rate scaled
        first = _first_weight(self.net)
        rest = [p for p in self.parameters() if p is not first]
        groups = [{"params": [first], "lr": self.hparams["optimizer"]["lr"] * scale}, {"params": rest}]
        optimizer = instantiate(self.hparams["optimizer"], _partial_=True)(groups)  # groups of tensors: past Hydra
        if gain != 1.0:  # the group now holds the optimizer's own values (eps, weight_decay): scale them
            apply_gain(optimizer.param_groups[0], optimizer, gain)
        return optimizer


def _first_weight(net: nn.Module) -> Tensor:
    """The weight of the network's first layer (:func:`first_weighted`: a linear or convolution layer)."""
    weight = first_weighted(net).weight
    assert isinstance(weight, Tensor)  # a module's attributes are typed as tensor or module
    return weight


def _plain(config: Any) -> dict[str, Any] | None:
    """A config (DictConfig or dict) as a plain dict, interpolations resolved: hyperparameters
    that a checkpoint holds as plain values."""
    if isinstance(config, DictConfig):
        # to_container's stubs say any container of any keys; a DictConfig gives a dict, keyed by name here
        return cast(dict[str, Any], OmegaConf.to_container(config, resolve=True))
    return dict(config) if config is not None else None


def build_model(model: DictConfig) -> ScalingClassifier:
    """The LightningModule of a ``model`` config with its network; a network that cannot be built
    from its config (a wrong argument, a class that is not there) is a bad input, named as such."""
    from hydra.errors import InstantiationException

    try:
        return instantiate(model, _recursive_=False)
    except (InstantiationException, TypeError, ValueError, ImportError) as err:
        target = OmegaConf.select(model, "net._target_")
        raise ConfigError(f"model.net could not build {target}: {root_cause(err)}") from None
