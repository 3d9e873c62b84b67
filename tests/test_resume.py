"""Runs that end early and ``resume=``: Ctrl-C records the run as interrupted and prints the
command that resumes it, a killed run resumes from its last checkpoint to the numbers of an
unbroken one, a finished run is skipped, and a resume or a run folder named again with other
settings is refused, naming the difference, with nothing touched. Through the real entry points."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from fmnist_scaling.utils.errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED
from tests.conftest import TINY, assert_one_line, read_metrics, tiny_run, train


def test_ctrl_c_records_interrupted_prints_the_resume_command_and_exits_130(tmp_path, tiny_root):
    run_dir = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "fmnist_scaling.train",
        "trainer.enable_progress_bar=false",
        *TINY,
        "trainer.max_epochs=500",
        "scaling=standard",
        f"data.root={tiny_root}",
        f"hydra.run.dir={run_dir}",
    ]
    proc = subprocess.Popen(
        cmd,
        cwd=tmp_path,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while not (run_dir / "checkpoints" / "last.ckpt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_INTERRUPTED, err[-3000:]
    assert "Traceback" not in err and "interrupted (SIGINT)" in err
    resume = err.split("resume with: ", 1)[1].splitlines()[0]
    assert f"resume={run_dir}" in resume and "scaling=standard" in resume and "enable_progress_bar" not in resume
    assert f"data.root={tiny_root}" in resume  # where the data is: else the resume would look in ./data
    record = read_metrics(run_dir)
    assert record["status"] == "interrupted" and record["history"]
    # as docs/outputs.md promises of every record: how far it got
    assert 0 < record["steps_done"] < record["steps_planned"]
    assert record["fraction_done"] == record["steps_done"] / record["steps_planned"]
    torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)

    # resuming it as another experiment is refused, naming the difference; nothing is touched
    before = {p: p.read_bytes() for p in (run_dir / "metrics.json", run_dir / ".hydra" / "config.yaml")}
    other = train(
        f"resume={run_dir}", *TINY, "trainer.max_epochs=500", "scaling=none", f"data.root={tiny_root}", cwd=tmp_path
    )
    assert_one_line(other, EXIT_BAD_INPUT, "other settings", "scaling=none (the run: standard)", "scaling=standard")
    assert all(p.read_bytes() == content for p, content in before.items())


def test_a_finished_run_keeps_its_recorded_config(tmp_path, tiny_root):
    proc, run_dir = tiny_run(tmp_path, tiny_root, "scaling=standard")
    assert proc.returncode == 0, proc.stderr[-3000:]
    recorded = {p: p.read_bytes() for p in (run_dir / ".hydra").iterdir()}
    record = (run_dir / "metrics.json").read_bytes()
    # the same experiment with settings that do not change it (threads, progress bar): skipped
    again = train(f"resume={run_dir}", *TINY, "scaling=standard", "threads=1", f"data.root={tiny_root}", cwd=tmp_path)
    assert again.returncode == 0 and "already completed, skipped" in again.stdout
    other = train(
        f"resume={run_dir}", *TINY, "scaling=standard", "model.optimizer.lr=0.5", f"data.root={tiny_root}", cwd=tmp_path
    )
    assert_one_line(other, EXIT_BAD_INPUT, "model.optimizer.lr=0.5 (the run: 0.01)")
    # the same folder named again as hydra.run.dir, without resume=: the folder is named, and how
    # to continue its run (not "resume=None is invalid", which the user never wrote)
    again, _ = tiny_run(tmp_path, tiny_root, "scaling=standard", "model.optimizer.lr=0.5")
    line = assert_one_line(
        again, EXIT_BAD_INPUT, f"{run_dir} already holds a run of other settings", "lr=0.5 (the run: 0.01)"
    )
    assert f"resume={run_dir}" in line and "scaling=standard" in line and "resume=None" not in line
    assert {p: p.read_bytes() for p in (run_dir / ".hydra").iterdir()} == recorded
    assert (run_dir / "metrics.json").read_bytes() == record


# ---- on the real data

SHORT = ["trainer.limit_train_batches=200"]


@pytest.mark.real_data
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
