"""Train and test one run: ``python -m fmnist_scaling.train scaling=max``.

A Hydra multirun (``-m``) sweeps; a sweep re-run in the same ``hydra.sweep.dir`` skips finished
jobs and resumes unfinished ones from their last checkpoint. ``resume=<run dir>`` resumes a
single run. Each run writes into its own directory: TensorBoard events, the composed config
(``.hydra/``), ``checkpoints/`` and ``metrics.json`` (see :mod:`fmnist_scaling.run.records`).

This file is the pipeline, in the order it runs: check the config and the run folder, build the
model, the data and the trainer from the config, fit, test, record. How a run ends otherwise
(signals, failures, a rejected config) is :mod:`fmnist_scaling.run.lifecycle`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from fmnist_scaling.run import cli, records
from fmnist_scaling.run.experiment import chosen_groups, extends, previous_record
from fmnist_scaling.run.folder_lock import only_writer
from fmnist_scaling.run.lifecycle import StopRun, StopSignals, busy, end_early, reject
from fmnist_scaling.run.threads import set_threads
from fmnist_scaling.run.validate import check_run
from fmnist_scaling.utils.compat import exit_without_teardown
from fmnist_scaling.utils.errors import BadInput, Fault
from fmnist_scaling.utils.imports import heavy_imports
from fmnist_scaling.utils.log import follow_hydra_files, log


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float:
    """Hold the run folder (one process at a time), check the config and the folder, skip a
    finished run, else train. Returns the run's headline accuracy (what a sweeper optimises)."""
    main_at = time.time()  # the command line checked, the config composed, the run folder made
    hydra_cfg = HydraConfig.get()
    run_dir, in_sweep = Path(hydra_cfg.runtime.output_dir), hydra_cfg.mode == RunMode.MULTIRUN
    follow_hydra_files()
    with only_writer(run_dir) as alone:
        if not alone:  # the same run, already under way in another process: it is left to finish
            return busy(run_dir, in_sweep)
        return checked_run(cfg, hydra_cfg, run_dir, in_sweep, main_at)


def checked_run(cfg: DictConfig, hydra_cfg: Any, run_dir: Path, in_sweep: bool, main_at: float) -> float:
    """The checks of the config and the folder, then the skip of a finished run or :func:`train`."""
    previous = None
    try:
        previous = previous_record(run_dir, in_sweep)
        check_run(cfg, run_dir, previous, in_sweep, list(hydra_cfg.overrides.task))
    except BadInput as err:
        return reject(err, run_dir, in_sweep, previous)
    if previous and previous.get("status") in records.FINISHED and not extends(cfg, previous):
        log.info(f"{run_dir}: already {previous['status']}, skipped (delete its metrics.json to run it again)")
        return records.objective(previous)
    stop = StopSignals(run_dir.name if in_sweep else None)
    try:
        with stop:
            return train(cfg, run_dir, in_sweep, stop, previous, main_at)
    except (BadInput, Fault, StopRun) as err:  # before training: the data, or a signal
        return reject(err, run_dir, in_sweep, None)


def train(
    cfg: DictConfig,
    run_dir: Path,
    in_sweep: bool,
    stop: StopSignals,
    previous: dict | None = None,
    main_at: float | None = None,
) -> float:
    """Build the model, the data and the trainer from ``cfg``; fit, test and record the run
    (``main_at``: when Hydra called ``main``, the record's timeline)."""
    start = time.perf_counter()  # the record's wall_time_s counts the imports below, as it always has
    with heavy_imports():  # imported here: a rejected config exits without paying for them
        import torch  # noqa: F401 - first, before the data check's thread starts

        from fmnist_scaling.data.datasets import check_data_ahead

        check_data_ahead(cfg.data)  # its check runs on the other core while Lightning imports
        import lightning as L
        from hydra.utils import instantiate

        from fmnist_scaling.data.datamodule import check_input_shape, eval_batch_size
        from fmnist_scaling.models.classifier import build_model
        from fmnist_scaling.run.recorder import RunRecorder
        from fmnist_scaling.run.summary import hparam_metrics, hparams, print_summary
        from fmnist_scaling.utils.log import quiet_lightning

    threads_reason = set_threads(cfg, HydraConfig.get().launcher, run_dir.name if in_sweep else None)
    quiet_lightning()
    L.seed_everything(cfg.seed, verbose=False)
    overrides, choices = list(HydraConfig.get().overrides.task), chosen_groups()
    recorder = RunRecorder(run_dir, cfg, overrides, choices, threads_reason, start, extends(cfg, previous))
    recorder.mark_start(main_at, in_sweep)

    # the model, then the data in the shape its network asks for
    model = build_model(cfg.model)
    scaling, eval_batch = instantiate(cfg.scaling), eval_batch_size(cfg.data.eval_batch_size, model.net)
    datamodule = instantiate(cfg.data, scaling=scaling, input_shape=model.input_shape, eval_batch_size=eval_batch)
    if cfg.data.verify:  # the dataset's images (28 x 28, 8 x 8): a network that cannot take them stops here
        check_input_shape(model.input_shape, datamodule.dataset.image_shape)
    datamodule.prepare_data()  # data problems surface now, before any training output

    # the trainer, its callbacks and its logger
    callbacks = [instantiate(c) for c in cfg.callbacks.values() if c is not None] + [recorder]
    if cfg.trainer.get("enable_progress_bar") is False:  # the flag wins over the configured bar
        callbacks = [c for c in callbacks if not isinstance(c, L.pytorch.callbacks.ProgressBar)]
    logger: Any = instantiate(cfg.logger) if cfg.get("logger") else False  # a Lightning logger, or none
    if logger:  # its hparams.yaml, written with the first checkpoint, says what the run is
        logger.hparams.update(hparams(cfg, choices))
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=logger, default_root_dir=str(run_dir))
    recorder.attach(trainer, model, choices.get("model/net", "?"), datamodule.dataset)

    # fit (from the last checkpoint, if the run has one) and test
    last = run_dir / records.LAST_CHECKPOINT
    if last.is_file():
        log.info(f"resuming {run_dir} from {last}")
    stop.trainer = trainer
    recorder.mark("setup")
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=str(last) if last.is_file() else None)
        recorder.mark("fit_end")
        tested = trainer.test(model, datamodule=datamodule, verbose=False)
        recorder.mark("test_end")
    except BaseException as err:  # noqa: BLE001 - every way out is recorded, see end_early
        return end_early(err, stop, run_dir, in_sweep, recorder.write, overrides)

    # the record: the last epoch's metrics and the test's
    try:
        outcome = recorder.finish(tested, cfg.model.num_classes)
    except OSError as err:
        return end_early(err, stop, run_dir, in_sweep, lambda **fields: None, overrides)
    if trainer.is_global_zero:
        if logger:
            logger.log_hyperparams(hparams(cfg, choices), hparam_metrics(outcome["final"]), step=trainer.global_step)
            logger.finalize("success")
        print_summary(outcome)
    return records.objective(outcome)


if __name__ == "__main__":
    cli.run(main)
    exit_without_teardown()
