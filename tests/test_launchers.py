"""Launchers that run a sweep's jobs side by side share the cores: how many jobs at once and how
many threads each (the parallel launcher on the real data, the paced one on tiny data), the
launchers' config names, and the SLURM launcher's config."""

from __future__ import annotations

import csv
import os

import pytest
from hydra import compose, initialize_config_dir

from tests.conftest import REPO, TINY, read_metrics, train

SHORT = ["trainer.max_epochs=1", "trainer.limit_train_batches=30"]


@pytest.mark.real_data
def test_parallel_launcher_runs_two_jobs_with_one_thread_each(tmp_path, real_root):
    sweep_dir = tmp_path / "par"
    proc = train(
        "-m",
        "+launcher=parallel",
        "scaling=max,standard",
        "seed=0",
        *SHORT,
        f"data.root={real_root}",
        f"hydra.sweep.dir={sweep_dir}",
        cwd=tmp_path,
        # the sweep takes about 15 s; a command that waits out joblib's idle workers at its end
        # takes over 300 s (an exit without the threading module's exit callbacks did)
        timeout=150,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = [read_metrics(p.parent) for p in sweep_dir.glob("*/metrics.json")]
    assert len(records) == 2 and all(r["status"] == "completed" and r["threads"] == 1 for r in records)
    assert len({r["run_dir"] for r in records}) == 2
    with open(sweep_dir / "summary.csv") as f:
        assert {r["scaling"] for r in csv.DictReader(f)} == {"max", "standard"}


def test_paced_local_runs_at_most_array_parallelism_jobs_at_once(tmp_path, tiny_root):
    # submitit's own local executor starts every job at once; the project's paces them
    sweep = tmp_path / "sweep"
    proc = train(
        "-m",
        "hydra/launcher=paced_local",
        "hydra.launcher.array_parallelism=1",
        *TINY,
        f"data.root={tiny_root}",
        f"hydra.sweep.dir={sweep}",
        "scaling=max,standard",
        "seed=0",
        cwd=tmp_path,
        env={"OMP_NUM_THREADS": ""},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ends = {p.parent: p.stat().st_mtime for p in sweep.glob("*/metrics.json")}
    jobs = [read_metrics(folder) for folder in ends]
    assert len(jobs) == 2 and all(r["status"] == "completed" for r in jobs)
    cores = len(os.sched_getaffinity(0))
    assert all(r["threads"] == cores and "1 jobs side by side" in r["threads_reason"] for r in jobs)
    spans = sorted((end - record["wall_time_s"], end) for end, record in zip(ends.values(), jobs))
    assert spans[1][0] >= spans[0][1] - 0.05, spans  # the second began after the first had ended


@pytest.mark.parametrize(
    "choice, target",
    [
        ("submitit_local", "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher"),
        ("paced_local", "hydra_plugins.fmnist_scaling_launcher.PacedLocalLauncher"),
    ],
)
def test_submitits_launcher_name_stays_submitits(choice, target):
    from hydra import compose, initialize_config_dir

    from fmnist_scaling.run.resolvers import CONF_DIR

    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[f"hydra/launcher={choice}"], return_hydra_config=True)
    assert cfg.hydra.launcher._target_ == target


def test_paced_launcher_shares_the_cores(monkeypatch):
    import hydra_plugins.fmnist_scaling_launcher as paced

    monkeypatch.setattr(paced.os, "sched_getaffinity", lambda pid: set(range(8)))  # an 8-core machine
    assert paced.usable_cores() == 8
    assert paced.jobs_at_once(3, None) == 3 and paced.jobs_at_once(3, 4) == 3  # as set
    assert paced.jobs_at_once(None, None) == 8  # one core a job
    assert paced.jobs_at_once(None, 2) == 4 and paced.jobs_at_once(None, 3) == 2  # whole cores only
    assert paced.jobs_at_once(None, 80) == 1  # at least one


@pytest.mark.parametrize(
    "launcher,expected,reason",
    [
        (
            {"_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher", "n_jobs": 1},
            "all",
            "joblib",
        ),
        (
            {"_target_": "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher", "cpus_per_task": 3},
            3,
            "cpus_per_task=3",
        ),
        (
            {"_target_": "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher", "cpus_per_task": 4},
            4,
            "cpus_per_task=4",
        ),
        ({"_target_": "hydra_plugins.hydra_ray_launcher.ray_launcher.RayLauncher"}, 1, "ray"),
        (
            {"_target_": "hydra_plugins.fmnist_scaling_launcher.PacedLocalLauncher", "array_parallelism": 1},
            "all",
            "1 jobs side by side",
        ),
    ],
)
def test_thread_rule_per_launcher(launcher, expected, reason):
    from omegaconf import OmegaConf

    from fmnist_scaling.run.threads import choose_threads

    threads, why = choose_threads(OmegaConf.create({"threads": None}), OmegaConf.create(launcher))
    cores = len(os.sched_getaffinity(0))
    assert threads == (cores if expected == "all" else expected) and reason in why


def test_slurm_launcher_config_composes():
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(
            "train", overrides=["+launcher=slurm", "trainer.devices=4", "trainer.num_nodes=2"], return_hydra_config=True
        )
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert launcher.tasks_per_node == 4 and launcher.gpus_per_node == 4 and launcher.nodes == 2
    assert launcher.timeout_min > 0


def test_ctrl_c_of_a_parallel_sweep_says_each_thing_once_and_sums_up_what_finished(tmp_path, tiny_root):
    import signal
    import subprocess
    import sys
    import time

    sweep_dir = tmp_path / "sweep"
    cmd = [sys.executable, "-m", "fmnist_scaling.train", "-m", "+launcher=parallel", "trainer.max_epochs=1,100000"]
    cmd += [*TINY[:3], "trainer.enable_progress_bar=false", f"data.root={tiny_root}", f"hydra.sweep.dir={sweep_dir}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # in a process group of its own, which Ctrl-C in a terminal signals as a whole
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        short = [
            p for p in sweep_dir.glob("*max_epochs=1/metrics.json") if read_metrics(p.parent)["status"] == "completed"
        ]
        if short and list(sweep_dir.glob("*max_epochs=100000/checkpoints/last.ckpt")):
            break
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode != 0 and "Traceback" not in err and "leaked semaphore" not in err, err[-3000:]
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("INFO:")]  # INFO: per job
    assert len(lines) == len(set(lines)), err  # each thing said once
    assert err.count("interrupted (SIGINT)") <= 1 and "sweep stopped by SIGINT; the finished jobs are summed up" in err
    with open(sweep_dir / "summary.csv") as f:  # the finished job, summed up on the way out
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and sum(r["test_acc"] != "nan" for r in rows) == 1, rows
