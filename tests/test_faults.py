"""Faults users meet on real machines, through the real entry points: each ends in one line on
stderr naming the cause and the fix, a documented exit code (2 bad input, 3 a fault, 130 Ctrl-C),
no traceback, nothing on disk that a later run could take for a good result, and a
``metrics.json`` whose status tells the truth. Runs use the tiny dataset (seconds each)."""

from __future__ import annotations

import errno
import json
import math
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from fmnist_scaling.data import sources
from fmnist_scaling.run import records
from fmnist_scaling.utils.errors import EXIT_BAD_INPUT, EXIT_FAULT, EXIT_INTERRUPTED
from tests.conftest import make_tiny, read_metrics, run_module, train, write_job

#: The tiny dataset (500 training images after a 100-image validation split: 16 SGD steps an epoch).
TINY = ["data.verify=false", "data.local_copy=null", "data.val_size=100", "trainer.max_epochs=1"]


def tiny_run(
    tmp_path: Path, root: Path, *extra: str, run_dir: Path | None = None, **kwargs
) -> tuple[subprocess.CompletedProcess, Path]:
    run_dir = run_dir or tmp_path / "run"
    proc = train(*TINY, f"data.root={root}", f"hydra.run.dir={run_dir}", *extra, cwd=tmp_path, **kwargs)
    return proc, run_dir


def assert_one_line(proc: subprocess.CompletedProcess, code: int, *needles: str) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stderr[-3000:])
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def leftovers(folder: Path) -> list[Path]:
    """Temporary or empty files a crash could leave behind."""
    return [
        p
        for p in folder.rglob("*")
        if p.is_file() and (p.name.endswith(".partial") or p.stat().st_size == 0) and p.name != ".lock"
    ]


# ---- 1. integrity of the decoded cache


