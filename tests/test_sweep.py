"""Real multiruns in a subprocess: job folders, the summary and its numbers, the report command,
the parallel launcher, and the launcher configs that cannot run here."""

import csv
import json
import statistics

import pytest
from hydra import compose, initialize_config_dir

import fmnist_scaling.run.resolvers  # noqa: F401  (the config's resolvers, as every entry point registers them)
from tests.conftest import REPO, read_metrics, run_module, train

SHORT = ["trainer.max_epochs=1", "trainer.limit_train_batches=30"]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, real_root):
    tmp = tmp_path_factory.mktemp("sweep")
    sweep_dir = tmp / "sweep"
    proc = train(
        "-m", "scaling=none,max", "seed=0,1", *SHORT, f"data.root={real_root}", f"hydra.sweep.dir={sweep_dir}", cwd=tmp
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return sweep_dir, proc.stdout


def rows(path):
    with open(path) as f:
        return {r["scaling"]: r for r in csv.DictReader(f)}


@pytest.mark.real_data
def test_sweep_makes_named_jobs_and_a_summary_of_their_means(sweep):
    sweep_dir, stdout = sweep
    jobs = sorted(p.name for p in sweep_dir.iterdir() if (p / "metrics.json").is_file())
    assert jobs == [
        f"scaling={m},seed={s},trainer.limit_train_batches=30,trainer.max_epochs=1"
        for m in ("max", "none")
        for s in (0, 1)
    ]
    summary = rows(sweep_dir / "summary.csv")
    assert set(summary) == {"none", "max"}
    for mode, row in summary.items():
        metrics = [read_metrics(sweep_dir / f"scaling={mode},seed={s},{SHORT[1]},{SHORT[0]}") for s in (0, 1)]
        accs = [m["final"]["test/acc"] for m in metrics]
        assert float(row["test_acc"]) == pytest.approx(statistics.fmean(accs), abs=1e-9)
        assert float(row["test_acc_std"]) == pytest.approx(statistics.stdev(accs), abs=1e-9)
        assert float(row["dead_frac"]) == pytest.approx(
            statistics.fmean(m["final"]["diag/dead_frac"] for m in metrics), abs=1e-9
        )
        assert row["runs"] == "2"
    assert float(summary["max"]["val_acc"]) > float(summary["none"]["val_acc"])
    assert (sweep_dir / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert "Sweep summary" in stdout and "| scaling |" in (sweep_dir / "summary.md").read_text()


@pytest.mark.real_data
def test_report_rebuilds_the_same_summary(sweep):
    sweep_dir, _ = sweep
    before = (sweep_dir / "summary.csv").read_text()
    (sweep_dir / "summary.csv").unlink()
    (sweep_dir / "curves.png").unlink()
    proc = run_module("fmnist_scaling.tools.report", str(sweep_dir), cwd=sweep_dir)
    assert proc.returncode == 0, proc.stderr
    assert (sweep_dir / "summary.csv").read_text() == before
    assert (sweep_dir / "curves.png").is_file()


def rerun(sweep_dir, real_root):
    """The sweep's own command again, in its folder."""
    return train(
        "-m", "scaling=none,max", "seed=0,1", *SHORT, f"data.root={real_root}", f"hydra.sweep.dir={sweep_dir}",
        cwd=sweep_dir.parent,
    )  # fmt: skip


@pytest.mark.real_data
def test_rerun_of_a_finished_sweep_skips_every_job(sweep, real_root):
    sweep_dir, _ = sweep
    before = {p: p.stat().st_mtime_ns for p in sweep_dir.glob("*/metrics.json")}
    proc = rerun(sweep_dir, real_root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("already completed, skipped") == 4
    assert before == {p: p.stat().st_mtime_ns for p in sweep_dir.glob("*/metrics.json")}


@pytest.mark.real_data
def test_rerun_of_an_interrupted_sweep_resumes_only_the_unfinished_job(sweep, real_root):
    sweep_dir, _ = sweep
    job = sweep_dir / f"scaling=max,seed=1,{SHORT[1]},{SHORT[0]}"
    record = read_metrics(job)
    (job / "metrics.json").write_text(json.dumps({**record, "status": "running"}))  # as if killed
    proc = rerun(sweep_dir, real_root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("already completed, skipped") == 3
    assert f"resuming {job}" in proc.stdout
    resumed = read_metrics(job)
    assert resumed["status"] == "completed" and resumed["history"] == record["history"]
    assert resumed["final"]["test/acc"] == pytest.approx(record["final"]["test/acc"], abs=1e-6)


def test_report_on_a_folder_without_jobs(tmp_path):
    proc = run_module("fmnist_scaling.tools.report", str(tmp_path), cwd=tmp_path)
    assert proc.returncode == 2 and "no job directories" in proc.stderr


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
    assert set(rows(sweep_dir / "summary.csv")) == {"max", "standard"}


def test_slurm_launcher_config_composes():
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(
            "train", overrides=["+launcher=slurm", "trainer.devices=4", "trainer.num_nodes=2"], return_hydra_config=True
        )
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert launcher.tasks_per_node == 4 and launcher.gpus_per_node == 4 and launcher.nodes == 2
    assert launcher.timeout_min > 0
