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
import signal
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from fmnist_scaling import quiet_lightning, results
from fmnist_scaling.errors import EXIT_BAD_INPUT, EXIT_FAULT, SIGNAL_EXIT, BadInput, Fault, as_fault, full_error, root_cause
from fmnist_scaling.overrides import quote_paths, unknown_choice
from fmnist_scaling.validate import ConfigError, validate

#: The config folder (``config_path`` of :func:`main`).
CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
#: Set by :func:`cli` when Hydra only prints (``--cfg``, ``--info``, ``--help``): nothing is created.
_DRY_RUN = False


def new_run_dir(resume: str | None, base: str, name: str) -> str:
    """The run directory: ``resume`` if given, else a new ``<base>/<time>_<name>`` folder.

    Created here with an atomic ``mkdir``, so two runs started in the same second get two
    folders (``..._1`` for the second) instead of sharing one; only named when Hydra just prints.
    """
    if resume:
        return str(resume)
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    for n in itertools.count():
        path = Path(base) / (f"{stamp}_{name}" + (f"_{n}" if n else ""))
        if _DRY_RUN:
            return str(path)
        try:
            path.mkdir(parents=True)
            return str(path)
        except FileExistsError:
            continue
    raise AssertionError("unreachable")


def record_subdir(output_dir: str) -> str | None:
    """Hydra's ``output_subdir`` for a job: ``.hydra`` for a new run; None (write nothing) for a
    run that already has a record, so resuming or skipping it never rewrites the config it ran with."""
    return None if (Path(output_dir) / results.METRICS_FILE).is_file() else ".hydra"


OmegaConf.register_new_resolver("run_dir", new_run_dir, use_cache=True, replace=True)
OmegaConf.register_new_resolver("record_subdir", record_subdir, replace=True)
# a group override (model/optimizer=adam) in a job's folder name must not open a subfolder
OmegaConf.register_new_resolver("flat", lambda name: name.replace("/", "."), replace=True)
# arithmetic for configs that derive one value from another (conf/gain_as: 255 / g, g^2); a zero
# divisor gives inf, which validate() names as the bad value
OmegaConf.register_new_resolver("divide", lambda a, b: float(a) / float(b) if float(b) else math.inf, replace=True)
OmegaConf.register_new_resolver("square", lambda a: float(a) ** 2, replace=True)

#: Config keys (and their subkeys) that do not change what a run computes: a resume may differ in them.
NOT_THE_EXPERIMENT = ("threads", "resume", "data.root", "data.local_copy", "data.download", "data.eval_batch_size",
                      "trainer.enable_progress_bar", "trainer.accelerator", "callbacks.progress")


#: Config keys that have moved: the MLP's options went to the network's own config group (model/net).
MOVED_KEYS = {f"model.{k}": f"model.net.{k}" for k in ("in_features", "hidden", "activation")}


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float:
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    in_sweep = hydra_cfg.mode == RunMode.MULTIRUN
    previous = results.read(run_dir)
    try:
        validate(cfg)
        _check_resume(cfg, run_dir)
        _check_same_experiment(cfg, run_dir, previous, in_sweep)
    except BadInput as err:
        return _reject(err, run_dir, in_sweep, previous)
    if previous and previous.get("status") in results.FINISHED:
        print(f"{run_dir}: already {previous['status']}, skipped (delete its metrics.json to run it again)")
        return results.objective(previous)
    return train(cfg, run_dir, list(hydra_cfg.overrides.task), in_sweep, *_threads(cfg, hydra_cfg))


def train(cfg: DictConfig, run_dir: Path, overrides: list[str], in_sweep: bool, threads: int | None = None,
          threads_reason: str = "torch's default") -> float:
    start = time.perf_counter()
    stop = StopSignals()
    try:
        with stop:
            return _train(cfg, run_dir, overrides, in_sweep, threads, threads_reason, stop, start)
    except (BadInput, Fault, StopRun) as err:  # before training: the data, or a signal
        return _reject(err, run_dir, in_sweep, None)


