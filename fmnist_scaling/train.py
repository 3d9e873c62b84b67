"""Train and test one run: ``python -m fmnist_scaling.train scaling=max``.

A Hydra multirun (``-m``) sweeps; a sweep re-run in the same ``hydra.sweep.dir`` skips finished
jobs and resumes unfinished ones from their last checkpoint. ``resume=<run dir>`` resumes a
single run. Each run writes into its own directory: TensorBoard events, the composed config
(``.hydra/``), ``checkpoints/`` and ``metrics.json`` (see :mod:`fmnist_scaling.results`).
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import shutil
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from fmnist_scaling import quiet_lightning, results
from fmnist_scaling.validate import ConfigError, validate

log = logging.getLogger("fmnist_scaling")


def new_run_dir(resume: str | None, base: str, name: str) -> str:
    """The run directory: ``resume`` if given, else a new ``<base>/<time>_<name>`` folder.

    Created here with an atomic ``mkdir``, so two runs started in the same second get two
    folders (``..._1`` for the second) instead of sharing one.
    """
    if resume:
        return str(resume)
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    for n in itertools.count():
        path = Path(base) / (f"{stamp}_{name}" + (f"_{n}" if n else ""))
        try:
            path.mkdir(parents=True)
            return str(path)
        except FileExistsError:
            continue
    raise AssertionError("unreachable")


OmegaConf.register_new_resolver("run_dir", new_run_dir, use_cache=True, replace=True)
# a group override (model/optimizer=adam) in a job's folder name must not open a subfolder
OmegaConf.register_new_resolver("flat", lambda name: name.replace("/", "."), replace=True)


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float:
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    in_sweep = hydra_cfg.mode == RunMode.MULTIRUN
    try:
        validate(cfg)
        _check_resume(cfg, run_dir)
    except ConfigError as err:
        return _reject(err, run_dir, in_sweep)
    previous = results.read(run_dir)
    if previous and previous.get("status") in results.FINISHED:
        print(f"{run_dir}: already {previous['status']}, skipped (delete its metrics.json to run it again)")
        return results.objective(previous)
    return train(cfg, run_dir, list(hydra_cfg.overrides.task), in_sweep, _threads(cfg, hydra_cfg))


def train(cfg: DictConfig, run_dir: Path, overrides: list[str], in_sweep: bool, threads: int | None) -> float:
    start = time.perf_counter()
    import lightning as L  # imported here: a rejected config exits without paying for it
    import torch
    from hydra.utils import instantiate

    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from fmnist_scaling.diagnostics import Diagnostics
    from fmnist_scaling.recorder import RunRecorder
    from fmnist_scaling.sources import DataError

    if threads:
        torch.set_num_threads(threads)
    quiet_lightning()
    L.seed_everything(cfg.seed, verbose=False)
    record: dict[str, Any] = {
        "status": "running",
        "run_dir": str(run_dir),
        "overrides": overrides,
        "threads": torch.get_num_threads(),
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    datamodule = instantiate(cfg.data, scaling=instantiate(cfg.scaling))
    try:
        datamodule.prepare_data()  # data problems surface now, before any training output
    except DataError as err:
        return _reject(err, run_dir, in_sweep)
    model = instantiate(cfg.model, _recursive_=False)
    recorder = RunRecorder()
    callbacks = [instantiate(c) for c in cfg.callbacks.values() if c is not None] + [recorder]
    if cfg.trainer.get("enable_progress_bar") is False:  # the flag wins over the configured bar
        callbacks = [c for c in callbacks if not isinstance(c, L.pytorch.callbacks.ProgressBar)]
    diagnostics = next((c for c in callbacks if isinstance(c, Diagnostics)), None)
    logger = instantiate(cfg.logger) if cfg.get("logger") else False
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=logger, default_root_dir=str(run_dir))

    def snapshot(**extra: Any) -> dict[str, Any]:
        initial = diagnostics.initial if diagnostics else {}
        timing = {"wall_time_s": time.perf_counter() - start, "first_step_at": recorder.first_step_at}
        if torch.cuda.is_available():
            timing["gpu_peak_bytes"] = torch.cuda.max_memory_allocated()
        return {**record, "train_step": model.step_kind, "history": recorder.history, "initial": initial, **timing, **extra}

    def write(snap: dict[str, Any]) -> None:
        if trainer.is_global_zero:  # under DDP every rank runs this function; one writes
            results.write(run_dir, snap)

    recorder.on_epoch = lambda: write(snapshot())
    last = run_dir / "checkpoints" / "last.ckpt"
    if last.is_file():
        print(f"resuming {run_dir} from {last}")
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=str(last) if last.is_file() else None)
        tested = trainer.test(model, datamodule=datamodule, verbose=False)
    except SIGTERMException:  # Lightning stops at a step boundary; the last checkpoint resumes it
        write(snapshot(status="interrupted"))
        print(f"interrupted; resume with: resume={run_dir}", file=sys.stderr)
        sys.exit(143)
    except Exception as err:  # recorded, so a sweep's summary shows the job as failed
        write(snapshot(status="failed", error=f"{type(err).__name__}: {err}"))
        if not in_sweep:
            raise
        log.exception("run %s failed; the sweep goes on", run_dir)
        return math.nan
    final = {k: v for k, v in (recorder.history[-1] if recorder.history else {}).items() if "/" in k}
    final |= {k: float(v) for k, v in (tested[0] if tested else {}).items()}
    outcome = snapshot(
        status="diverged" if model.diverged_at else "completed",
        collapsed=results.is_collapsed(final, cfg.model.num_classes),
        diverged_at=model.diverged_at,
        final=final,
    )
    write(outcome)
    if not trainer.is_global_zero:
        return results.objective(outcome)
    if logger:
        logger.log_hyperparams(_hparams(cfg), _hparam_metrics(final))
        logger.finalize("success")
    _print_summary(outcome)
    return results.objective(outcome)


def _check_resume(cfg: DictConfig, run_dir: Path) -> None:
    if cfg.get("resume") is None:
        return
    from fmnist_scaling.evaluate import load_checkpoint

    last = run_dir / "checkpoints" / "last.ckpt"
    if not last.is_file():
        raise ConfigError(f"resume={cfg.resume!r} is invalid: it must be a run directory holding checkpoints/last.ckpt")
    load_checkpoint(last)


def _reject(err: Exception, run_dir: Path, in_sweep: bool) -> float:
    """One line on stderr. A single run exits 2 and leaves no half-made run folder behind; a
    sweep job records the failure (the summary lists it) and the sweep goes on."""
    print(f"error: {err}", file=sys.stderr)
    if in_sweep:
        results.write(run_dir, {"status": "failed", "error": str(err), "run_dir": str(run_dir)})
        return math.nan
    if run_dir.is_dir() and all(p.name in (".hydra", "train.log") for p in run_dir.iterdir()):
        shutil.rmtree(run_dir, ignore_errors=True)
    sys.exit(2)


def _threads(cfg: DictConfig, hydra_cfg: Any) -> int | None:
    """Torch threads per process: ``threads`` if set; under the joblib launcher the cores
    shared among its jobs (oversubscribed threads made steps 10-20x slower here)."""
    if cfg.get("threads"):
        return int(cfg.threads)
    if "joblib" in str(hydra_cfg.launcher.get("_target_", "")):
        cores = os.cpu_count() or 1
        jobs = hydra_cfg.launcher.get("n_jobs", -1)
        jobs = cores if jobs is None or jobs < 1 else jobs
        return max(1, cores // jobs)
    return None


def _hparams(cfg: DictConfig) -> dict[str, Any]:
    return {
        "scaling": HydraConfig.get().runtime.choices.get("scaling", "?"),
        "seed": cfg.seed,
        "optimizer": cfg.model.optimizer._target_.rsplit(".", 1)[-1],
        "lr": cfg.model.optimizer.lr,
        "batch_size": cfg.data.batch_size,
        "hidden": str(list(cfg.model.hidden)),
        "activation": cfg.model.activation,
        "max_epochs": cfg.trainer.max_epochs,
        "val_size": cfg.data.val_size,
    }


def _hparam_metrics(final: dict[str, float]) -> dict[str, float]:
    keys = ("val/acc", "val/loss", "test/acc", "test/loss", "train_full/acc", "diag/dead_frac", "diag/saturated_frac")
    return {f"hparams/{k.replace('/', '_')}": final[k] for k in keys if k in final}


def _print_summary(record: dict[str, Any]) -> None:
    final = record["final"]
    lines = [f"run {record['run_dir']}: {record['status']}" + (" (collapsed to chance)" if record["collapsed"] else "")]
    for split in ("train", "train_full", "val", "test"):
        if f"{split}/acc" in final:
            lines.append(f"  {split:<10}  acc {100 * final[f'{split}/acc']:6.2f}%   loss {final[f'{split}/loss']:.4f}")
    for key in ("diag/dead_frac", "diag/saturated_frac"):
        if key in final:
            lines.append(f"  {key:<10}  {100 * final[key]:.1f}% of first-layer units")
    lines.append(f"  training step: {record['train_step']}")
    lines.append(f"  wall time {record['wall_time_s']:.1f} s; metrics in {record['run_dir']}/{results.METRICS_FILE}")
    print("\n".join(lines))


def unwritable_output(argv: list[str]) -> str | None:
    """Why the output folder of ``argv``'s run or sweep cannot be written, or None. Checked
    before Hydra starts, which would otherwise fail creating it with a traceback."""
    overrides = dict(a.split("=", 1) for a in argv if a.startswith(("hydra.run.dir=", "hydra.sweep.dir=")))
    for key, folder in overrides.items() or {"output": "lightning_logs"}.items():
        path = Path(folder)
        while not path.exists() and path != path.parent:
            path = path.parent
        if not path.is_dir() or not os.access(path, os.W_OK):
            return f"{key}={folder} cannot be written: {path} is {'not a folder' if not path.is_dir() else 'read-only'}"
    return None


def cli() -> None:
    problem = unwritable_output(sys.argv[1:])
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        sys.exit(2)
    main()


if __name__ == "__main__":
    cli()
