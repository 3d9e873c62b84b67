"""Every yaml in conf/ composes, and what it describes instantiates."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate

import fmnist_scaling.run.resolvers  # noqa: F401  (registers the config's resolvers)
from tests.conftest import REPO

CONF = REPO / "conf"


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


CASES = [
    f"{g}={o}"
    for g in ("data", "scaling", "model", "model/optimizer", "trainer", "logger", "callbacks")
    for o in options(g)
]
CASES += [f"+experiment={o}" for o in options("experiment")]


def compose_in(tmp_path: Path, overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    cfg.hydra.runtime.output_dir = str(tmp_path)
    HydraConfig.instance().set_config(cfg)
    return cfg


@pytest.mark.parametrize("override", CASES)
def test_config_composes_and_instantiates(tmp_path, override):
    cfg = compose_in(tmp_path, [override])
    scaling = instantiate(cfg.scaling)
    datamodule = instantiate(cfg.data, scaling=scaling)
    model = instantiate(cfg.model, _recursive_=False)
    callbacks = [instantiate(c) for c in cfg.callbacks.values() if c is not None]
    trainer = instantiate(
        cfg.trainer, callbacks=callbacks, logger=instantiate(cfg.logger), default_root_dir=str(tmp_path)
    )
    assert datamodule.scaling is scaling and model.net is not None and trainer.max_epochs >= 1
    model.configure_optimizers()


def test_defaults_are_the_reference_study(tmp_path):
    cfg = compose_in(tmp_path, [])
    assert (
        cfg.model.net.hidden == [1000]
        and cfg.model.net.activation == "relu"
        and cfg.model.input_norm == "none"
        and cfg.model.init == "default"
    )
    assert cfg.model.optimizer._target_ == "torch.optim.SGD" and cfg.model.optimizer.lr == 0.01
    assert cfg.model.optimizer.momentum == 0 and cfg.model.optimizer.weight_decay == 0
    assert cfg.data.batch_size == 32 and cfg.trainer.max_epochs == 5
    assert cfg.trainer.accelerator == "auto" and cfg.trainer.devices == "auto"
