"""Sweeps on a real SLURM cluster through ``+launcher=slurm``, on CPUs: the one-node cluster of
``make cluster`` (``.ci/slurm_cluster.sh``, which CI starts). Marked ``slurm``, and skipped,
naming why, where that cluster does not answer.

The faults are the scheduler's own: ``scontrol requeue`` (what a preemption does), the signal
SLURM sends a job at its time limit, ``scancel``. Who does what on each: docs/configuration.md,
"SLURM". Tiny data, 16 short epochs, one thread per job: the module takes about 2 minutes, most
of it the jobs' start-up (a Python that imports torch and Lightning) and the 10 s a requeued job
waits before it starts again.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

import fmnist_scaling.run.resolvers  # noqa: F401  (the config's resolvers, as every entry point registers them)
from fmnist_scaling.data import sources
from fmnist_scaling.run import slurm
from tests.conftest import REPO, make_tiny, read_metrics, train

#: The one-node cluster's name in its slurm.conf (.ci/slurm_cluster.sh): the tests submit only there.
CLUSTER = "fmnist_scaling"
#: What a user types to run a sweep on the CPUs of that cluster.
ON_SLURM = [
    "+launcher=slurm",
    "trainer.accelerator=cpu",
    "hydra.launcher.gpus_per_node=0",
    "hydra.launcher.cpus_per_task=1",
    "hydra.launcher.partition=debug",
    "hydra.launcher.mem_gb=1",
]
#: A short run: tiny data, one thread (results equal across runs), epochs of a few hundred ms.
SHORT = [
    "threads=1",
    "scaling=max",
    "data.verify=false",
    "data.local_copy=null",
    "data.val_size=100",
    "trainer.max_epochs=16",
]
EPOCHS = 16
#: The longest a sweep of these tests may take (a requeued job's restart included).
SWEEP_TIMEOUT_S = 240


def cluster_problem() -> str | None:
    """Why the one-node cluster cannot take these tests' jobs, or None."""
    if not shutil.which("sinfo"):
        return "no SLURM here (sinfo not found); make cluster starts a one-node cluster (as root)"
    ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=60)
    if "is UP" not in ping.stdout:  # at once; a command that needs the controller waits 9 s for it first
        said = (ping.stdout + ping.stderr).strip().splitlines()
        return (
            f"no SLURM controller answers ({said[0] if said else 'scontrol ping'}); make cluster starts one (as root)"
        )
    config = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, timeout=60).stdout
    name = next((line.split("=", 1)[1].strip() for line in config.splitlines() if line.startswith("ClusterName")), "")
    if name != CLUSTER:
        return f"the SLURM cluster here is {name!r}, not make cluster's one-node {CLUSTER!r}: no test jobs sent to it"
    node = socket.gethostname().split(".")[0]
    state = subprocess.run(["sinfo", "-h", "-n", node, "-o", "%T"], capture_output=True, text=True, timeout=60)
    now = (state.stdout.split() or ["unknown to sinfo"])[0]
    if now not in ("idle", "mixed"):
        return f"SLURM node {node} is {now}, not idle (.ci/slurm_cluster.sh status says more)"
    return None


@pytest.fixture(scope="module")
def cluster():
    problem = cluster_problem()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"CI starts the SLURM cluster (.ci/run): {problem}")
        pytest.skip(problem)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, cluster) -> Path:
    root = tmp_path_factory.mktemp("slurm_data")
    make_tiny(sources.raw_folder(root))
    return root


def sweep_args(sweep_dir: Path, tiny: Path, *overrides: str) -> list[str]:
    return ["-m", *ON_SLURM, *SHORT, f"data.root={tiny}", f"hydra.sweep.dir={sweep_dir}", *overrides]


def run_sweep(sweep_dir: Path, tiny: Path, *overrides: str) -> subprocess.CompletedProcess:
    return train(*sweep_args(sweep_dir, tiny, *overrides), cwd=sweep_dir.parent, timeout=SWEEP_TIMEOUT_S)