def damage_cache(root: Path, damage: str) -> dict[str, torch.Tensor]:
    """Build the cache of ``root``, damage it; return the tensors it held when sound."""
    sources.prepare(str(root), local_copy=None, download=False, verify=False)
    cache = sources.cache_path(root)
    good = sources.load(str(root), verify=False)
    blob = bytearray(cache.read_bytes())
    if damage == "image bytes":  # flip bytes inside the stored images, the way a bad disk would
        offset = blob.find(bytes(good["train_images"][7].flatten()[:64].tolist()))
        assert offset > 0
        blob[offset + 10 : offset + 20] = bytes(255 - b for b in blob[offset + 10 : offset + 20])
        cache.write_bytes(bytes(blob))
    elif damage == "a label":
        data = torch.load(cache, weights_only=True)
        data["train_labels"][3] = 200  # out of range, digest stale
        torch.save(data, cache)
    elif damage == "cut in half":
        cache.write_bytes(bytes(blob[: len(blob) // 2]))
    else:
        cache.write_bytes(b"not a cache at all")
    return good


@pytest.mark.parametrize(
    "damage,why", [("a label", "labels outside 0..9"), ("cut in half", "unreadable"), ("foreign file", "unreadable")]
)
def test_a_damaged_cache_is_detected_and_rebuilt(tiny_root, damage, why, capsys):
    good = damage_cache(tiny_root, damage)
    assert sources.prepare(str(tiny_root), local_copy=None, download=False, verify=False).startswith("data folder")
    err = capsys.readouterr().err
    assert why in err and "rebuilt it from the IDX files" in err
    rebuilt = sources.load(str(tiny_root), verify=False)
    assert all(torch.equal(rebuilt[k], good[k]) for k in sources.TENSORS)


def test_a_run_on_a_damaged_cache_trains_on_the_rebuilt_data(tmp_path, tiny_root):
    good = damage_cache(tiny_root, "image bytes")
    proc, run_dir = tiny_run(tmp_path, tiny_root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (
        "is damaged (the md5 of train_images differs" in proc.stderr and "rebuilt it from the IDX files" in proc.stderr
    )
    assert "Traceback" not in proc.stderr and read_metrics(run_dir)["status"] == "completed"
    rebuilt = sources.load(str(tiny_root), verify=False)
    assert all(torch.equal(rebuilt[k], good[k]) for k in sources.TENSORS)  # trained on the real images again


def test_a_damaged_cache_that_cannot_be_rebuilt_is_refused_in_one_line(tmp_path, tiny_root):
    sources.prepare(str(tiny_root), local_copy=None, download=False, verify=False)
    for idx in sources.raw_folder(tiny_root).iterdir():
        idx.unlink()  # no IDX files, no local copy, no download: nothing to rebuild from
    data = torch.load(sources.cache_path(tiny_root), weights_only=True)
    data["test_images"][0, 0, 0] ^= 1
    torch.save(data, sources.cache_path(tiny_root))
    proc, run_dir = tiny_run(tmp_path, tiny_root, "data.download=false")
    assert_one_line(proc, EXIT_BAD_INPUT, "Fashion-MNIST not found", "apt-get install")
    assert not run_dir.exists()


def test_a_verified_run_refuses_a_cache_of_other_data(tmp_path, tiny_root):
    """The digests of a verified run are those of the real Fashion-MNIST, not just self-consistent."""
    sources.prepare(str(tiny_root), local_copy=None, download=False, verify=False)
    with pytest.raises(sources.DataError, match="other than Fashion-MNIST.*data.verify=false"):
        sources.load(str(tiny_root), verify=True)


def test_an_outdated_or_edited_cache_is_not_trusted(tmp_path, tiny_root):
    sources.prepare(str(tiny_root), local_copy=None, download=False, verify=False)
    data = torch.load(sources.cache_path(tiny_root), weights_only=True)
    data["train_images"] = data["train_images"].flip(0)  # shapes fine, contents not what was cached
    torch.save(data, sources.cache_path(tiny_root))
    with pytest.raises(sources.DataError, match=r"is damaged \(the md5 of train_images differs"):
        sources.load(str(tiny_root), verify=False)


# ---- 2. concurrent first use


def _prepare(root: str, copy: str) -> str:
    return sources.prepare(root, local_copy=copy, download=False, verify=False)


def test_many_processes_prepare_an_empty_data_folder_at_once(tmp_path):
    copy = tmp_path / "copy"
    make_tiny(copy, n_train=3000, gz=True)
    root = tmp_path / "data"
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        sources_used = pool.starmap(_prepare, [(str(root), str(copy))] * 4)
    assert sum(s.startswith("local copy") for s in sources_used) == 1  # unpacked once; the others waited
    assert sorted(p.name for p in sources.raw_folder(root).iterdir()) == sorted(sources._FILES)
    assert not leftovers(root)
    assert sources.load(str(root), verify=False)["train_images"].shape == (3000, 28, 28)


def test_runs_started_together_on_an_empty_data_folder(tmp_path):
    copy = tmp_path / "copy"
    make_tiny(copy, gz=True)
    cmd = [
        sys.executable,
        "-m",
        "fmnist_scaling.train",
        "trainer.enable_progress_bar=false",
        *TINY,
        "data.root=data",
        f"data.local_copy={copy}",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(
            [*cmd, f"hydra.run.dir=run{i}"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(3)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [o[1][-2000:] for o in outs]
    assert sum("Fashion-MNIST unpacked" in err for _, err in outs) == 1
    assert all(read_metrics(tmp_path / f"run{i}")["status"] == "completed" for i in range(3))
    assert not leftovers(tmp_path / "data")


# ---- 3. a data folder that cannot be created or written


@pytest.mark.parametrize("root", ["/proc/fmnist_data", "a_file/data"])
def test_an_unwritable_data_folder_is_one_line_and_leaves_no_run_folder(tmp_path, root):
    (tmp_path / "a_file").write_text("a file, not a folder")
    proc, run_dir = tiny_run(tmp_path, Path(root), "data.local_copy=/usr/share/datasets/fashion-mnist")
    assert_one_line(proc, EXIT_BAD_INPUT, f"data.root={root}", "data.root=<folder>")
    assert not run_dir.exists() and not list(tmp_path.glob("lightning_logs/runs/*"))


@pytest.mark.parametrize("contents", [{}, {"notes.txt": "the user's"}])
def test_a_rejected_command_leaves_the_users_folder_as_it_was(tmp_path, tiny_root, contents):
    folder = tmp_path / "mine"
    folder.mkdir()
    for name, text in contents.items():
        (folder / name).write_text(text)
    # resume= a folder that holds no run: refused before Hydra writes into it
    proc = train(f"resume={folder}", cwd=tmp_path)
    assert_one_line(proc, EXIT_BAD_INPUT, f"resume='{folder}' is invalid", "checkpoints/last.ckpt")
    assert {p.name: p.read_text() for p in folder.iterdir()} == contents
    # a run into it, rejected once Hydra has written .hydra/ and train.log there: they go, it stays
    proc, _ = tiny_run(tmp_path, Path("/proc/fmnist_data"), run_dir=folder)
    assert_one_line(proc, EXIT_BAD_INPUT, "data.root=/proc/fmnist_data")
    assert folder.is_dir() and {p.name: p.read_text() for p in folder.iterdir()} == contents


# ---- 4. a full disk


def test_a_checkpoint_write_that_fails_leaves_no_partial_file(tmp_path, monkeypatch):
    from fmnist_scaling.run.checkpoint_io import AtomicCheckpointIO

    target = tmp_path / "checkpoints" / "epoch=0.ckpt"
    AtomicCheckpointIO().save_checkpoint({"w": torch.ones(3)}, target)

    def full_disk(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(OSError, match="No space left"):
        AtomicCheckpointIO().save_checkpoint({"w": torch.zeros(3)}, target)
    assert [p.name for p in target.parent.iterdir()] == [target.name]  # the previous one, whole
    assert torch.equal(torch.load(target, weights_only=True)["w"], torch.ones(3))


def test_a_record_write_that_fails_leaves_the_previous_record(tmp_path, monkeypatch):
    records.write(tmp_path, {"status": "running"})
    real_fdopen = os.fdopen

    class FullFile:
        def __init__(self, fd, *args, **kwargs):
            self.f = real_fdopen(fd, *args, **kwargs)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, text):
            self.f.write(text[:10])
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fdopen", FullFile)
    with pytest.raises(OSError):
        records.write(tmp_path, {"status": "completed"})
    assert [p.name for p in tmp_path.iterdir()] == [records.METRICS_FILE]
    assert json.loads((tmp_path / records.METRICS_FILE).read_text())["status"] == "running"


@pytest.fixture
def tiny_disk(tmp_path):
    """A 2 MB file system: smaller than one checkpoint of the reference MLP (3.2 MB)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if (
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True).returncode
        != 0
    ):
        pytest.skip("cannot mount a small file system here (needs root)")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_during_a_run(tmp_path, tiny_root, tiny_disk):
    proc, run_dir = tiny_run(tmp_path, tiny_root, run_dir=tiny_disk / "run")
    line = assert_one_line(proc, EXIT_FAULT, "No space left on device", "free some space")
    assert str(tiny_disk / "run") in line and "::" not in line  # the file is named, no hole
    record = read_metrics(run_dir)
    assert record["status"] == "failed" and "No space left on device" in record["error"]
    assert not leftovers(run_dir)
    for ckpt in (run_dir / "checkpoints").glob("*.ckpt") if (run_dir / "checkpoints").exists() else []:
        torch.load(ckpt, weights_only=True)  # whatever is there is whole


def test_a_full_disk_while_unpacking_the_data(tmp_path, tiny_disk):
    copy = tmp_path / "copy"
    make_tiny(copy, n_train=4000, gz=True)  # 3.1 MB unpacked: more than the disk holds
    proc, run_dir = tiny_run(tmp_path, tiny_disk / "data", f"data.local_copy={copy}")
    assert_one_line(proc, EXIT_FAULT, f"data.root={tiny_disk / 'data'}", "No space left on device")
    assert not run_dir.exists() and not leftovers(tiny_disk)


# ---- 5. Ctrl-C, and an honest resume


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


# ---- 6. sweep summaries that survive NaN, inf, single values and every status


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


# ---- 7. launchers that run jobs side by side share the cores


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


# ---- 8. printing a config, Hydra's usage errors, evaluate from elsewhere


def test_printing_the_config_creates_nothing(tmp_path):
    for flags in (["--cfg", "all", "--resolve"], ["--cfg", "hydra", "--resolve"], ["--info"]):
        proc = run_module("fmnist_scaling.train", *flags, cwd=tmp_path)
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert not list(tmp_path.iterdir())


def test_a_hydra_usage_error_is_one_line(tmp_path):
    proc = run_module("fmnist_scaling.train", "--cfg", "job", "-m", cwd=tmp_path)
    assert_one_line(proc, EXIT_BAD_INPUT, "Only one of")
    assert not list(tmp_path.iterdir())


def test_evaluate_from_another_folder_uses_the_runs_data(tmp_path, tiny_root):
    proc, run_dir = tiny_run(tmp_path, tiny_root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    evaluated = run_module("fmnist_scaling.evaluate", f"ckpt_path={run_dir}", cwd=elsewhere)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert not (elsewhere / "data").exists()  # no second copy of the data
    assert json.loads((run_dir / "checkpoints" / "evaluation.json").read_text())["test/acc"] == pytest.approx(
        read_metrics(run_dir)["final"]["test/acc"], abs=1e-6
    )
    # a data file that cannot be read is said as a read, not as "cannot write evaluation.json"
    cache = sources.cache_path(tiny_root)
    cache.unlink()
    cache.mkdir()  # where the decoded data should be, a folder: reading it fails with EISDIR
    for idx in sources.raw_folder(tiny_root).iterdir():
        idx.unlink()
    unreadable = run_module("fmnist_scaling.evaluate", f"ckpt_path={run_dir}", "data.download=false", cwd=elsewhere)
    assert unreadable.returncode != 0 and "evaluation.json" not in unreadable.stderr, unreadable.stderr[-2000:]
    assert "Traceback" not in unreadable.stderr


# ---- 9. what a run prints


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


# ---- 10. one process at a time in a run folder


def test_a_second_process_in_a_run_folder_trains_nothing_there(tmp_path, tiny_root):
    import fcntl

    proc, run_dir = tiny_run(tmp_path, tiny_root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    before = {p.relative_to(run_dir): p.stat().st_mtime_ns for p in run_dir.rglob("*") if p.name != "train.log"}
    fd = os.open(run_dir, os.O_RDONLY)  # another process's run holds the folder
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        again, _ = tiny_run(tmp_path, tiny_root, f"resume={run_dir}", "trainer.max_epochs=2")
        assert_one_line(again, EXIT_BAD_INPUT, f"{run_dir} is being trained by another process")
        sweep = tmp_path / "sweep"
        held = sweep / "data.val_size=100,data.verify=False,scaling=max,seed=0,trainer.max_epochs=1"  # a job's folder
        held.mkdir(parents=True)
        job = os.open(held, os.O_RDONLY)  # the same sweep, started a moment earlier, trains this job
        fcntl.flock(job, fcntl.LOCK_EX)
        swept = train(
            "-m", *TINY, f"data.root={tiny_root}", f"hydra.sweep.dir={sweep}", "scaling=max", "seed=0,1", cwd=tmp_path
        )
        assert swept.returncode == 0, swept.stderr[-3000:]
        assert f"{held} is being trained by another process" in swept.stderr + swept.stdout
        assert not (held / "metrics.json").exists() and len(list(sweep.glob("*seed=1*/metrics.json"))) == 1
    finally:
        os.close(fd)
    after = {p.relative_to(run_dir): p.stat().st_mtime_ns for p in run_dir.rglob("*") if p.name != "train.log"}
    assert after == before  # not a file of the held run touched


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
