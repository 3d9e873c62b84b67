"""The project's config from Python: composed as the entry points compose it, and flattened to
dotted keys. A notebook or a tool composes through :func:`compose`, which brings the config's
resolvers (``run_dir``, ``dataset``, ``scaling_modes``, ...) with it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from omegaconf import DictConfig


def compose(
    config_name: str = "train", overrides: Sequence[str] = (), job_name: str = "app", hydra: bool = False
) -> DictConfig:
    """``conf/<config_name>.yaml`` composed with ``overrides`` (Hydra's compose API); ``hydra``:
    with Hydra's own config under ``hydra``; ``job_name``: what Hydra calls the app."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from fmnist_scaling.run.resolvers import CONF_DIR  # registers the config's resolvers

    with initialize_config_dir(str(CONF_DIR), version_base="1.3", job_name=job_name):
        return hydra_compose(config_name, overrides=list(overrides), return_hydra_config=hydra)


def flatten(tree: Any, inner: bool = False, prefix: str = "") -> dict[str, Any]:
    """A plain config tree (nested dicts) as ``{dotted key: value}`` for its leaves; ``inner``:
    the inner keys too (``model``, ``model.optimizer``, ...), each with its subtree."""
    if not isinstance(tree, dict):
        return {prefix[:-1]: tree}
    flat = {}
    for key, value in tree.items():
        if inner and isinstance(value, dict):
            flat[f"{prefix}{key}"] = value
        flat |= flatten(value, inner, f"{prefix}{key}.")
    return flat
