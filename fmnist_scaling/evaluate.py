"""Evaluate a trained model again on the test split:

    python -m fmnist_scaling.evaluate ckpt_path=<checkpoint file or run directory>

The model and the scaling, with the statistics it was fit with, are rebuilt from the checkpoint
(loaded with ``weights_only=True``: tensors and plain values only). Prints accuracy, loss and a
per-class accuracy table, and writes them to ``evaluation.json`` next to the checkpoint.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from fmnist_scaling.data import splits
from fmnist_scaling.run import records
from fmnist_scaling.run.cli import override_keys, unknown_key
from fmnist_scaling.run.migrate import upgrade_hparams, upgrade_target, upgrade_tree
from fmnist_scaling.run.overrides import quote_paths
from fmnist_scaling.run.resolvers import CONF_DIR
from fmnist_scaling.utils.compat import exit_without_teardown
from fmnist_scaling.utils.errors import (
    EXIT_BAD_INPUT,
    EXIT_FAULT,
    BadInput,
    ConfigError,
    Fault,
    as_fault,
    full_error,
    root_cause,
)
from fmnist_scaling.utils.imports import heavy_imports
from fmnist_scaling.utils.log import log


def _trained_root(data_state: dict[str, Any]) -> str:
    """The data folder the run trained with, where it is still there (a dataset of one's own may
    keep its files in it directly); else ``data`` here."""
    recorded = data_state.get("root")
    return recorded if recorded and Path(recorded).is_dir() else "data"


def find_checkpoint(ckpt_path: str) -> Path:
    """A checkpoint file, or a run directory's ``checkpoints/last.ckpt``."""
    path = Path(ckpt_path)
    if path.is_dir():
        path = path / records.LAST_CHECKPOINT
    if not path.is_file():
        raise ConfigError(
            f"ckpt_path={ckpt_path!r} is invalid: "
            f"no checkpoint file or run directory (with {records.LAST_CHECKPOINT}) there"
        )
    return path


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    if OmegaConf.is_missing(cfg, "ckpt_path"):
        raise ConfigError("ckpt_path is missing: add ckpt_path=<checkpoint file or run directory>")
    path = find_checkpoint(cfg.ckpt_path)  # a wrong path is said at once, before the imports below
    with heavy_imports():
        import lightning as L
        from hydra.utils import instantiate

        from fmnist_scaling.data.datamodule import ImageDataModule, eval_batch_size
        from fmnist_scaling.data.datasets import dataset_class
        from fmnist_scaling.models.classifier import ScalingClassifier
        from fmnist_scaling.run.checkpoint_io import load_checkpoint
        from fmnist_scaling.utils.log import quiet_lightning

    quiet_lightning()
    checkpoint = load_checkpoint(path)
    data_state = next((v for v in checkpoint.values() if isinstance(v, dict) and "scaling_state" in v), None)
    if data_state is None:
        raise ConfigError(f"{path} holds no scaling statistics (was it written by fmnist_scaling.train?)")
    hparams = upgrade_hparams(checkpoint["hyper_parameters"])
    model = _build(path, "network", hparams["net"], lambda: ScalingClassifier(**hparams))
    model.load_state_dict(checkpoint["state_dict"])
    scaling_config = upgrade_tree(data_state["scaling"])
    scaling = _build(path, "scaling mode", scaling_config, lambda: instantiate(scaling_config))
    scaling.load_state_dict(data_state["scaling_state"])  # as fit in training, not refit here
    dataset_target = upgrade_target(data_state.get("dataset"))  # none (an older checkpoint): Fashion-MNIST
    dataset = _build(path, "dataset", {"_target_": dataset_target}, lambda: dataset_class(dataset_target)())
    data = {
        "verify": data_state.get("verify", True),
        **cfg.data,
        "local_copy": cfg.data.local_copy or getattr(dataset, "system_copy", None),
        "root": cfg.data.root or _trained_root(data_state),
        "eval_batch_size": eval_batch_size(cfg.data.eval_batch_size, model.net),
    }
    datamodule = ImageDataModule(
        scaling,
        dataset,
        val_size=data_state["val_size"],
        split_seed=data_state["split_seed"],
        eval_train=False,
        input_shape=model.input_shape,
        **data,
    )
    trainer = L.Trainer(
        accelerator=cfg.accelerator,
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    tested = trainer.test(model, datamodule=datamodule, verbose=False)[0]
    confusion = model.test_confusion.compute().cpu()
    per_class = (confusion.diag() / confusion.sum(dim=1).clamp_min(1)).tolist()
    result = {
        "checkpoint": str(path),
        "dataset": dataset.name,
        "scaling": data_state["scaling"],
        splits.acc(splits.TEST): tested[splits.acc(splits.TEST)],
        splits.loss(splits.TEST): tested[splits.loss(splits.TEST)],
        "per_class_acc": dict(zip(dataset.classes, per_class)),
        "confusion_matrix": confusion.tolist(),
    }
    from fmnist_scaling.run.records import write_json

    try:
        write_json(path.parent / "evaluation.json", result)
    except OSError as err:  # a read-only or full disk
        raise as_fault(err, "write evaluation.json") or err from None
    return result


def _build(path: Path, what: str, config: dict[str, Any], build: Any) -> Any:
    """``build()``; a class of the checkpoint's that does not import here (a plug-in of your own,
    from a module that is not on the path) is one line naming it and the fix."""
    try:
        return build()
    except Exception as err:  # noqa: BLE001 - Hydra wraps the import error in its own
        target = config.get("_target_") if isinstance(config, dict) else None
        module = str(target).rpartition(".")[0]
        raise ConfigError(
            f"{path}: its {what} {target} cannot be built here ({root_cause(err)}); make its module {module} "
            "importable: run evaluate from the folder that holds it, or add that folder to PYTHONPATH"
        ) from None


def print_result(result: dict[str, Any]) -> None:
    accuracy, loss = 100 * result[splits.acc(splits.TEST)], result[splits.loss(splits.TEST)]
    lines = [f"{result['checkpoint']} ({result['dataset']}): test accuracy {accuracy:.2f}%, loss {loss:.4f}"]
    lines += [f"  {name:<12} {100 * acc:6.2f}%" for name, acc in result["per_class_acc"].items()]
    lines.append(f"written: {Path(result['checkpoint']).parent / 'evaluation.json'}")
    log.info("\n".join(lines))


@hydra.main(version_base="1.3", config_path="../conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    try:
        print_result(evaluate(cfg))
    except (BadInput, Fault) as err:
        log.error(f"error: {err}")
        sys.exit(err.exit_code)
    except OSError as err:  # reading the checkpoint or the data (writing evaluation.json is a Fault above)
        if full_error():
            raise
        fault = as_fault(err, "read the checkpoint or its data")
        log.error(f"error: {fault or err}")
        sys.exit(fault.exit_code if fault else EXIT_FAULT)


def options() -> str:
    """What evaluate takes from its command line (conf/evaluate.yaml's keys); the rest comes from
    the checkpoint."""
    import yaml

    conf = yaml.safe_load((CONF_DIR / "evaluate.yaml").read_text())
    keys = [k for k in conf if k not in ("defaults", "hydra")]
    return ", ".join(k2 for k in keys for k2 in ([f"{k}.{i}" for i in conf[k]] if isinstance(conf[k], dict) else [k]))


def not_an_option(argv: list[str]) -> str | None:
    """A train-only choice (``data=mnist``, ``scaling=...``) or an addition or deletion (``+data=...``,
    ``~data.root``) on evaluate's command line, as one line; Hydra's own words were three lines and
    a hint (``+data=mnist``) that ended in a traceback."""
    for arg in argv:
        key = arg.split("=", 1)[0]
        bare = key.lstrip("+~")
        if arg.startswith("-") or bare.startswith("hydra") or ("=" not in arg and key == bare):
            continue
        choice = "." not in bare and (CONF_DIR / bare.split("/")[0]).is_dir()  # data=mnist, model/optimizer=adam
        if key != bare or choice:
            return (
                f"{arg} is not an option of evaluate: the dataset, the scaling and the network come from the "
                f"checkpoint, and the data is read from data.root; evaluate takes {options()}"
            )
    return None


def cli() -> None:
    """Check ``sys.argv`` (a key the config does not have, a train-only choice: one line, exit 2,
    as train's command line does), then call Hydra's ``main``."""
    argv = sys.argv[1:]
    keys = override_keys(argv)
    problem = not_an_option(argv) or (unknown_key(argv, keys, config_name="evaluate") if keys else None)
    if problem:
        log.error(f"error: {problem}")
        sys.exit(EXIT_BAD_INPUT)
    sys.argv[1:] = quote_paths(argv)  # a sweep job's folder has "=" and "," in its name
    main()


if __name__ == "__main__":
    cli()
    exit_without_teardown()