def _train(cfg: DictConfig, run_dir: Path, overrides: list[str], in_sweep: bool, threads: int | None, threads_reason: str,
           stop: StopSignals, start: float) -> float:
    import lightning as L  # imported here: a rejected config exits without paying for it
    import torch
    from hydra.utils import instantiate

    from fmnist_scaling.data import check_input_shape, eval_batch_size
    from fmnist_scaling.diagnostics import Diagnostics
    from fmnist_scaling.recorder import RunRecorder
    from fmnist_scaling.sources import FASHION_MNIST_IMAGE

    if threads:
        torch.set_num_threads(threads)
    if in_sweep and threads:
        print(f"{run_dir.name}: {threads} torch thread(s) ({threads_reason})")
    quiet_lightning()
    L.seed_everything(cfg.seed, verbose=False)
    record: dict[str, Any] = {
        "status": "running",
        "run_dir": str(run_dir),
        "overrides": overrides,
        "choices": _choices(),
        "threads": torch.get_num_threads(),
        "threads_reason": threads_reason,
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    model = build_model(cfg)
    datamodule = instantiate(cfg.data, scaling=instantiate(cfg.scaling), input_shape=model.input_shape,
                             eval_batch_size=eval_batch_size(cfg.data.eval_batch_size, model.net))
    if cfg.data.verify:  # Fashion-MNIST's images are 28 x 28: a network that cannot take them stops here
        check_input_shape(model.input_shape, FASHION_MNIST_IMAGE)
    datamodule.prepare_data()  # data problems surface now, before any training output
    recorder = RunRecorder()
    callbacks = [instantiate(c) for c in cfg.callbacks.values() if c is not None] + [recorder]
    if cfg.trainer.get("enable_progress_bar") is False:  # the flag wins over the configured bar
        callbacks = [c for c in callbacks if not isinstance(c, L.pytorch.callbacks.ProgressBar)]
    diagnostics = next((c for c in callbacks if isinstance(c, Diagnostics)), None)
    logger = instantiate(cfg.logger) if cfg.get("logger") else False
    if logger:  # its hparams.yaml, written with the first checkpoint, says what the run is
        logger.hparams.update(_hparams(cfg))
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=logger, default_root_dir=str(run_dir))

    def snapshot(**extra: Any) -> dict[str, Any]:
        initial = diagnostics.initial if diagnostics else {}
        timing = {"wall_time_s": time.perf_counter() - start, "first_step_at": recorder.first_step_at}
        if torch.cuda.is_available():
            timing["gpu_peak_bytes"] = torch.cuda.max_memory_allocated()
        device = {"device": str(trainer.strategy.root_device)}  # cuda:0 where Lightning found a GPU
        return {**record, **device, "network": network, "train_step": model.step_kind, "history": recorder.history, "initial": initial, **timing, **extra}

    def write(snap: dict[str, Any]) -> None:
        if trainer.is_global_zero:  # under DDP every rank runs this function; one writes
            results.write(run_dir, snap)

    network = {"net": _choices().get("model/net", "?"), "class": type(model.net).__qualname__,
               "input_norm": model.hparams.input_norm, "init": model.hparams.init, "input_shape": list(model.input_shape),
               "parameters": sum(p.numel() for p in model.parameters())}
    recorder.on_epoch = lambda: write(snapshot())
    last = run_dir / "checkpoints" / "last.ckpt"
    if last.is_file():
        print(f"resuming {run_dir} from {last}")
    stop.trainer = trainer
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=str(last) if last.is_file() else None)
        tested = trainer.test(model, datamodule=datamodule, verbose=False)
    except BaseException as err:  # noqa: BLE001 - every way out is recorded, see _end_early
        return _end_early(err, stop, run_dir, in_sweep, lambda **extra: write(snapshot(**extra)), overrides)
    final = {k: v for k, v in (recorder.history[-1] if recorder.history else {}).items() if "/" in k}
    final |= {k: float(v) for k, v in (tested[0] if tested else {}).items() if "/" in k}
    outcome = snapshot(
        status="diverged" if model.diverged_at else "completed",
        collapsed=results.is_collapsed(final, cfg.model.num_classes),
        diverged_at=model.diverged_at,
        final=final,
    )
    try:
        write(outcome)
    except OSError as err:
        return _end_early(err, stop, run_dir, in_sweep, lambda **extra: None, overrides)
    if not trainer.is_global_zero:
        return results.objective(outcome)
    if logger:
        logger.log_hyperparams(_hparams(cfg), _hparam_metrics(final), step=trainer.global_step)
        logger.finalize("success")
    _print_summary(outcome)
    return results.objective(outcome)


