"""The command line as a user types it: a bad value or a misspelt key is one line and makes
nothing (in a sweep too), Hydra's usage errors are one line, printing a config creates nothing,
and paths with Hydra's grammar characters or a leading ``~`` work as typed. (Every key's bad
values: tests/test_errors.py and tests/test_schema.py.)"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fmnist_scaling.utils.errors import EXIT_BAD_INPUT
from tests.conftest import TINY, assert_one_line, read_metrics, run_module, tiny_run, train

# ---- every value checked before anything is made


@pytest.mark.parametrize(
    "override,message",
    [
        ("seed=-5", "seed=-5 is invalid: must be an integer in 0..4294967295"),
        ("seed=99999999999", "seed=99999999999 is invalid: must be an integer in 0..4294967295"),
        ("threads=-1", "threads=-1 is invalid: must be an integer >= 1"),
        ("threads=0", "threads=0 is invalid: must be an integer >= 1"),  # was silently torch's default
        ("model.optimizer.lrr=0.1", "model.optimizer.lrr is not a key of the config: did you mean model.optimizer.lr?"),
        ("trainer.max_epoch=3", "trainer.max_epoch is not a key of the config: did you mean trainer.max_epochs?"),
        ("logger=null", "logger=null is invalid: to run without a logger, remove the group with ~logger"),  # traceback
        ("arch=cnn", "arch=cnn is invalid: arch is not in the default config; add it with +arch=cnn"),
    ],
)
def test_a_bad_value_or_key_is_one_line_and_makes_nothing(tmp_path, override, message):
    proc = train(override, "data.root=unused", cwd=tmp_path)
    assert proc.returncode == EXIT_BAD_INPUT, proc.stderr[-2000:]
    (line,) = [x for x in proc.stderr.splitlines() if x.strip()]
    assert line.startswith(f"error: {message}"), proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert list(tmp_path.iterdir()) == []  # no run folder, no lightning_logs


def test_a_misspelt_key_in_a_sweep_is_one_line_too(tmp_path):
    proc = train("-m", "seed=0,1", "model.optimizer.lrr=0.1,0.2", "data.root=unused", cwd=tmp_path)
    assert proc.returncode == EXIT_BAD_INPUT and "did you mean model.optimizer.lr?" in proc.stderr, proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_hydra_usage_error_is_one_line(tmp_path):
    proc = run_module("fmnist_scaling.train", "--cfg", "job", "-m", cwd=tmp_path)
    assert_one_line(proc, EXIT_BAD_INPUT, "Only one of")
    assert not list(tmp_path.iterdir())


def test_printing_the_config_creates_nothing(tmp_path):
    for flags in (["--cfg", "all", "--resolve"], ["--cfg", "hydra", "--resolve"], ["--info"]):
        proc = run_module("fmnist_scaling.train", *flags, cwd=tmp_path)
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert not list(tmp_path.iterdir())


# ---- paths as typed


def test_paths_with_hydra_grammar_characters_work_as_typed(tmp_path, tiny_root):
    """A sweep job's folder is named by its overrides: resume= and ckpt_path= take it as typed."""
    from fmnist_scaling.run.overrides import quote_paths

    assert quote_paths(["resume=/a/scaling=max,seed=0", "scaling=max", "hydra.sweep.dir=out/${now:%H}"]) == [
        "resume='/a/scaling=max,seed=0'",
        "scaling=max",
        "hydra.sweep.dir=out/${now:%H}",
    ]
    assert quote_paths(["ckpt_path=it's here"]) == ["ckpt_path='it\\'s here'"]
    # characters Hydra's lexer stops at unquoted (a letter with an accent, #, !, &): quoted too
    assert quote_paths(["data.root=/d/dåta #1!", "data.root=a&b", "data.root=plain/path-1.2"]) == [
        "data.root='/d/dåta #1!'",
        "data.root='a&b'",
        "data.root=plain/path-1.2",
    ]
    job = tmp_path / "sweep" / "scaling=max,seed=0"
    proc, run_dir = tiny_run(tmp_path, tiny_root, run_dir=job)
    assert proc.returncode == 0, proc.stderr[-2000:]
    again = train(f"resume={job}", *TINY, f"data.root={tiny_root}", cwd=tmp_path)
    assert again.returncode == 0 and "already completed, skipped" in again.stdout, again.stderr[-2000:]
    # ~ is the home folder, as in a shell (which does not expand it after "key="); odd names work
    home = tmp_path / "home"
    shutil.copytree(tiny_root, home / "dåta #1 & co!")
    odd = train(*TINY, "data.root=~/dåta #1 & co!", "hydra.run.dir=~/rün (1)", cwd=tmp_path, env={"HOME": str(home)})
    assert odd.returncode == 0, odd.stderr[-2000:]
    assert read_metrics(home / "rün (1)")["status"] == "completed"


def test_a_path_starting_with_a_tilde_is_the_home_folder(monkeypatch):
    from fmnist_scaling.run.overrides import quote_paths
    from fmnist_scaling.utils.files import user_path

    monkeypatch.setenv("HOME", "/home/someone")
    assert quote_paths(["data.root=~/data", "resume=~", "seed=0", "data.root=a~b"]) == [
        "data.root=/home/someone/data",
        "resume=/home/someone",
        "seed=0",
        "data.root='a~b'",
    ]
    # the tools' path options too (argparse's type: the shell leaves --out=~/x as it is)
    assert user_path("~/runs") == Path("/home/someone/runs") and user_path("a~b") == Path("a~b")


def test_a_val_size_larger_than_data_of_unknown_size_is_one_line_at_setup(tmp_path, tiny_root):
    # unverified data: its size is known only once loaded; the run still says it in one line
    run_dir = tmp_path / "run"
    proc = train(*TINY, "data.val_size=100000", f"data.root={tiny_root}", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert proc.returncode == EXIT_BAD_INPUT and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "error: data.val_size=100000 is invalid: must be an integer in 0..599 (" in proc.stderr
    record = read_metrics(run_dir)
    assert record["status"] == "failed" and (record["steps_done"], record["fraction_done"]) == (0, 0.0)