class Background:
    """A sweep command running while the test acts on its job, as a user's would; its SLURM job
    is cancelled if the test ends first."""

    def __init__(self, sweep_dir: Path, tiny: Path, *overrides: str) -> None:
        self.sweep_dir = sweep_dir
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
        env.pop("HYDRA_FULL_ERROR", None)
        args = sweep_args(sweep_dir, tiny, *overrides)
        command = [sys.executable, "-m", "fmnist_scaling.train", "-m", "trainer.enable_progress_bar=false", *args[1:]]
        self.proc = subprocess.Popen(
            command, cwd=sweep_dir.parent, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.job = ""

    def first_checkpoint(self) -> str:
        """Wait for the job's first epoch to end (its last.ckpt); its SLURM job id."""
        deadline = time.time() + SWEEP_TIMEOUT_S
        while time.time() < deadline and self.proc.poll() is None:
            if list(self.sweep_dir.glob("*/checkpoints/last.ckpt")):
                submitted = next(self.sweep_dir.glob(".submitit/*/*_submitted.pkl"))
                self.job = submitted.name.removesuffix("_submitted.pkl")
                return self.job
            time.sleep(0.05)
        out, err = self.finish()
        raise AssertionError(f"no checkpoint: the sweep ended or hung\n{out[-2000:]}\n{err[-2000:]}")

    def finish(self) -> tuple[str, str]:
        out, err = self.proc.communicate(timeout=SWEEP_TIMEOUT_S)
        assert self.proc.returncode == 0, f"{out[-2000:]}\n{err[-3000:]}\n{job_logs(self.sweep_dir)[-3000:]}"
        return out, err

    def __enter__(self) -> Background:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        if self.job:
            subprocess.run(["scancel", self.job], capture_output=True, timeout=60)


def job_logs(sweep_dir: Path) -> str:
    """Every log the SLURM jobs wrote (submitit's: stdout and stderr of each task of each run)."""
    return "".join(p.read_text(errors="replace") for p in sorted(sweep_dir.glob(".submitit/*/*_log.*")))


def the_job(sweep_dir: Path) -> Path:
    (job,) = [p.parent for p in sweep_dir.glob("*/metrics.json")]
    return job


@pytest.fixture(scope="module")
def finished_sweep(tmp_path_factory, tiny):
    """Two jobs (seed 0 and 1) run to their end: the reference of the other tests."""
    sweep_dir = tmp_path_factory.mktemp("slurm") / "sweep"
    proc = run_sweep(sweep_dir, tiny, "seed=0,1")
    assert proc.returncode == 0, f"{proc.stderr[-3000:]}\n{job_logs(sweep_dir)[-3000:]}"
    return sweep_dir, proc


def reference(finished_sweep) -> dict:
    sweep_dir, _ = finished_sweep
    (job,) = [p.parent for p in sweep_dir.glob("*seed=0*/metrics.json")]
    return read_metrics(job)


@pytest.mark.slurm
def test_a_sweep_runs_its_jobs_on_slurm_and_a_rerun_skips_them(finished_sweep, tiny):
    sweep_dir, proc = finished_sweep
    runs = [read_metrics(p.parent) for p in sweep_dir.glob("*/metrics.json")]
    assert len(runs) == 2 and {r["config"]["seed"] for r in runs} == {0, 1}
    assert all(r["status"] == "completed" and r["threads"] == 1 and r["device"] == "cpu" for r in runs)
    assert all([h["epoch"] for h in r["history"]] == list(range(1, EPOCHS + 1)) for r in runs)
    assert (sweep_dir / "summary.csv").is_file() and "Sweep summary" in proc.stdout
    # the cluster keeps no accounting: said once, and no sacct warning on any poll
    assert proc.stdout.count("SLURM keeps no job accounting here") == 1
    assert "sacct" not in proc.stdout + proc.stderr and "did not finish" not in proc.stderr

    before = {p: p.stat().st_mtime_ns for p in sweep_dir.glob("*/metrics.json")}
    again = run_sweep(sweep_dir, tiny, "seed=0,1")
    assert again.returncode == 0, again.stderr[-3000:]
    assert job_logs(sweep_dir).count("already completed, skipped") == 2
    assert before == {p: p.stat().st_mtime_ns for p in sweep_dir.glob("*/metrics.json")}


@pytest.mark.slurm
def test_a_job_requeued_mid_run_resumes_from_its_checkpoint_to_the_same_end(finished_sweep, tiny, tmp_path):
    """SLURM's requeue signals the job (SIGTERM) and starts it again: the project's handler stops
    the run at a step boundary and records that SLURM requeued it; Lightning's checkpoint of the
    last whole epoch is what the next start resumes from (Lightning's own SLURM requeue is off:
    no checkpoint inside an epoch); the end equals an uninterrupted run's."""
    sweep_dir = tmp_path / "requeued"
    with Background(sweep_dir, tiny, "seed=0") as sweep:
        job = sweep.first_checkpoint()
        subprocess.run(["scontrol", "requeue", job], check=True, timeout=60)
        run_dir = the_job(sweep_dir)
        deadline = time.time() + 60  # the record says it at once; the job waits 10 s to start again
        while read_metrics(run_dir)["status"] != "interrupted" and time.time() < deadline:
            time.sleep(0.05)
        stopped = read_metrics(run_dir)
        checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
        sweep.finish()
    assert stopped["status"] == "interrupted" and stopped["error"] == f"requeued by SLURM (job {job})"
    assert 1 <= len(stopped["history"]) < EPOCHS and checkpoint["epoch"] == len(stopped["history"]) - 1
    logs = job_logs(sweep_dir)
    assert f"requeued by SLURM (job {job}): it starts again by itself" in logs and "resume with:" not in logs
    assert "resuming" in logs and "SLURM auto-requeueing enabled" not in logs
    assert not list(run_dir.rglob("hpc_ckpt*"))
    done = read_metrics(run_dir)
    assert done["status"] == "completed" and [h["epoch"] for h in done["history"]] == list(range(1, EPOCHS + 1))
    assert done["final"] == reference(finished_sweep)["final"]  # every key, exactly


@pytest.mark.slurm
def test_a_job_at_its_time_limit_is_requeued_by_submitit_and_finishes(finished_sweep, tiny, tmp_path):
    """At a job's time limit (less signal_delay_s) SLURM sends it USR2, as asked by submitit's
    --signal=USR2@<signal_delay_s>: submitit's handler requeues the job while max_num_timeout
    allows. The test sends that signal itself: SLURM checks time limits every 30 s, in minutes."""
    sweep_dir = tmp_path / "timed_out"
    # SLURM's own signal comes signal_delay_s before the limit, up to 30 s sooner: not in this test
    limits = ["hydra.launcher.timeout_min=2", "hydra.launcher.signal_delay_s=5", "hydra.launcher.max_num_timeout=1"]
    with Background(sweep_dir, tiny, "seed=0", *limits) as sweep:
        job = sweep.first_checkpoint()
        subprocess.run(["scancel", "--signal=USR2", job], check=True, timeout=60)
        sweep.finish()
    logs = job_logs(sweep_dir)
    assert "this job is timed-out" in logs and f"Requeued job {job} (0 remaining timeouts)" in logs
    assert f"requeued by SLURM (job {job})" in logs and "resuming" in logs
    done = read_metrics(the_job(sweep_dir))
    assert done["status"] == "completed" and done["final"] == reference(finished_sweep)["final"]


@pytest.mark.slurm
def test_a_cancelled_job_is_reported_unfinished_and_a_rerun_completes_it(finished_sweep, tiny, tmp_path):
    sweep_dir = tmp_path / "cancelled"
    with Background(sweep_dir, tiny, "seed=0") as sweep:
        job = sweep.first_checkpoint()
        subprocess.run(["scancel", job], check=True, timeout=60)
        _, err = sweep.finish()  # the sweep goes on, and ends: the job returned
    run_dir = the_job(sweep_dir)
    stopped = read_metrics(run_dir)
    assert stopped["status"] == "interrupted" and stopped["error"] == f"cancelled by SLURM (job {job})"
    assert f"1 of 1 jobs did not finish: {run_dir.name} (interrupted)" in err
    assert "re-run the same sweep command" in job_logs(sweep_dir)
    summary = (sweep_dir / "summary.csv").read_text().splitlines()
    assert dict(zip(*(line.split(",") for line in summary)))["stopped"] == "1"

    again = run_sweep(sweep_dir, tiny, "seed=0")
    assert again.returncode == 0 and "did not finish" not in again.stderr, again.stderr[-3000:]
    done = read_metrics(run_dir)
    assert done["status"] == "completed" and done["final"] == reference(finished_sweep)["final"]


@pytest.mark.slurm
def test_ddp_on_two_slurm_tasks_writes_one_record(finished_sweep, tiny, tmp_path):
    """Two tasks of one job (tasks_per_node = trainer.devices): Lightning takes the ranks from
    SLURM and launches nothing itself; rank 0 alone records; each rank takes half the data."""
    sweep_dir = tmp_path / "ddp"
    proc = run_sweep(sweep_dir, tiny, "seed=0", "trainer.devices=2", "trainer.strategy=ddp")
    assert proc.returncode == 0, f"{proc.stderr[-3000:]}\n{job_logs(sweep_dir)[-3000:]}"
    (record_file,) = sweep_dir.glob("*/metrics.json")
    record = json.loads(record_file.read_text())
    assert record["status"] == "completed" and record["train_step"].startswith("autograd (2 processes")
    logs = job_logs(sweep_dir)
    assert "global_rank=0(2)" in logs and "global_rank=1(2)" in logs  # submitit's view: 2 SLURM tasks
    assert logs.count("run ") == 1  # one summary: rank 0's
    single = reference(finished_sweep)
    assert record["history"][0]["step"] * 2 == pytest.approx(single["history"][0]["step"], abs=1)
    for key in ("test/acc", "val/acc"):
        assert abs(record["final"][key] - single["final"][key]) <= 0.05, (key, record["final"], single["final"])


def test_under_the_slurm_launcher_lightning_leaves_requeues_to_slurm_and_submitit():
    """+launcher=slurm: Lightning's SLURM environment without its auto-requeue (no SIGUSR1
    handler, no checkpoint inside an epoch), submitit requeues at the time limit, and the
    sweep's callback reads job states from squeue where there is no accounting."""
    from lightning.fabric.plugins.environments import SLURMEnvironment

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=ON_SLURM, return_hydra_config=True)
    with warnings.catch_warnings():  # off SLURM, with srun installed: Lightning's hint to use it
        warnings.simplefilter("ignore")
        plugins = [instantiate(p) for p in cfg.trainer.plugins]
    (environment,) = [p for p in plugins if isinstance(p, SLURMEnvironment)]
    assert environment.auto_requeue is False
    assert any(type(p).__name__ == "AtomicCheckpointIO" for p in plugins)  # the default's plugin kept
    assert cfg.hydra.launcher.max_num_timeout > 0
    assert cfg.hydra.callbacks.slurm._target_ == "fmnist_scaling.run.slurm.SlurmSweep"


