"""Old config keys and class paths, mapped to today's, in one place.

Runs and checkpoints outlive the code that made them: a record (``metrics.json``) or a checkpoint
written by an older version names keys and classes where they were then. Everything that reads
one (resume, evaluate) reads it through :func:`upgrade_config` or :func:`upgrade_hparams`; a
command line that still uses a moved key gets one line saying where it went (:func:`moved_key`).
To move a key or a module, add it here.
"""

from __future__ import annotations

from typing import Any

#: Config keys that have moved: the MLP's options went to the network's own config group (model/net).
MOVED_KEYS = {f"model.{k}": f"model.net.{k}" for k in ("in_features", "hidden", "activation")}
#: Modules that have moved (the package's folders by role): ``_target_`` paths in old runs and checkpoints.
MOVED_MODULES = {
    "fmnist_scaling.data": "fmnist_scaling.data.datamodule",
    "fmnist_scaling.scaling": "fmnist_scaling.data.scaling",
    "fmnist_scaling.model": "fmnist_scaling.models.classifier",
    "fmnist_scaling.networks": "fmnist_scaling.models.networks",
    "fmnist_scaling.diagnostics": "fmnist_scaling.models.diagnostics",
    "fmnist_scaling.visuals": "fmnist_scaling.models.visuals",
    "fmnist_scaling.progress": "fmnist_scaling.run.progress",
    "fmnist_scaling.checkpoint_io": "fmnist_scaling.run.checkpoint_io",
    "fmnist_scaling.report": "fmnist_scaling.tools.report",
}
#: Classes that have been renamed: Fashion-MNIST's data module became the data module of any dataset.
RENAMED_CLASSES = {
    "fmnist_scaling.data.datamodule.FashionMNISTDataModule": "fmnist_scaling.data.datamodule.ImageDataModule",
}
#: The MLP's hyperparameters in checkpoints written before the network became a config of its own.
_MLP_KEYS = ("in_features", "hidden", "activation")
_MLP = "fmnist_scaling.models.networks.MLP"


def upgrade_target(target: Any) -> Any:
    """A ``_target_`` path as it is named today (``fmnist_scaling.networks.MLP``: ``...models.networks.MLP``)."""
    if not isinstance(target, str):
        return target
    module, _, name = target.rpartition(".")
    target = f"{MOVED_MODULES[module]}.{name}" if module in MOVED_MODULES else target
    return RENAMED_CLASSES.get(target, target)


def upgrade_tree(tree: Any) -> Any:
    """A config tree (plain dicts and lists) with every ``_target_`` upgraded."""
    if isinstance(tree, dict):
        return {k: upgrade_target(v) if k == "_target_" else upgrade_tree(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [upgrade_tree(v) for v in tree]
    return tree


def upgrade_config(flat: dict[str, Any]) -> dict[str, Any]:
    """A recorded config, flattened (``model.net.hidden``), with today's keys and class paths."""
    return {MOVED_KEYS.get(k, k): upgrade_target(v) if k.endswith("_target_") else v for k, v in flat.items()}


def upgrade_hparams(hparams: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's hyperparameters as :class:`~fmnist_scaling.models.classifier.ScalingClassifier`
    takes them now: an older checkpoint's MLP fields (``in_features``, ``hidden``, ``activation``)
    become its ``net`` (the MLP's own defaults fill the rest); class paths as named today."""
    hparams = upgrade_tree(dict(hparams))
    if "net" in hparams or not any(k in hparams for k in _MLP_KEYS):
        return hparams
    rest = {k: v for k, v in hparams.items() if k not in _MLP_KEYS}
    net = {
        "_target_": _MLP,
        **{k: hparams[k] for k in _MLP_KEYS if k in hparams},
        "num_classes": hparams.get("num_classes", 10),
    }
    return {**rest, "net": net}


def moved_key(argv: list[str]) -> str | None:
    """A one-line error for an override of a key that has moved (``model.hidden``)."""
    for arg in argv:
        key, _, value = arg.partition("=")
        if key.lstrip("+~") in MOVED_KEYS:
            new = MOVED_KEYS[key.lstrip("+~")]
            return f"{key.lstrip('+~')} has moved: the network's options are in model.net now ({new}={value})"
    return None
