"""The run recorder: each epoch's logged metrics, kept and written to ``metrics.json`` after
every epoch (see :mod:`fmnist_scaling.run.records`), with the timings the benchmark reads."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Timer
from omegaconf import DictConfig, OmegaConf

from fmnist_scaling.data import splits
from fmnist_scaling.models.diagnostics import Diagnostics
from fmnist_scaling.models.networks import first_weighted
from fmnist_scaling.run import context, records
from fmnist_scaling.utils.log import log

if TYPE_CHECKING:
    from fmnist_scaling.models.classifier import ScalingClassifier


class RunRecorder(L.Callback):
    """Collects each epoch's logged metrics into ``history`` and writes the run's record after
    each one, so a killed run keeps its finished epochs, and the final record (:meth:`finish`).

    Made with what the record says of the run from the start (its config, overrides, group
    choices, threads); :meth:`attach` adds the trainer and the model it reads the device, the
    step and the diagnostics from. Its state travels in checkpoints: a resumed run continues the
    same history.
    """

    def __init__(
        self,
        run_dir: Path | None = None,
        cfg: DictConfig | None = None,
        overrides: list[str] | None = None,
        choices: dict[str, str] | None = None,
        threads_reason: str = "torch's default",
        start: float | None = None,
        extended_from: int | None = None,
    ) -> None:
        self.run_dir = run_dir
        self.start = time.perf_counter() if start is None else start
        #: what the record says of the run from the start
        self.fields = {
            "status": "running",
            "run_dir": str(run_dir),
            "overrides": list(overrides or []),
            "choices": dict(choices or {}),
            "threads": torch.get_num_threads(),
            "threads_reason": threads_reason,
            "config": OmegaConf.to_container(cfg, resolve=True) if cfg is not None else {},
        }
        if extended_from is not None:  # a finished run of that many epochs, continued: one history
            self.fields["extended_from_epochs"] = extended_from
        self.spell_from = 0
        self.history: list[dict[str, float]] = []
        self.first_step_at: float | None = None  # Unix time: start-up cost, for the benchmark
        #: Unix times of the run's stages (:meth:`mark`), and seconds spent in the evaluation
        #: passes and in writing checkpoints: where the time goes (the benchmark's table)
        self.timeline: dict[str, float] = {}
        self.eval_s = 0.0
        self._eval_start: float | None = None
        self._epoch_start = 0.0
        self._train_end: float | None = None
        self._trainer: Any = None
        self._model: Any = None
        self._network: dict[str, Any] = {}  # what the record says of the network, see attach
        self._dataset: dict[str, Any] = {}  # and of the dataset

    def attach(self, trainer: L.Trainer, model: ScalingClassifier, net_choice: str, dataset: Any = None) -> None:
        """Record this trainer's run of ``model`` (whose network is the config choice ``net_choice``)
        on ``dataset`` (:class:`~fmnist_scaling.data.datasets.ImageDataset`)."""
        self._trainer, self._model = trainer, model
        self._dataset = dataset.describe() if dataset is not None else {}
        self._network = {
            "net": net_choice,
            "class": type(model.net).__qualname__,
            "input_norm": model.hparams["input_norm"],
            "init": model.hparams["init"],
            "input_shape": list(model.input_shape),
            "parameters": sum(p.numel() for p in model.parameters()),
            # the layer the diagnostics call the first (report reads its weight norm by this name)
            "first_layer": _name_of(model.net, first_weighted(model.net)),
        }

    def mark_start(self, main_at: float | None, in_sweep: bool) -> None:
        """The timeline's first marks: Hydra's ``main`` called, the command line read (a single
        run's: a sweep's later jobs did not start with it), the imports done."""
        if main_at:
            self.timeline["main"] = main_at
        if context.command.started_at and not in_sweep:
            self.timeline["cli"] = context.command.started_at
        self.mark("imports")

    def mark(self, stage: str) -> None:
        """Note that ``stage`` (``main``, ``imports``, ``setup``, ``fit_end``, ``test_end``) ends now."""
        self.timeline[stage] = time.time()

    # ---- the record
    def snapshot(self, **extra: Any) -> dict[str, Any]:
        """The record as it stands, with ``extra`` fields (the final status, metrics, an error)."""
        diagnostics = next((c for c in self._trainer.callbacks if isinstance(c, Diagnostics)), None)
        checkpoint_io = getattr(self._trainer.strategy, "checkpoint_io", None)
        timing = {
            "wall_time_s": time.perf_counter() - self.start,
            "first_step_at": self.first_step_at,
            "timeline": dict(self.timeline),
            "eval_time_s": self.eval_s,
            "checkpoint_time_s": getattr(checkpoint_io, "seconds", None),
        }
        if torch.cuda.is_available():
            timing["gpu_peak_bytes"] = torch.cuda.max_memory_allocated()
        device = {"device": str(self._trainer.strategy.root_device)}  # cuda:0 where Lightning found a GPU
        return {
            **self.fields,
            **device,
            **self.progress(),  # every record says how far the run got, an interrupted one too
            "dataset": self._dataset,
            "network": self._network,
            "train_step": self._model.step_kind,
            "history": self.history,
            "initial": diagnostics.initial if diagnostics else {},
            **timing,
            **extra,
        }

    def write(self, **extra: Any) -> dict[str, Any]:
        """Write the record with ``extra`` (under DDP every rank calls this; rank zero writes)."""
        snapshot = self.snapshot(**extra)
        if self._trainer.is_global_zero:
            assert self.run_dir is not None, "a recorder made without a run folder writes no record"
            records.write(self.run_dir, snapshot)
        return snapshot

    def finish(self, tested: list[dict[str, float]], num_classes: int) -> dict[str, Any]:
        """Write the final record: the last epoch's metrics and the test's (``tested``, as
        ``Trainer.test`` returns them), how the run ended (:meth:`ending`), collapse."""
        final = {k: v for k, v in (self.history[-1] if self.history else {}).items() if "/" in k}
        final |= {k: float(v) for k, v in (tested[0] if tested else {}).items() if "/" in k}
        return self.write(
            **self.ending(),
            collapsed=records.is_collapsed(final, num_classes),
            diverged_at=self._model.diverged_at,
            final=final,
        )

    def ending(self) -> dict[str, Any]:
        """How ``fit`` ended: ``diverged``; ``completed`` (every planned step: the epochs asked
        for, each as long as ``limit_train_batches`` allows); or ``stopped`` before that, with
        ``stopped_by``: ``trainer.max_time``, ``trainer.max_steps`` or a callback that asked the
        trainer to stop. With the steps done and planned, and their fraction."""
        trainer = self._trainer
        steps = self.progress()
        done, planned = steps["steps_done"], steps["steps_planned"]
        if self._model.diverged_at:
            return {"status": "diverged", **steps}
        if done >= planned:
            return {"status": "completed", **steps}
        timer = next((c for c in trainer.callbacks if isinstance(c, Timer)), None)  # trainer.max_time's
        if trainer.max_steps > 0 and done >= trainer.max_steps:
            by = "trainer.max_steps"
        elif timer is not None and (timer.time_remaining("train") or 0) <= 0:
            by = "trainer.max_time"
        else:
            by = "a callback (early stopping)"
        saved = max((h["step"] for h in self.history if not h.get("partial")), default=0)
        if by == "trainer.max_time" and saved <= self.spell_from:  # a resume redoes the same part again
            log.warning(
                f"warning: trainer.max_time ended this spell inside its first epoch (from step {self.spell_from:,}; "
                f"an epoch is {self._steps_per_epoch(trainer):,} steps): nothing new is saved, and the same limit "
                "will stop a resume at the same place; give it more time than an epoch takes"
            )
        return {"status": "stopped", "stopped_by": by, **steps}

    def progress(self) -> dict[str, Any]:
        """SGD steps done and planned, and their fraction."""
        trainer = self._trainer
        planned = self._steps_per_epoch(trainer) * trainer.max_epochs
        done = trainer.global_step
        return {"steps_done": done, "steps_planned": planned, "fraction_done": done / planned if planned else 0.0}

    @staticmethod
    def _steps_per_epoch(trainer: L.Trainer) -> int:
        """SGD steps an epoch as planned: Lightning's batches (``limit_train_batches`` counted)
        times the steps in each, at most the split (:class:`~fmnist_scaling.data.datamodule.StudyData`)."""
        datamodule = getattr(trainer, "datamodule", None)
        if datamodule is None or not hasattr(datamodule, "steps_in"):
            return int(trainer.num_training_batches)
        return datamodule.steps_in(trainer.num_training_batches)

    # ---- hooks
    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self.first_step_at is None:
            self.first_step_at = time.time()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.spell_from = trainer.global_step  # where this spell starts: 0, or a resume's checkpoint

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._epoch_start, self._train_end = time.perf_counter(), None

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._eval_start = time.perf_counter()
        if self._train_end is None:  # the first validation pass of the epoch ends its training steps
            self._train_end = self._eval_start

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._eval_start is not None:
            self.eval_s += time.perf_counter() - self._eval_start
            self._eval_start = None

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        entry: dict[str, float] = {"epoch": trainer.current_epoch + 1, "step": trainer.global_step}
        first = self.history[-1]["step"] if self.history and self.history[-1]["epoch"] < entry["epoch"] else 0
        if trainer.global_step - first < self._steps_per_epoch(trainer) and not trainer.sanity_checking:
            entry["partial"] = True  # stopped inside the epoch (a time or step limit, divergence)
        end = time.perf_counter()
        entry["epoch_time_s"] = end - self._epoch_start  # training steps and validation passes
        entry["train_time_s"] = (self._train_end or end) - self._epoch_start  # training steps only
        entry |= {
            k: float(v) for k, v in trainer.callback_metrics.items() if "/" in k and not k.startswith(f"{splits.TEST}/")
        }
        self.history = [h for h in self.history if h["epoch"] < entry["epoch"]] + [entry]
        if self.run_dir is not None:
            self.write()

    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = state_dict["history"]


def _name_of(net: torch.nn.Module, layer: torch.nn.Module) -> str:
    return next(name for name, module in net.named_modules() if module is layer)