def fake_command(folder: Path, name: str, output: str, code: int = 0) -> None:
    path = folder / name
    to = " >&2" if code else ""  # an error on stderr, as SLURM's commands print it
    path.write_text(f"#!/bin/sh\ncat{to} <<'EOF'\n{output}\nEOF\nexit {code}\n")
    path.chmod(0o755)


def test_scheduler_stop_tells_a_requeue_from_a_cancel(tmp_path, monkeypatch):
    """scontrol counts a requeue at once (Restarts), before SLURM signals the job."""
    fake_command(tmp_path, "scontrol", "JobId=12 JobName=train Restarts=1 BatchFlag=1 JobState=COMPLETING")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    assert slurm.scheduler_stop() is None  # not a SLURM job
    monkeypatch.setenv("SLURM_JOB_ID", "12")
    assert slurm.scheduler_stop() is None  # a SLURM job, not one of submitit's
    monkeypatch.setenv("SUBMITIT_EXECUTOR", "slurm")
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "11")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "1")
    assert slurm.scheduler_stop() == slurm.SchedulerStop(requeued=True, job="11_1")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")  # this run is the first restart: not requeued again
    assert slurm.scheduler_stop() == slurm.SchedulerStop(requeued=False, job="11_1")


def test_the_queue_watcher_reads_squeue_and_ends_a_job_it_no_longer_lists(tmp_path, monkeypatch):
    fake_command(tmp_path, "squeue", "7_0|RUNNING\n7_1|CANCELLED\n8|PENDING")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    watcher = slurm.queue_watcher()
    for job in ("7_0", "7_1", "7_2", "8"):
        watcher.register_job(job)
    assert [watcher.get_state(j, mode="force") for j in ("7_0", "7_1", "7_2", "8")] == [
        "RUNNING",
        "CANCELLED",
        slurm.GONE,
        "PENDING",
    ]
    assert [watcher.is_done(j, mode="cache") for j in ("7_0", "7_1", "7_2", "8")] == [False, True, True, False]
    fake_command(tmp_path, "squeue", "slurm_load_jobs error: Invalid job id specified", code=1)
    assert watcher.get_state("8", mode="force") == slurm.GONE  # one id asked, and SLURM forgot it
