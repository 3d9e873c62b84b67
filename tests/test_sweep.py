"""Sweeps: real multiruns in a subprocess (job folders named by the experiment only, reruns that
skip, resume or leave alone a job, divergence recorded as a result), the summary and its numbers
(completed runs averaged, every other status counted, NaN, inf and single values, the best lr),
and the report command."""

import csv
import json
import math
import statistics
from pathlib import Path

import pytest

import fmnist_scaling.run.resolvers  # noqa: F401  (the config's resolvers, as every entry point registers them)
from fmnist_scaling.run import records
from tests.conftest import TINY, read_metrics, run_module, train, write_job

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


# ---- job folders and reruns, on tiny data


def test_a_setting_that_changes_no_result_names_no_job_folder(tmp_path, tiny_root):
    """callbacks.progress.refresh_rate (a key under callbacks.progress, which changes no result)
    was part of a job's folder name: adding it to a finished sweep's command trained it again."""
    sweep = tmp_path / "sweep"
    common = ["-m", *TINY, f"data.root={tiny_root}", f"hydra.sweep.dir={sweep}", "scaling=max", "seed=0"]
    first = train(*common, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    again = train(*common, "callbacks.progress.refresh_rate=8", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    (job,) = [p.parent for p in sweep.glob("*/metrics.json")]  # one folder: the same job, skipped
    assert "refresh_rate" not in job.name and "already completed, skipped" in again.stderr + again.stdout


def test_a_sweep_rerun_over_jobs_of_other_settings_leaves_them_alone(tmp_path, tiny_root):
    sweep = tmp_path / "sweep"
    args = ["-m", *TINY, f"data.root={tiny_root}", f"hydra.sweep.dir={sweep}", "scaling=max", "seed=0,1"]
    assert train(*args, cwd=tmp_path).returncode == 0
    jobs = sorted(p.parent for p in sweep.glob("*/metrics.json"))
    # as if a config file had been edited since: the job folder's name is the same, the experiment is not
    edited = read_metrics(jobs[0])
    edited["config"]["model"]["optimizer"]["lr"] = 0.5
    records.write(jobs[0], edited)
    # and as if the other job had been run by a version without an option added since: still the same experiment
    older = read_metrics(jobs[1])
    del older["config"]["model"]["first_layer_lr_scale"]
    records.write(jobs[1], older)
    kept = {job: (job / "metrics.json").read_bytes() for job in jobs}
    rerun = train(*args, cwd=tmp_path)
    assert rerun.returncode == 0  # the sweep goes on
    assert f"error: {jobs[0]} holds a run of other settings: model.optimizer.lr=0.01 (the run: 0.5)" in rerun.stderr
    assert "already completed, skipped" in rerun.stdout  # the other job
    assert {job: (job / "metrics.json").read_bytes() for job in jobs} == kept


def test_a_sweep_where_every_seed_diverges_keeps_its_summary(tmp_path, tiny_root):
    sweep = tmp_path / "sweep"
    proc = train(
        "-m",
        *TINY,
        f"data.root={tiny_root}",
        f"hydra.sweep.dir={sweep}",
        "scaling=none",
        "model.optimizer.lr=1e6",
        "seed=0,1",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "warning: no sweep summary" not in proc.stderr
    summary = (sweep / "summary.md").read_text()
    assert "| 2 |" in summary  # both runs diverged, counted
    assert (sweep / "curves.png").is_file()


# ---- honest summaries


def completed(acc: float, loss: float = 0.5, **extra) -> dict:
    return {"status": "completed", "final": {"val/acc": acc, "test/acc": acc, "test/loss": loss, **extra}}


def test_a_summary_averages_completed_runs_only_and_counts_the_rest(tmp_path):
    from fmnist_scaling.tools import report

    sweep = tmp_path / "sweep"
    diverged = {"status": "diverged", "final": {"val/acc": 0.1, "test/acc": 0.1, "test/loss": float("nan")}}
    write_job(sweep, "a0", ["model.optimizer.lr=1000", "seed=0"], completed(0.314, loss=2.0e7))
    write_job(sweep, "a1", ["model.optimizer.lr=1000", "seed=1"], diverged)
    write_job(sweep, "a2", ["model.optimizer.lr=1000", "seed=2"], diverged)
    write_job(sweep, "b0", ["model.optimizer.lr=0.01", "seed=0"], completed(0.80, loss=float("inf")))
    write_job(sweep, "b1", ["model.optimizer.lr=0.01", "seed=1"], completed(0.82, loss=float("inf")))
    write_job(sweep, "b2", ["model.optimizer.lr=0.01", "seed=2"], {"status": "interrupted", "history": []})
    rows = {r["model.optimizer.lr"]: r for r in report.write_report(sweep)}
    # 2 of 3 seeds diverged: the mean is the finished run's, not 17.1 with chance folded in
    assert rows["1000"]["val_acc"] == pytest.approx(0.314) and rows["1000"]["runs"] == 1
    assert rows["1000"]["diverged"] == 2
    assert rows["0.01"]["runs"] == 2 and rows["0.01"]["stopped"] == 1
    table = (sweep / "summary.md").read_text()
    line = next(x for x in table.splitlines() if x.startswith("| 1000 |"))
    assert "| 31.4 |" in line and "±" not in line  # one run: no ± 0.0 that reads as agreement
    assert "| 2e+07 |" in line  # a collapsed loss in scientific notation, not 20000000.000
    line = next(x for x in table.splitlines() if x.startswith("| 0.01 |"))
    assert "81.0 ± 1.4" in line and "| inf |" in line  # a column of inf values is shown as inf
    header = table.splitlines()[0]
    assert "test loss" in header and "stopped" in header and "diverged" in header
    assert "sample standard deviation over the row's completed runs" in table


def test_a_summary_is_written_for_any_mix_of_results(tmp_path):
    from fmnist_scaling.tools import report

    sweep = tmp_path / "sweep"
    nan, inf = float("nan"), float("inf")
    diverged = {
        "status": "diverged",
        "final": {"train/loss": nan, "train/acc": 0.1, "test/acc": 0.1, "test/loss": inf},
        "history": [{"epoch": 1, "step": 16, "train/loss": nan, "train/acc": 0.1}],
        "wall_time_s": 1.0,
    }
    done = {
        "status": "completed",
        "final": {"train/loss": 0.5, "train/acc": 0.8, "test/acc": 0.78, "test/loss": 0.6},
        "history": [{"epoch": 1, "step": 16, "train/loss": 0.5, "train/acc": 0.8}],
        "wall_time_s": 2.0,
    }
    write_job(sweep, "a0", ["model.optimizer.lr=1e6", "seed=0"], diverged)
    write_job(
        sweep,
        "a1",
        ["model.optimizer.lr=1e6", "seed=1"],
        {**diverged, "final": {**diverged["final"], "test/loss": -inf}},
    )
    write_job(sweep, "b0", ["model.optimizer.lr=0.01", "seed=0"], done)
    write_job(sweep, "b1", ["model.optimizer.lr=0.01", "seed=1"], {"status": "failed", "error": "OSError"})
    write_job(sweep, "b2", ["model.optimizer.lr=0.01", "seed=2"], {"status": "interrupted", "history": []})
    write_job(sweep, "b3", ["model.optimizer.lr=0.01", "seed=3"], None)
    assert report.main([str(sweep)]) == 0
    assert all((sweep / f).is_file() for f in ("summary.csv", "summary.md", "curves.png"))
    rows = {r["model.optimizer.lr"]: r for r in report.summarize(report.load_jobs(sweep))[1]}
    # diverged runs are counted, not averaged: no completed run, no mean
    assert rows["1e6"]["diverged"] == 2 and rows["1e6"]["runs"] == 0 and math.isnan(rows["1e6"]["test_acc"])
    assert rows["0.01"]["runs"] == 1 and math.isnan(rows["0.01"]["test_acc_std"])  # one value: no spread
    assert rows["0.01"]["failed"] == 1 and rows["0.01"]["stopped"] == 1 and rows["0.01"]["unfinished"] == 1


def test_the_best_lr_is_one_whose_runs_all_trained(tmp_path):
    from fmnist_scaling.tools import report

    sweep = tmp_path / "sweep"
    final = {"val/acc": 0.12, "train_full/acc": 0.12, "test/acc": 0.12}
    for seed in range(3):  # lr 1: two seeds diverged, the third sits at chance, yet scores highest
        diverged = {"status": "diverged", "final": {}, "history": []}
        at_chance = {"status": "completed", "collapsed": True, "final": final, "history": []}
        write_job(sweep, f"a{seed}", ["model.optimizer.lr=1", f"seed={seed}"], diverged if seed else at_chance)
        low = {"status": "completed", "collapsed": True, "final": {**final, "val/acc": 0.11}, "history": []}
        write_job(sweep, f"b{seed}", ["model.optimizer.lr=0.1", f"seed={seed}"], low)
    report.write_report(sweep)
    assert _lr_grid_row(sweep).endswith("| - |")  # no lr trained: none is the best
    write_job(
        sweep,
        "c0",
        ["model.optimizer.lr=0.01", "seed=0"],
        {"status": "completed", "final": {**final, "val/acc": 0.5}, "history": []},
    )
    report.write_report(sweep)
    assert _lr_grid_row(sweep).endswith("| 0.01 |")


def _lr_grid_row(sweep: Path) -> str:
    grid = (sweep / "summary.md").read_text().split("by learning rate:", 1)[1]
    return [line for line in grid.splitlines() if line.startswith("|")][2]
