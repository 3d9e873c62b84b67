"""``--help`` answers at once (:mod:`fmnist_scaling.run.help`) with the text Hydra's own help prints."""

from __future__ import annotations

import subprocess
import sys

import pytest

from fmnist_scaling import train
from fmnist_scaling.run import cli, help
from fmnist_scaling.run.resolvers import group_choices

#: ``python -m fmnist_scaling.train`` with this project's help switched off: Hydra prints its own.
HYDRAS_OWN = (
    "import runpy, sys; from fmnist_scaling.run import cli; cli.app_help = lambda *a, **k: None; "
    "sys.argv[0] = 'train'; runpy.run_module('fmnist_scaling.train', run_name='__main__')"
)


def hydra_help(argv, cwd) -> str:
    proc = subprocess.run([sys.executable, "-c", HYDRAS_OWN, *argv], cwd=cwd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def fast_help(argv, capsys, monkeypatch) -> str:
    monkeypatch.setattr(sys, "argv", ["train.py", *argv])
    cli.run(train.main)
    return capsys.readouterr().out


@pytest.mark.parametrize("argv", [["--help"], ["-h", "scaling=none", "model/net=cnn", "model.optimizer.lr=0.1"]])
def test_help_prints_what_hydra_prints_without_its_listing(argv, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    expected = hydra_help(argv, tmp_path)
    from hydra._internal.hydra import Hydra

    def slow(*args, **kwargs):
        raise AssertionError("Hydra's help ran")

    monkeypatch.setattr(Hydra, "app_help", slow)
    assert fast_help(argv, capsys, monkeypatch) == expected
    assert f"scaling: {', '.join(group_choices('scaling'))}\n" in expected  # every mode in conf/scaling/
    assert not list(tmp_path.iterdir())  # nothing made


def test_help_lists_every_group_that_holds_an_option():
    groups = help.config_groups()
    assert groups["model/net"] == group_choices("model/net") and "model" in groups and "hydra" not in groups
    assert groups == {group: group_choices(group) for group in groups} and all(groups.values())
    assert {"data", "scaling", "model/net", "model/optimizer"} <= set(groups)


def test_a_search_path_of_the_users_is_left_to_hydra(tmp_path):
    assert help.app_help(["--help", f"hydra.searchpath=[file://{tmp_path}]"]) is None
    assert help.app_help(["--help", "--resolve"]) is None
