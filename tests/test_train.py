"""End to end on the real data, through the real entry point, as a user runs it; and what a run
prints."""

import os
import re
from pathlib import Path

import pytest

from tests.conftest import TINY, read_metrics, run_module, train


def one_epoch(tmp_path: Path, real_root: Path, scaling: str, *extra: str) -> tuple[Path, dict, str]:
    run_dir = tmp_path / scaling
    proc = train(
        f"scaling={scaling}",
        "trainer.max_epochs=1",
        f"data.root={real_root}",
        f"hydra.run.dir={run_dir}",
        *extra,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir, read_metrics(run_dir), proc.stdout


@pytest.mark.real_data
def test_max_learns_in_one_epoch(tmp_path, real_root):
    run_dir, metrics, stdout = one_epoch(tmp_path, real_root, "max")
    assert metrics["status"] == "completed" and not metrics["collapsed"]
    assert metrics["final"]["test/acc"] >= 0.75  # the original loop: 0.79 after one epoch
    assert metrics["final"]["train_full/acc"] >= 0.75 and metrics["final"]["val/acc"] >= 0.75
    assert metrics["final"]["diag/dead_frac"] <= 0.1
    assert metrics["initial"]["diag/loss"] == pytest.approx(2.3, abs=0.1)  # ln 10 at init
    assert [h["epoch"] for h in metrics["history"]] == [1]
    assert metrics["train_step"] == "fused" and metrics["history"][0]["step"] == 1719  # ceil(55,000 / 32) SGD steps
    assert metrics["config"]["model"]["optimizer"]["lr"] == 0.01 and metrics["config"]["data"]["batch_size"] == 32
    # the run says where its outputs are, and they are there
    assert str(run_dir) in stdout and re.search(r"test\s+acc\s+\d+\.\d+%", stdout)
    assert list(run_dir.glob("events.out.tfevents.*")) and (run_dir / ".hydra" / "config.yaml").is_file()
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()


@pytest.mark.real_data
def test_raw_pixels_collapse_to_chance(tmp_path, real_root):
    _, metrics, stdout = one_epoch(tmp_path, real_root, "none")
    assert metrics["status"] == "completed" and metrics["collapsed"]
    assert metrics["final"]["test/acc"] <= 0.40  # the article's effect
    assert metrics["final"]["diag/dead_frac"] >= 0.5  # the mechanism: the hidden ReLUs died
    assert metrics["initial"]["diag/preact_std"] > 100 * 0.3  # ~255x the / 255 pre-activations
    assert "collapsed" in stdout


@pytest.mark.slow
@pytest.mark.real_data
def test_reference_study_five_epochs(tmp_path, real_root):
    """The issue's bar: the default 5 epochs give >= 0.82 test accuracy with max; none runs to the
    end near chance."""
    for scaling, check in (("max", lambda acc: acc >= 0.82), ("none", lambda acc: acc <= 0.25)):
        run_dir = tmp_path / scaling
        proc = train(f"scaling={scaling}", f"data.root={real_root}", f"hydra.run.dir={run_dir}", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
        metrics = read_metrics(run_dir)
        assert metrics["status"] == "completed" and len(metrics["history"]) == 5
        assert check(metrics["final"]["test/acc"]), metrics["final"]


@pytest.mark.real_data
def test_ddp_on_two_cpu_processes(tmp_path, real_root):
    """accelerator/strategy come from the command line only; each rank takes its own shard and
    one rank writes the results."""
    run_dir = tmp_path / "ddp"
    proc = train(
        "trainer.strategy=ddp",
        "trainer.devices=2",
        "trainer.accelerator=cpu",
        "threads=1",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=5",
        f"data.root={real_root}",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("run ") == 1  # one summary, from rank 0
    metrics = read_metrics(run_dir)
    assert metrics["status"] == "completed" and metrics["history"][0]["step"] == 5 * 16
    assert metrics["train_step"] == "autograd (2 processes (DDP reduces gradients through autograd))"
    assert 0.5 < metrics["final"]["test/acc"] < 1.0


# ---- what a run prints, on tiny data


def test_the_console_counts_sgd_steps_names_its_passes_and_says_each_line_once(tmp_path, tiny_root):
    run_dir = tmp_path / "run"
    bin_dir = tmp_path / "bin"  # a SLURM login node: srun on the PATH
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "srun").chmod(0o755)
    proc = run_module(
        "fmnist_scaling.train",
        *TINY,
        "trainer.max_epochs=2",
        "data.steps_per_batch=4",
        "callbacks.progress.refresh_rate=8",
        f"data.root={tiny_root}",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
        env={"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "PYTHONWARNINGS": "default"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    assert "srun" not in out  # Lightning's hint to prepend srun, on every run of a login node
    assert out.count("GPU available") == 1 and out.count("max_epochs=2` reached") == 1
    assert "8/16 [" in out and "16/16 [" in out and "step/s" in out  # 16 SGD steps an epoch, shown as they go
    assert "Evaluating on val" in out and "Evaluating on train_full" in out and "Evaluating on test" in out
    assert "DataLoader" not in out
    assert "GPU available" in (run_dir / "train.log").read_text()  # Lightning's lines are in the log too
