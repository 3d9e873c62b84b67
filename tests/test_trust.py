"""Trust, second pass: files others can read, messages without holes, nothing empty left behind,
plug-ins that do not import. Each through the real entry points."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fmnist_scaling.data import sources
from fmnist_scaling.utils.errors import EXIT_BAD_INPUT
from fmnist_scaling.utils.files import atomic_file
from tests.conftest import make_tiny, run_module, train

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
        ("logger=null", "logger=null is invalid: to run without a logger, remove the group with ~logger"),  # traceback
        ("arch=cnn", "arch=cnn is invalid: arch is not in the default config; add it with +arch=cnn"),
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
