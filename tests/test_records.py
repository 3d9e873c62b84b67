"""Records nobody can fool (``metrics.json``: read, checked, set aside when it is not one), and a
status for every way a run ends (stopped by a step or time limit, extended). Each through the real
entry points."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from fmnist_scaling.run import records
from fmnist_scaling.utils.errors import EXIT_BAD_INPUT
from tests.conftest import TINY, run_module, train

# ---- records nobody can fool


def test_a_sweep_never_trusts_nor_crashes_on_a_record_that_is_not_one(tmp_path, tiny_root):
    """Valid JSON that is not an object, a truncated record, a record written by something else:
    each job is set aside (nothing deleted), runs anew with its .hydra/, and the summary is made."""
    sweep = tmp_path / "sweep"
    command = ["-m", *TINY, f"data.root={tiny_root}", f"hydra.sweep.dir={sweep}", "seed=0,1,2", "scaling=max"]
    proc = train(*command, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = {seed: next(sweep.glob(f"*seed={seed}*")) for seed in (0, 1, 2)}
    intact = (jobs[0] / "metrics.json").read_text()
    bad = {0: "[1, 2, 3]", 1: intact[: len(intact) // 2], 2: json.dumps({"status": "completed"})}
    events = {seed: sorted(p.name for p in jobs[seed].glob("events.out.tfevents.*")) for seed in bad}
    assert all(events.values())
    for seed, text in bad.items():
        (jobs[seed] / "metrics.json").write_text(text)
        shutil.rmtree(jobs[seed] / ".hydra")  # and the config it ran with is gone too
    proc = train(*command, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "no sweep summary" not in proc.stderr
    for seed, text in bad.items():
        warning = [line for line in proc.stderr.splitlines() if str(jobs[seed] / "metrics.json") in line]
        assert len(warning) == 1 and "is not a record of fmnist_scaling" in warning[0], proc.stderr[-3000:]
        record = json.loads((jobs[seed] / "metrics.json").read_text())
        assert record["status"] == "completed" and record["format"] == records.FORMAT  # ran anew
        assert (jobs[seed] / ".hydra" / "config.yaml").is_file()
        (aside,) = jobs[seed].glob("set_aside_*")
        assert (aside / "metrics.json").read_text() == text  # kept, not deleted
        # the whole replaced run goes with it: TensorBoard shows the new run in the job's folder alone
        assert sorted(p.name for p in aside.glob("events.out.tfevents.*")) == events[seed]
        assert (aside / "hparams.yaml").is_file() and (aside / "checkpoints").is_dir()
        assert not set(events[seed]) & {p.name for p in jobs[seed].glob("events.out.tfevents.*")}
    assert (sweep / "summary.md").is_file()
    assert run_module("fmnist_scaling.tools.report", str(sweep), cwd=tmp_path).returncode == 0


def test_a_resume_of_a_folder_whose_record_is_not_one_is_refused_and_moves_nothing(tmp_path, tiny_root):
    run_dir = tmp_path / "run"
    proc = train(*TINY, f"data.root={tiny_root}", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir / "metrics.json").write_text('{"status": "completed"}')
    before = sorted(p.relative_to(run_dir) for p in run_dir.rglob("*"))
    config = (run_dir / ".hydra" / "config.yaml").read_text()
    proc = train(f"resume={run_dir}", *TINY, f"data.root={tiny_root}", cwd=tmp_path)
    assert proc.returncode == EXIT_BAD_INPUT, proc.stderr[-3000:]
    (line,) = [x for x in proc.stderr.splitlines() if x.strip()]
    assert line.startswith(f"error: {run_dir / 'metrics.json'} is not a record of fmnist_scaling")
    assert sorted(p.relative_to(run_dir) for p in run_dir.rglob("*")) == before
    assert (run_dir / ".hydra" / "config.yaml").read_text() == config


@pytest.mark.parametrize(
    "text,why",
    [
        ("[]", "a JSON list, not an object"),
        ('{"status": "completed"', "not JSON"),
        ('{"status": "completed"}', "no run_dir"),
        ('{"status": "done", "run_dir": "x"}', "status 'done' is none of"),
        ('{"format": "fmnist_scaling.record/9", "status": "completed"}', "this version reads"),
    ],
)
def test_read_names_why_a_file_is_not_a_record(tmp_path, text, why):
    (tmp_path / "metrics.json").write_text(text)
    with pytest.raises(records.RecordProblem, match=why) as caught:
        records.read(tmp_path)
    assert str(tmp_path / "metrics.json") in str(caught.value)


def test_a_record_from_before_the_format_field_is_still_read(tmp_path):
    old = {"status": "completed", "run_dir": str(tmp_path), "overrides": [], "config": {"seed": 0}, "final": {}}
    (tmp_path / "metrics.json").write_text(json.dumps(old))
    assert records.read(tmp_path) == {**old, "format": records.FORMAT}


# ---- a status for every way a run ends

STEPS = [*TINY[:3], "data.steps_per_batch=4"]  # tiny data: 16 SGD steps an epoch, in Lightning batches of 4


def final_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def test_a_run_stopped_by_a_step_limit_says_so_and_resumes_to_the_same_numbers(tmp_path, tiny_root):
    data = [*STEPS, f"data.root={tiny_root}", "trainer.max_epochs=3"]
    straight = tmp_path / "straight"
    assert train(*data, f"hydra.run.dir={straight}", cwd=tmp_path).returncode == 0
    run_dir = tmp_path / "run"
    proc = train(*data, "trainer.max_steps=20", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "stopped by trainer.max_steps after 20 of 48 steps (41.7%); resume with:" in proc.stdout
    record = final_of(run_dir)
    assert record["status"] == "stopped" and record["stopped_by"] == "trainer.max_steps"
    assert (
        record["steps_done"] == 20
        and record["steps_planned"] == 48
        and record["fraction_done"] == pytest.approx(20 / 48)
    )
    assert record["history"][-1]["partial"] is True and record["history"][-1]["epoch"] == 2
    # the printed command, without the limit (not part of the experiment): it finishes the run
    proc = train(f"resume={run_dir}", *data, cwd=tmp_path)
    assert proc.returncode == 0 and f"run {run_dir}: completed" in proc.stdout, proc.stderr[-3000:]
    record = final_of(run_dir)
    assert [(h["epoch"], h["step"], h.get("partial")) for h in record["history"]] == [
        (1, 16, None),
        (2, 32, None),
        (3, 48, None),
    ]
    assert record["final"] == final_of(straight)["final"]  # the partial epoch was redone from its start


def test_a_run_stopped_by_its_time_limit_is_not_called_completed(tmp_path, tiny_root):
    run_dir = tmp_path / "run"
    data = [*STEPS, f"data.root={tiny_root}", "trainer.max_epochs=100000", "callbacks.diagnostics.histograms=false"]
    proc = train(*data, "trainer.max_time=00:00:00:02", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = final_of(run_dir)
    assert record["status"] == "stopped" and record["stopped_by"] == "trainer.max_time"
    assert 0 < record["fraction_done"] < 0.01 and "completed" not in proc.stdout.split("\n", 1)[0]
    # the limit is per spell: each resume with the same limit goes on from its last whole epoch
    # and gets further (with the time spent before restored, it stopped at once, behind)
    for spell in (2, 3):
        done = final_of(run_dir)["steps_done"]
        proc = train(f"resume={run_dir}", *data, "trainer.max_time=00:00:00:02", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert final_of(run_dir)["status"] == "stopped" and final_of(run_dir)["steps_done"] > done, spell


def test_a_time_limit_shorter_than_an_epoch_saves_nothing_and_says_so(tmp_path, tiny_root):
    run_dir = tmp_path / "run"
    limit = "trainer.max_time={seconds:0.000001}"  # Lightning's Timer stops after the first group of steps
    proc = train(*STEPS, f"data.root={tiny_root}", limit, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = final_of(run_dir)
    assert record["status"] == "stopped" and 0 < record["steps_done"] < 16  # inside the first epoch
    assert "no whole epoch to resume from" in proc.stdout and "resume with" not in proc.stdout
    assert "warning: trainer.max_time ended this spell inside its first epoch" in proc.stderr
    assert not (run_dir / "checkpoints").exists()  # no checkpoint of a part of an epoch, not even last.ckpt


def test_a_sweep_re_run_with_its_time_limit_advances_every_job_in_the_same_folders(tmp_path, tiny_root):
    data = [*STEPS, f"data.root={tiny_root}", "trainer.max_epochs=100000", "callbacks.diagnostics.histograms=false"]
    sweep = [
        "-m",
        "scaling=max,standard",
        "seed=0",
        "trainer.max_time=00:00:00:02",
        f"hydra.sweep.dir={tmp_path / 's'}",
    ]
    done = {}
    for _spell in (1, 2):
        proc = train(*sweep, *data, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
        jobs = {p.parent.name: final_of(p.parent) for p in (tmp_path / "s").glob("*/metrics.json")}
        # a job's folder is named by its experiment: no limit in it, so a re-run finds the same job
        assert len(jobs) == 2 and not any("max_time" in name or "\\" in name for name in jobs), sorted(jobs)
        assert all(r["status"] == "stopped" and r["steps_done"] > done.get(name, 0) for name, r in jobs.items())
        done = {name: r["steps_done"] for name, r in jobs.items()}


def test_a_sweep_over_a_setting_that_is_not_the_experiment_is_refused_at_once(tmp_path):
    proc = train("-m", "scaling=max", "trainer.max_time=00:00:01:00,00:00:02:00", cwd=tmp_path)
    assert proc.returncode == EXIT_BAD_INPUT and proc.stderr.count("\n") == 1
    assert proc.stderr.startswith("error: a sweep over trainer.max_time is refused") and not list(tmp_path.iterdir())


def test_a_finished_run_extends_to_more_epochs_with_one_history(tmp_path, tiny_root):
    data = [*STEPS, f"data.root={tiny_root}"]
    straight, run_dir = tmp_path / "straight", tmp_path / "run"
    assert train(*data, "trainer.max_epochs=3", f"hydra.run.dir={straight}", cwd=tmp_path).returncode == 0
    assert train(*data, "trainer.max_epochs=2", f"hydra.run.dir={run_dir}", cwd=tmp_path).returncode == 0
    proc = train(f"resume={run_dir}", *data, "trainer.max_epochs=3", cwd=tmp_path)
    assert proc.returncode == 0 and "completed (extended from 2 epochs)" in proc.stdout, proc.stderr[-3000:]
    record = final_of(run_dir)
    assert record["extended_from_epochs"] == 2 and [h["epoch"] for h in record["history"]] == [1, 2, 3]
    assert record["final"] == final_of(straight)["final"]
    proc = train(f"resume={run_dir}", *data, "trainer.max_epochs=2", cwd=tmp_path)  # fewer epochs: refused
    assert proc.returncode == EXIT_BAD_INPUT and "trainer.max_epochs=2 (the run: 3)" in proc.stderr
