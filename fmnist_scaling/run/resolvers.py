"""The Hydra resolvers that ``conf/`` uses, registered when this module is imported (the entry
points and the tools that compose ``conf/train.yaml`` import it).

- ``run_dir``: a new run's folder, made at once so that two runs never share one;
- ``record_subdir``: ``.hydra`` for a new run, nothing for a run that has a record;
- ``not_the_experiment``: the keys left out of a sweep job's folder name (one list, see
  :mod:`fmnist_scaling.run.experiment`);
- ``scaling_modes``: every mode in ``conf/scaling/`` (what a plain ``-m`` sweeps);
- ``dataset``: a fact of the chosen dataset (``${dataset:max_value}``, ``pixels``, ``num_classes``,
  ``height``, ``width``, ``system_copy``), read from its class (``data.dataset._target_``);
- ``flat``, ``divide``, ``square``: small arithmetic and naming helpers.
"""

from __future__ import annotations

import itertools
import math
from datetime import datetime
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from fmnist_scaling.run import context, experiment, records

#: The config folder (``config_path`` of the entry points).
CONF_DIR = Path(__file__).resolve().parent.parent.parent / "conf"


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
        if context.command.dry_run:
            return str(path)
        context.command.note_new_folders(path)
        try:
            path.mkdir(parents=True)
            return str(path)
        except FileExistsError:
            continue
    raise AssertionError("unreachable")


def record_subdir(output_dir: str) -> str | None:
    """Hydra's ``output_subdir`` for a job: ``.hydra`` for a new run; None (write nothing) for a
    run that already has a record, so resuming or skipping it never rewrites the config it ran
    with. A file there that is not a record: a sweep job runs anew (``.hydra``), a single run is
    refused and keeps the config it has."""
    try:
        return None if records.read(output_dir) is not None else ".hydra"
    except records.RecordProblem:
        return ".hydra" if _in_sweep() else None


def _in_sweep() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


#: The facts ``${dataset:<fact>}`` reads from the dataset's class.
DATASET_FACTS = {
    "max_value": lambda d: float(d.max_value),
    "pixels": lambda d: d.pixels(),
    "height": lambda d: d.image_shape[0],
    "width": lambda d: d.image_shape[1],
    "num_classes": lambda d: len(d.classes),
    "system_copy": lambda d: getattr(d, "system_copy", None),
}


def dataset_fact(fact: str, *, _root_: Any) -> Any:
    """A fact of the config's dataset (``data.dataset._target_``; none: Fashion-MNIST)."""
    from fmnist_scaling.data.datasets import dataset_class

    if fact not in DATASET_FACTS:
        raise ValueError(f"${{dataset:{fact}}}: no such fact; one of {', '.join(DATASET_FACTS)}")
    target = OmegaConf.select(_root_, "data.dataset._target_", default=None)
    return DATASET_FACTS[fact](dataset_class(target))


def group_choices(group: str) -> list[str]:
    """The choices of a config group: its yaml files in ``conf/<group>/``, sorted."""
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


OmegaConf.register_new_resolver("run_dir", new_run_dir, use_cache=True, replace=True)
OmegaConf.register_new_resolver("record_subdir", record_subdir, replace=True)


def not_in_job_names() -> list[str]:
    """:data:`~fmnist_scaling.run.experiment.NOT_IN_JOB_NAMES` and, for a mapping among them
    (``callbacks.progress``), each key under it in the shipped config: Hydra leaves out of a job's
    folder name only the exact keys it is given, so ``callbacks.progress.refresh_rate=8`` named a
    new folder and a finished sweep ran again."""
    import yaml

    keys = list(experiment.NOT_IN_JOB_NAMES)
    for key in experiment.NOT_IN_JOB_NAMES:
        group, _, rest = key.partition(".")
        path = CONF_DIR / group / "default.yaml"
        node = yaml.safe_load(path.read_text()) if rest and path.is_file() else None
        for part in rest.split(".") if node else ():
            node = node.get(part) if isinstance(node, dict) else None
        keys += [f"{key}.{name}" for name in node] if isinstance(node, dict) else []
    return keys


OmegaConf.register_new_resolver("not_the_experiment", not_in_job_names, replace=True)
OmegaConf.register_new_resolver("dataset", dataset_fact, replace=True)
OmegaConf.register_new_resolver("scaling_modes", lambda: ",".join(group_choices("scaling")), replace=True)
# a group override (model/optimizer=adam) in a job's folder name must not open a subfolder
OmegaConf.register_new_resolver("flat", lambda name: name.replace("/", "."), replace=True)
# arithmetic for configs that derive one value from another (conf/gain_as: 255 / g, g^2); a zero
# divisor gives inf, which validate() names as the bad value
OmegaConf.register_new_resolver("divide", lambda a, b: float(a) / float(b) if float(b) else math.inf, replace=True)
OmegaConf.register_new_resolver("square", lambda a: float(a) ** 2, replace=True)
