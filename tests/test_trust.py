"""Trust, second pass: files others can read, messages without holes, nothing empty left behind,
plug-ins that do not import. Each through the real entry points."""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fmnist_scaling.data import sources
from fmnist_scaling.run import records
from fmnist_scaling.utils.errors import EXIT_BAD_INPUT
from fmnist_scaling.utils.files import atomic_file
from tests.conftest import make_tiny, run_module, train, write_record

TINY = ["data.verify=false", "data.local_copy=null", "data.val_size=100", "trainer.max_epochs=1"]


def modes(folder: Path) -> dict[str, int]:
    """The permission bits of every file under ``folder``, by path relative to it."""
    return {p.relative_to(folder).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in folder.rglob("*") if p.is_file()}


def with_umask(umask: int, module: str, *args: str, cwd: Path):
    """``python -m module args`` under ``umask``, one torch thread."""
    code = f"import os, runpy; os.umask({umask}); runpy.run_module({module!r}, run_name='__main__', alter_sys=True)"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    env.pop("HYDRA_FULL_ERROR", None)
    cmd = [sys.executable, "-c", code, *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_every_file_a_run_writes_respects_the_umask(tmp_path, umask):
    """Records, checkpoints, the data cache, the unpacked IDX files and evaluation.json, like
    every other file of a run: 0666 less the umask (they were 0600 whatever the umask)."""
    copy = tmp_path / "copy"
    make_tiny(copy, gz=True)
    run_dir = tmp_path / "run"
    overrides = [*TINY[:1], *TINY[2:], "trainer.enable_progress_bar=false", f"data.local_copy={copy}", "data.root=data"]
    proc = with_umask(umask, "fmnist_scaling.train", *overrides, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = with_umask(umask, "fmnist_scaling.evaluate", f"ckpt_path={run_dir}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    expected = 0o666 & ~umask
    written = {**modes(run_dir), **{f"data/{k}": v for k, v in modes(tmp_path / "data").items()}}
    ours = ["metrics.json", "checkpoints/evaluation.json", "data/FashionMNIST/fmnist_uint8.pt"]
    ours += [f"data/FashionMNIST/raw/{name}" for name in ("train-images-idx3-ubyte", "t10k-labels-idx1-ubyte")]
    ours += [next(k for k in written if k.startswith("checkpoints/epoch"))]
    assert all(written.get(name) == expected for name in ours), {k: oct(written.get(k, 0)) for k in ours}
    assert not [k for k, v in written.items() if v & ~expected], {k: oct(v) for k, v in written.items()}


def test_a_failed_atomic_write_names_its_file(tmp_path):
    target = tmp_path / "metrics.json"
    with pytest.raises(OSError) as caught, atomic_file(target, "w"):
        raise OSError(errno.ENOSPC, "No space left on device")  # a write into an open file names none
    assert caught.value.filename == str(target) and caught.value.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []  # and nothing half-written stays


def test_a_full_disk_message_names_the_file_without_a_hole(tmp_path, tiny_root, monkeypatch):
    from fmnist_scaling.utils.errors import as_fault

    fault = as_fault(OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "metrics.json")), "write x")
    assert str(fault).startswith(f"cannot write x: {tmp_path / 'metrics.json'}: No space left on device; free")
    bare = as_fault(OSError(errno.ENOSPC, "No space left on device"), "write x")
    assert "::" not in str(bare) and str(bare).startswith("cannot write x: No space left on device")


def test_a_rejected_run_leaves_nothing_behind(tmp_path):
    """No run folder and no empty lightning_logs/runs: the folders the run made are removed again."""
    proc = train("model.optimizer.lr=-1", "data.root=unused", cwd=tmp_path)
    assert proc.returncode == EXIT_BAD_INPUT and "model.optimizer.lr=-1 is invalid" in proc.stderr
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "lightning_logs" / "runs" / "earlier").mkdir(parents=True)  # a folder with runs stays
    proc = train("seed=1.5", "data.root=unused", cwd=tmp_path)
    assert proc.returncode == EXIT_BAD_INPUT
    assert [p.name for p in (tmp_path / "lightning_logs" / "runs").iterdir()] == ["earlier"]


OWN_SCALING = """
    from fmnist_scaling.data.scaling import Scaling


    class Halve(Scaling):
        def transform(self, x):
            return x / 510.0
"""


def test_evaluate_names_a_plugin_that_does_not_import_and_the_fix(tmp_path, tiny_root):
    (tmp_path / "my_scaling.py").write_text(textwrap.dedent(OWN_SCALING))
    (tmp_path / "conf" / "scaling").mkdir(parents=True)
    (tmp_path / "conf" / "scaling" / "halve.yaml").write_text("_target_: my_scaling.Halve\n")
    run_dir = tmp_path / "run"
    proc = train(f"hydra.searchpath=[file://{tmp_path / 'conf'}]", "scaling=halve", f"data.root={tiny_root}", *TINY,
                 f"hydra.run.dir={run_dir}", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = run_module("fmnist_scaling.evaluate", f"ckpt_path={run_dir}", cwd=elsewhere)
    assert proc.returncode == EXIT_BAD_INPUT, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "its scaling mode my_scaling.Halve cannot be built here" in lines[0] and "PYTHONPATH" in lines[0]
    proc = run_module("fmnist_scaling.evaluate", f"ckpt_path={run_dir}", cwd=elsewhere,
                      env={"PYTHONPATH": str(tmp_path)})  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]  # the fix it names works


def test_sources_keep_the_umask_for_the_unpacked_files(tmp_path):
    copy = tmp_path / "copy"
    make_tiny(copy, gz=True)
    old = os.umask(0o022)
    try:
        sources.prepare(str(tmp_path / "data"), local_copy=str(copy), download=False, verify=False)
    finally:
        os.umask(old)
    files = modes(tmp_path / "data")
    assert files and all(mode == 0o644 for name, mode in files.items() if not name.endswith(".lock")), files


# ---- honest summaries


def job(sweep: Path, name: str, overrides: list[str], record: dict | None) -> None:
    folder = sweep / name
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    if record is not None:
        write_record(folder, overrides, record)


def completed(acc: float, loss: float = 0.5, **extra) -> dict:
    return {"status": "completed", "final": {"val/acc": acc, "test/acc": acc, "test/loss": loss, **extra}}


def test_a_summary_averages_completed_runs_only_and_counts_the_rest(tmp_path):
    from fmnist_scaling.tools import report

    sweep = tmp_path / "sweep"
    diverged = {"status": "diverged", "final": {"val/acc": 0.1, "test/acc": 0.1, "test/loss": float("nan")}}
    job(sweep, "a0", ["model.optimizer.lr=1000", "seed=0"], completed(0.314, loss=2.0e7))
    job(sweep, "a1", ["model.optimizer.lr=1000", "seed=1"], diverged)
    job(sweep, "a2", ["model.optimizer.lr=1000", "seed=2"], diverged)
    job(sweep, "b0", ["model.optimizer.lr=0.01", "seed=0"], completed(0.80, loss=float("inf")))
    job(sweep, "b1", ["model.optimizer.lr=0.01", "seed=1"], completed(0.82, loss=float("inf")))
    job(sweep, "b2", ["model.optimizer.lr=0.01", "seed=2"], {"status": "interrupted", "history": []})
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
    # another limit is the same experiment: not refused; the run goes on from its last whole epoch
    done = record["steps_done"]
    proc = train(f"resume={run_dir}", *data, "trainer.max_time=00:00:00:03", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert final_of(run_dir)["status"] == "stopped" and final_of(run_dir)["steps_done"] > done


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
