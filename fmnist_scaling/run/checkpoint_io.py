"""Checkpoints: saved at the end of whole epochs, written so that they never leave a truncated
file, and read back safely.

Lightning's ``TorchCheckpointIO`` writes through an fsspec transaction whose temporary file lies
in the system's temporary folder; committing moves it, which across file systems is a copy, and a
full disk then leaves a truncated checkpoint under the real name, one that a resume would try
to load. Here the file is written beside its target and renamed into place (atomic on one file
system): a full disk, a kill or a crash leaves the previous checkpoint and nothing else.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

from fmnist_scaling.utils.errors import ConfigError
from fmnist_scaling.utils.files import atomic_file


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` with an atomic, same-folder save (local paths; others as Lightning).
    ``seconds``: the time spent writing checkpoints so far (the record's ``checkpoint_time_s``).
    A time limit is per spell: a checkpoint loads without the state of ``trainer.max_time``'s
    ``Timer``, which would bring back the time spent before, and a run resumed with the limit
    that stopped it would stop again at once, never further."""

    seconds = 0.0

    def load_checkpoint(self, path: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        checkpoint = super().load_checkpoint(path, *args, **kwargs)
        checkpoint.get("callbacks", {}).pop("Timer", None)
        return checkpoint

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        start = time.perf_counter()
        try:
            if storage_options is not None or "://" in str(path):
                return super().save_checkpoint(checkpoint, path, storage_options)
            target = Path(path)
            target.parent.mkdir(parents=True, exist_ok=True)
            with atomic_file(target) as f:
                torch.save(checkpoint, f)
        finally:
            self.seconds += time.perf_counter() - start


def load_checkpoint(path: Path) -> dict[str, Any]:
    """The checkpoint as plain data (``weights_only=True``); a clear error for anything that is not one of ours."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ConfigError(
            f"{path} is not a checkpoint that loads with weights_only=True ({type(err).__name__})"
        ) from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint or "hyper_parameters" not in checkpoint:
        raise ConfigError(f"{path} is not a checkpoint of fmnist_scaling (no state_dict / hyper_parameters in it)")
    return checkpoint


class WholeEpochCheckpoint(ModelCheckpoint):
    """Lightning's ``ModelCheckpoint``, saving only at the end of an epoch that ran whole (or
    diverged, where the run ends). A limit (``max_time``, ``max_steps``) that stops a run inside
    an epoch leaves the last whole epoch's checkpoint, so a resumed run redoes that epoch from
    its start, as after Ctrl-C: from a checkpoint inside an epoch, Lightning would skip the
    epoch's rest. Its state is stored under ``ModelCheckpoint``'s key: checkpoints of either load."""

    batches_this_epoch = 0

    @property
    def state_key(self) -> str:
        return super().state_key.replace(type(self).__qualname__, ModelCheckpoint.__qualname__, 1)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.batches_this_epoch = 0

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any, **kwargs: Any) -> None:
        self.batches_this_epoch += 1
        super().on_train_batch_end(trainer, pl_module, *args, **kwargs)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.epoch_ended_whole(trainer, pl_module):
            super().on_train_epoch_end(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Lightning saves last.ckpt here when fit saved none: a spell stopped inside its first epoch
        if self.epoch_ended_whole(trainer, pl_module):
            super().on_train_end(trainer, pl_module)

    def epoch_ended_whole(self, trainer: L.Trainer, pl_module: L.LightningModule) -> bool:
        """Whether the epoch that ends ran whole, or diverged (the run ends there)."""
        return self.batches_this_epoch >= trainer.num_training_batches or bool(getattr(pl_module, "diverged_at", None))