def build_model(cfg: DictConfig) -> Any:
    """The LightningModule of ``cfg.model`` with its network; a network that cannot be built from
    its config (a wrong argument, a class that is not there) is a bad input, named as such."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    try:
        return instantiate(cfg.model, _recursive_=False)
    except (InstantiationException, TypeError, ValueError, ImportError) as err:
        target = OmegaConf.select(cfg, "model.net._target_")
        raise ConfigError(f"model.net could not build {target}: {root_cause(err)}") from None


class StopRun(Exception):
    """SIGINT or SIGTERM before training started: nothing to record or resume yet."""

    def __init__(self, name: str) -> None:
        super().__init__(f"stopped by {name} before training started; nothing to resume")
        self.name = name
        self.exit_code = SIGNAL_EXIT[name]


class StopSignals:
    """Ctrl-C (SIGINT) ends a run as SIGTERM does: during training, the first one stops it at the
    next step boundary through Lightning's SIGTERM path (the last checkpoint stays, the record
    says ``interrupted``, the resume command is printed); a second one stops at once. Before
    training, either signal stops the run at once (:class:`StopRun`).
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.trainer: Any = None
        self.received: str | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():  # Python's rule for handlers
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        if self.trainer is None:
            raise StopRun(name)
        first = self.received is None
        self.received = self.received or name
        if not first:
            raise KeyboardInterrupt  # the second signal: at once (Lightning then exits)
        self.trainer._signal_connector.received_sigterm = True  # Lightning's stop at a step boundary
        if signum == signal.SIGINT:
            print("\nstopping at the next step boundary (Ctrl-C again to stop at once)", file=sys.stderr)


def _end_early(err: BaseException, stop: StopSignals, run_dir: Path, in_sweep: bool, write: Any, overrides: list[str]) -> float:
    """Record how the run ended (``interrupted`` or ``failed``), say it in one line, and exit
    with its code; a failed sweep job returns NaN instead so the sweep goes on."""
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    signal_name = stop.received or ("SIGTERM" if isinstance(err, SIGTERMException) else None)
    if signal_name and isinstance(err, (SystemExit, KeyboardInterrupt)):
        note = _try_write(write, status="interrupted", error=f"stopped by {signal_name}")
        if in_sweep:
            how = f"re-run the same sweep command with hydra.sweep.dir={run_dir.parent}"
        else:
            how = _resume_command(run_dir, overrides)
        print(f"interrupted ({signal_name}){note}; resume with: {how}", file=sys.stderr)
        sys.exit(SIGNAL_EXIT[signal_name])
    if isinstance(err, (SystemExit, KeyboardInterrupt)):
        raise err
    known = err if isinstance(err, (BadInput, Fault)) else as_fault(err, f"write the run's files in {run_dir}")
    message = str(known) if known else f"the run failed: {type(err).__name__}: {err}"
    note = _try_write(write, status="failed", error=message)
    _log_traceback(err)
    if full_error():
        raise err
    if (run_dir / "checkpoints" / "last.ckpt").is_file():
        note += f"; resume with: {_resume_command(run_dir, overrides)}"
    hint = "" if known else " (HYDRA_FULL_ERROR=1 shows the traceback; it is also in train.log)"
    print(f"error: {message}{hint}{note}", file=sys.stderr)
    if in_sweep:
        return math.nan
    sys.exit(getattr(known, "exit_code", EXIT_FAULT))


def _resume_command(run_dir: Path, overrides: list[str]) -> str:
    """The command that continues this run: its folder and the overrides that made its experiment."""
    return f"python -m fmnist_scaling.train {_shell(['resume=' + str(run_dir), *_experiment_overrides(overrides)])}"


def _try_write(write: Any, **extra: Any) -> str:
    """Write the final record; what to add to the message if even that failed (a full disk)."""
    try:
        write(**extra)
        return ""
    except OSError as err:
        return f" (and {results.METRICS_FILE} could not be updated: {err.strerror})"


def _log_traceback(err: BaseException) -> None:
    """The traceback into the run's log file only (Hydra's ``train.log``), not onto the console."""
    import traceback

    text = "".join(traceback.format_exception(err))
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            try:
                handler.stream.write(text)
                handler.flush()
            except (OSError, ValueError):
                pass


