"""A progress bar that counts SGD steps.

Lightning's bar counts Lightning batches; here each one holds ``data.steps_per_batch`` SGD steps
(see :class:`~fmnist_scaling.models.classifier.ScalingClassifier`), so its counts (108 per epoch) match no
number a user sees elsewhere, and with a refresh rate above them it never moved mid-epoch. This
bar counts SGD steps (1,719 per epoch at batch 32), the unit of ``trainer.global_step``, of the
TensorBoard axis and of ``metrics.json``, refreshes every ``refresh_rate`` of them, and names the
evaluation passes (``val``, ``train_full``) instead of numbering their loaders.
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import convert_inf

from fmnist_scaling.data.datamodule import study_data


class StepProgressBar(TQDMProgressBar):
    """``TQDMProgressBar`` in SGD steps; ``refresh_rate`` is in SGD steps too."""

    def __init__(self, refresh_rate: int = 100, process_position: int = 0, leave: bool = False) -> None:
        super().__init__(refresh_rate=refresh_rate, process_position=process_position, leave=leave)
        self._epoch_first_step = 0
        self._shown = 0

    @property
    def total_train_batches(self) -> int | float:
        """SGD steps this epoch: Lightning's batches times the steps in each, at most the split."""
        batches = super().total_train_batches
        steps_in = getattr(getattr(self.trainer, "datamodule", None), "steps_in", None)
        if steps_in is None or not math.isfinite(batches):
            return batches
        return steps_in(batches)

    def on_train_epoch_start(self, trainer: L.Trainer, *args: Any) -> None:
        super().on_train_epoch_start(trainer, *args)
        self.train_progress_bar.unit = "step"
        self._epoch_first_step, self._shown = trainer.global_step, 0

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        bar = self.train_progress_bar
        done = trainer.global_step - self._epoch_first_step
        if (
            bar is None
            or not self.is_enabled
            or (done - self._shown < self.refresh_rate and done < (bar.total or math.inf))
        ):
            return
        bar.n = done
        bar.refresh()
        bar.set_postfix(self.get_metrics(trainer, pl_module))
        self._shown = done

    def on_validation_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        # Lightning's, with the pass's name ("val", "train_full") for "Validation DataLoader <i>"
        if not self.has_dataloader_changed(dataloader_idx):
            return
        names = getattr(study_data(trainer), "val_loader_names", [])
        name = names[dataloader_idx] if dataloader_idx < len(names) else f"validation loader {dataloader_idx}"
        _restart(self.val_progress_bar, self.total_val_batches_current_dataloader, f"Evaluating on {name}")

    def on_test_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        if self.has_dataloader_changed(dataloader_idx):
            _restart(self.test_progress_bar, self.total_test_batches_current_dataloader, "Evaluating on test")


def _restart(bar: Any, total: int | float, description: str) -> None:
    """What Lightning does to an evaluation bar when a new loader starts, with our description."""
    bar.reset()
    bar.total = convert_inf(total)
    bar.initial = 0
    bar.set_description(description)
