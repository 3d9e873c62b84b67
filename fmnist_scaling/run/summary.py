"""What a finished run shows: the console summary, and TensorBoard's HPARAMS view (the run's
settings beside its final metrics)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from fmnist_scaling.data.splits import EVAL_SPLITS, TEST, TRAIN, TRAIN_FULL, VAL, acc, loss
from fmnist_scaling.run import records
from fmnist_scaling.run.experiment import resume_command
from fmnist_scaling.utils.log import log

#: Final metrics shown beside the settings in TensorBoard's HPARAMS view.
HPARAM_METRICS = (
    acc(VAL),
    loss(VAL),
    acc(TEST),
    loss(TEST),
    acc(TRAIN_FULL),
    "diag/dead_frac",
    "diag/saturated_frac",
)


def hparams(cfg: DictConfig, choices: dict[str, str]) -> dict[str, Any]:
    """The run's settings as TensorBoard's HPARAMS view shows them (also in ``hparams.yaml``)."""
    net = OmegaConf.to_container(cfg.model.net, resolve=True)
    assert isinstance(net, dict)  # model.net is a mapping (its schema's rule)
    return {
        "data": choices.get("data", "?"),
        "scaling": choices.get("scaling", "?"),
        "seed": cfg.seed,
        "optimizer": cfg.model.optimizer._target_.rsplit(".", 1)[-1],
        "lr": cfg.model.optimizer.lr,
        "batch_size": cfg.data.batch_size,
        "net": choices.get("model/net", "?"),
        "input_norm": cfg.model.get("input_norm", "none"),
        "init": cfg.model.get("init", "default"),
        # the network's own arguments (hidden, channels, activation, ...): plain values as they are
        **{
            f"net.{key!s}": v if isinstance(v, (bool, int, float, str)) else str(v)
            for key, v in net.items()
            if key != "_target_"
        },
        "first_layer_init_scale": cfg.model.get("first_layer_init_scale", 1.0),
        "first_layer_lr_scale": cfg.model.get("first_layer_lr_scale", 1.0),
        "max_epochs": cfg.trainer.max_epochs,
        "val_size": cfg.data.val_size,
    }


def hparam_metrics(final: dict[str, float]) -> dict[str, float]:
    return {f"hparams/{k.replace('/', '_')}": final[k] for k in HPARAM_METRICS if k in final}


def print_summary(record: dict[str, Any]) -> None:
    """The run's last lines on the console: status, accuracy and loss per split, the first layer's health."""
    final = record["final"]
    status = record["status"]
    if status == "stopped":
        run_dir = Path(record["run_dir"])
        resume = f"resume with: {resume_command(run_dir, record['overrides'])}"
        status += (
            f" by {record['stopped_by']} after {record['steps_done']:,} of {record['steps_planned']:,} steps "
            f"({100 * record['fraction_done']:.1f}%); "
            + (resume if (run_dir / records.LAST_CHECKPOINT).is_file() else "no whole epoch to resume from")
        )
    if record.get("extended_from_epochs"):
        status += f" (extended from {record['extended_from_epochs']} epochs)"
    lines = [f"run {record['run_dir']}: {status}" + (" (collapsed to chance)" if record["collapsed"] else "")]
    if record.get("dataset"):
        lines.append(f"  data        {record['dataset']['name']}")
    for split in (TRAIN, *EVAL_SPLITS):
        if acc(split) in final:
            lines.append(f"  {split:<10}  acc {100 * final[acc(split)]:6.2f}%   loss {final[loss(split)]:.4f}")
    for key in ("diag/dead_frac", "diag/saturated_frac"):
        if key in final:
            lines.append(f"  {key:<10}  {100 * final[key]:.1f}% of first-layer units")
    lines.append(f"  training step: {record['train_step']}")
    lines.append(f"  wall time {record['wall_time_s']:.1f} s; metrics in {record['run_dir']}/{records.METRICS_FILE}")
    log.info("\n".join(lines))
