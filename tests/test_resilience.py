"""Divergence is a result, an interrupted run resumes, parallel runs never share a folder."""

import csv
import signal
import subprocess
import sys
import time

import pytest
import torch

from tests.conftest import read_metrics, train

pytestmark = pytest.mark.real_data
SHORT = ["trainer.limit_train_batches=200"]


def test_divergence_is_recorded_and_the_sweep_goes_on(tmp_path, real_root):
    sweep = tmp_path / "sweep"
    proc = train(
        "-m",
        "scaling=none",
        "model.optimizer.lr=1e6,1e-2",
        "seed=0",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=50",
        f"data.root={real_root}",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    diverged = read_metrics(
        sweep / "model.optimizer.lr=1000000.0,scaling=none,seed=0,trainer.limit_train_batches=50,trainer.max_epochs=1"
    )
    assert diverged["status"] == "diverged"
    assert diverged["diverged_at"]["epoch"] == 0 and diverged["diverged_at"]["step"] <= 5  # measured: within 3 steps
    finite = read_metrics(
        sweep / "model.optimizer.lr=0.01,scaling=none,seed=0,trainer.limit_train_batches=50,trainer.max_epochs=1"
    )
    assert finite["status"] == "completed"
    with open(sweep / "summary.csv") as f:
        rows = {r["model.optimizer.lr"]: r for r in csv.DictReader(f)}
    assert rows["1000000.0"]["diverged"] == "1" and rows["0.01"]["diverged"] == "0"


def test_killed_run_resumes_from_its_last_checkpoint(tmp_path, real_root):
    args = ["scaling=standard", "trainer.max_epochs=3", *SHORT, f"data.root={real_root}"]
    reference = tmp_path / "reference"
    assert train(*args, f"hydra.run.dir={reference}", cwd=tmp_path).returncode == 0
    killed = tmp_path / "killed"
    cmd = [
        sys.executable,
        "-m",
        "fmnist_scaling.train",
        "trainer.enable_progress_bar=false",
        *args,
        f"hydra.run.dir={killed}",
    ]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = killed / "checkpoints" / "last.ckpt"
    deadline = time.time() + 300
    while not last.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = read_metrics(killed)
    assert partial["status"] == "running" and 1 <= len(partial["history"]) < 3
    checkpoint = torch.load(last, weights_only=True)  # tensors and plain values only
    assert checkpoint["epoch"] == len(partial["history"]) - 1

    resumed = train(f"resume={killed}", *args, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming" in resumed.stdout and "exists and is not empty" not in resumed.stderr
    done, ref = read_metrics(killed), read_metrics(reference)
    assert done["status"] == "completed" and [h["epoch"] for h in done["history"]] == [1, 2, 3]
    assert done["final"]["test/acc"] == pytest.approx(ref["final"]["test/acc"], abs=0.01)  # seed spread is ~0.005
    assert done["history"][0] == pytest.approx(partial["history"][0])  # finished epochs kept as they were

    again = train(f"resume={killed}", *args, cwd=tmp_path)
    assert again.returncode == 0 and "already completed, skipped" in again.stdout
    assert read_metrics(killed) == done  # a finished result is never overwritten


def test_two_runs_started_together_get_their_own_folders(tmp_path, real_root):
    cmd = [
        sys.executable,
        "-m",
        "fmnist_scaling.train",
        "trainer.enable_progress_bar=false",
        "trainer=debug",
        "trainer.limit_train_batches=5",
        f"data.root={real_root}",
    ]
    procs = [subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for _ in range(2)]
    assert all(p.wait(timeout=300) == 0 for p in procs)
    runs = sorted((tmp_path / "lightning_logs" / "runs").iterdir())
    assert len(runs) == 2
    for run in runs:
        assert read_metrics(run)["status"] == "completed" and read_metrics(run)["run_dir"].endswith(run.name)
        assert list(run.glob("events.out.tfevents.*"))
