"""The run recorder: each epoch's logged metrics, kept for ``metrics.json`` (see
:mod:`fmnist_scaling.results`), with the timings the benchmark reads."""

from __future__ import annotations

import time
from typing import Any

import lightning as L


class RunRecorder(L.Callback):
    """Collects each epoch's logged metrics into ``history`` and hands the record on to
    ``on_epoch`` (which writes ``metrics.json``) so a killed run keeps its finished epochs.

    Its state travels in checkpoints: a resumed run continues the same history.
    """

    def __init__(self, on_epoch: Any = None) -> None:
        self.history: list[dict[str, float]] = []
        self.on_epoch = on_epoch
        self.first_step_at: float | None = None  # Unix time: start-up cost, for the benchmark
        self._epoch_start, self._train_end = 0.0, None

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        if self.first_step_at is None:
            self.first_step_at = time.time()

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._epoch_start, self._train_end = time.perf_counter(), None

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._train_end is None:  # the first validation pass of the epoch ends its training steps
            self._train_end = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        entry = {"epoch": trainer.current_epoch + 1, "step": trainer.global_step}
        end = time.perf_counter()
        entry["epoch_time_s"] = end - self._epoch_start  # training steps and validation passes
        entry["train_time_s"] = (self._train_end or end) - self._epoch_start  # training steps only
        entry |= {k: float(v) for k, v in trainer.callback_metrics.items() if "/" in k and not k.startswith("test/")}
        self.history = [h for h in self.history if h["epoch"] < entry["epoch"]] + [entry]
        if self.on_epoch is not None:
            self.on_epoch()

    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = state_dict["history"]
