"""A run's folder and what is written there: every file under the user's umask (the data folder's
too), nothing left by a rejected run or command, one process at a time in a run folder, and runs
started together in folders of their own. Through the real entry points."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from fmnist_scaling.data import sources
from fmnist_scaling.utils.errors import EXIT_BAD_INPUT
from tests.conftest import TINY, assert_one_line, make_tiny, read_metrics, tiny_run, train

# ---- file modes


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


# ---- a rejected command leaves nothing


def test_a_rejected_run_leaves_nothing_behind(tmp_path):
    """No run folder and no empty lightning_logs/runs: the folders the run made are removed again."""
    proc = train("model.optimizer.lr=-1", "data.root=unused", cwd=tmp_path)
    assert proc.returncode == EXIT_BAD_INPUT and "model.optimizer.lr=-1 is invalid" in proc.stderr
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "lightning_logs" / "runs" / "earlier").mkdir(parents=True)  # a folder with runs stays
    proc = train("seed=1.5", "data.root=unused", cwd=tmp_path)
    assert proc.returncode == EXIT_BAD_INPUT
    assert [p.name for p in (tmp_path / "lightning_logs" / "runs").iterdir()] == ["earlier"]


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


# ---- one process at a time in a run folder


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


@pytest.mark.real_data
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