def _check_resume(cfg: DictConfig, run_dir: Path) -> None:
    if cfg.get("resume") is None:
        return
    from fmnist_scaling.evaluate import load_checkpoint

    last = run_dir / "checkpoints" / "last.ckpt"
    if not last.is_file():
        raise ConfigError(f"resume={cfg.resume!r} is invalid: it must be a run directory holding checkpoints/last.ckpt")
    load_checkpoint(last)


def _check_same_experiment(cfg: DictConfig, run_dir: Path, previous: dict[str, Any] | None, in_sweep: bool) -> None:
    """A run that continues (``resume=``, or a sweep re-run in its folder) must be the same
    experiment as the one recorded there: else its history would mix two experiments."""
    if not previous or "config" not in previous:
        return
    now, then = _flat(OmegaConf.to_container(cfg, resolve=True)), _flat(previous["config"])
    then = {MOVED_KEYS.get(k, k): v for k, v in then.items()}  # a record older than the model/net group
    # an option newer than the run's record: fine at its configured default, not when set now
    set_now = {o.lstrip("+~").split("=", 1)[0] for o in HydraConfig.get().overrides.task}
    differs = sorted(k for k in now.keys() | then.keys() if now.get(k) != then.get(k) and not _harmless(k)
                     and (k in then or k in set_now))
    if not differs:
        return
    # a different group choice (scaling=none) is named as such, not as the keys it changes
    choices_now, choices_then = _choices(), previous.get("choices", {})
    groups = sorted(g for g in choices_now if g in choices_then and choices_now[g] != choices_then[g])
    named = [f"{g}={choices_now[g]} (the run: {choices_then[g]})" for g in groups]
    in_groups = tuple(g.replace("/", ".") for g in groups)
    named += [f"{k}={now.get(k, '<unset>')} (the run: {then.get(k, '<unset>')})" for k in differs
              if not any(k == g or k.startswith(g + ".") for g in in_groups)]
    shown = ", ".join(named[:4]) + (f" and {len(named) - 4} more" if len(named) > 4 else "")
    own = _shell(_experiment_overrides(previous.get("overrides", [])))
    if in_sweep:
        raise ConfigError(f"{run_dir} holds a run of other settings: {shown}; sweep into another hydra.sweep.dir")
    raise ConfigError(f"resume={cfg.resume} is invalid: the run was trained with other settings: {shown}; "
                      f"resume it with its own overrides: resume={cfg.resume} {own}".rstrip())


def _harmless(key: str) -> bool:
    return any(key == k or key.startswith(k + ".") for k in NOT_THE_EXPERIMENT)


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        return {k: v for key, value in tree.items() for k, v in _flat(value, f"{prefix}{key}.").items()}
    return {prefix[:-1]: tree}


def _choices() -> dict[str, str]:
    """The config-group choices of this run (``scaling: max``), Hydra's own groups left out."""
    return {g: str(c) for g, c in HydraConfig.get().runtime.choices.items() if not g.startswith("hydra/") and c is not None}


def _experiment_overrides(overrides: list[str]) -> list[str]:
    return [o for o in overrides if not _harmless(o.lstrip("+~").split("=", 1)[0])]


def _shell(words: list[str]) -> str:
    import shlex

    return " ".join(shlex.quote(w) for w in words)


def _reject(err: Exception, run_dir: Path, in_sweep: bool, previous: dict[str, Any] | None) -> float:
    """One line on stderr. A single run exits (2 for bad input, 3 for a fault, 130/143 for a
    signal) and leaves no half-made run folder behind; a sweep job records the failure (the
    summary lists it), unless its folder holds another run's record, and the sweep goes on."""
    print(f"error: {err}", file=sys.stderr)
    code = getattr(err, "exit_code", EXIT_BAD_INPUT)
    if in_sweep and not isinstance(err, StopRun):
        if previous is None:
            try:
                results.write(run_dir, {"status": "failed", "error": str(err), "run_dir": str(run_dir)})
            except OSError:
                pass
        return math.nan
    if previous is None and run_dir.is_dir() and all(p.name in (".hydra", "train.log") for p in run_dir.iterdir()):
        shutil.rmtree(run_dir, ignore_errors=True)
    sys.exit(code)


def _threads(cfg: DictConfig, hydra_cfg: Any) -> tuple[int | None, str]:
    """Torch threads per process and why: ``threads`` if set; else, under a launcher that runs
    jobs side by side on this machine, the cores shared among them (oversubscribed threads made
    steps 10-20x slower here); on a SLURM node, the cores given to the task; else torch's
    default, at most the cores this process may use (taskset, cgroups)."""
    if cfg.get("threads"):
        return int(cfg.threads), f"threads={cfg.threads}"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    launcher = hydra_cfg.launcher
    target = str(launcher.get("_target_", "")).rsplit(".", 1)[-1]
    per_task = launcher.get("cpus_per_task")
    if target == "JoblibLauncher":
        jobs = launcher.get("n_jobs", -1)
        jobs = cores if jobs is None or jobs < 1 else min(jobs, cores)
        return max(1, cores // jobs), f"joblib launcher: {jobs} jobs side by side on {cores} cores"
    if target == "LocalLauncher":  # submitit's local executor starts every job of the sweep at once
        if per_task:
            return int(per_task), f"submitit local launcher: hydra.launcher.cpus_per_task={per_task}"
        return 1, f"submitit local launcher: every job at once on {cores} cores (hydra.launcher.cpus_per_task=N to change)"
    if target == "RayLauncher":
        return 1, f"ray launcher: jobs side by side on {cores} cores"
    if per_task:  # SLURM and other cluster launchers: the task's own cores
        return int(per_task), f"hydra.launcher.cpus_per_task={per_task}"
    import torch

    if torch.get_num_threads() > cores:
        return cores, f"the {cores} cores this process may use"
    return None, "torch's default"


def _hparams(cfg: DictConfig) -> dict[str, Any]:
    return {
        "scaling": HydraConfig.get().runtime.choices.get("scaling", "?"),
        "seed": cfg.seed,
        "optimizer": cfg.model.optimizer._target_.rsplit(".", 1)[-1],
        "lr": cfg.model.optimizer.lr,
        "batch_size": cfg.data.batch_size,
        "net": HydraConfig.get().runtime.choices.get("model/net", "?"),
        "input_norm": cfg.model.get("input_norm", "none"),
        "init": cfg.model.get("init", "default"),
        # the network's own arguments (hidden, channels, activation, ...): plain values as they are
        **{f"net.{key}": v if isinstance(v, (bool, int, float, str)) else str(v)
           for key, v in OmegaConf.to_container(cfg.model.net, resolve=True).items() if key != "_target_"},
        "first_layer_init_scale": cfg.model.get("first_layer_init_scale", 1.0),
        "first_layer_lr_scale": cfg.model.get("first_layer_lr_scale", 1.0),
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


def moved_key(argv: list[str]) -> str | None:
    """A one-line error for an override of a key that has moved (``model.hidden``)."""
    for arg in argv:
        key, _, value = arg.partition("=")
        if key.lstrip("+~") in MOVED_KEYS:
            new = MOVED_KEYS[key.lstrip("+~")]
            return f"{key.lstrip('+~')} has moved: the network's options are in model.net now ({new}={value})"
    return None


#: Hydra's flags that only print (a config, help, info): nothing is run or created.
PRINT_ONLY_FLAGS = ("--cfg", "-c", "--info", "-i", "--help", "-h", "--hydra-help", "--shell-completion", "-sc")


def cli() -> None:
    global _DRY_RUN
    argv = sys.argv[1:]
    _DRY_RUN = any(a.split("=", 1)[0] in PRINT_ONLY_FLAGS for a in argv)
    problem = moved_key(argv) or unknown_choice(argv, CONF_DIR) or (None if _DRY_RUN else unwritable_output(argv))
    sys.argv[1:] = quote_paths(argv)  # a sweep job's folder (resume=...) has "=" and "," in its name
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    try:
        main()
    except Exception as err:  # the task ends its own way (train, _reject, _end_early): this is Hydra's
        if full_error():
            raise
        fault = as_fault(err, "write the run folder")  # e.g. .hydra/ on a full disk
        print(f"error: {fault or err}", file=sys.stderr)
        sys.exit(EXIT_FAULT if fault else EXIT_BAD_INPUT)  # else a usage error


if __name__ == "__main__":
    cli()
