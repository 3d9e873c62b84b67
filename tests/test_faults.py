"""Faults of the data folder and of the disk that users meet on real machines, through the real
entry points: a damaged or outdated cache, processes sharing an empty data folder, a data folder
that cannot be written, a full disk. Each ends in one line on stderr naming the cause and the fix,
a documented exit code (2 bad input, 3 a fault), no traceback, and nothing on disk that a later
run could take for a good result. Runs use the tiny dataset (seconds each)."""

from __future__ import annotations

import errno
import json
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fmnist_scaling.data import sources
from fmnist_scaling.run import records
from fmnist_scaling.utils.errors import EXIT_BAD_INPUT, EXIT_FAULT
from fmnist_scaling.utils.files import atomic_file
from tests.conftest import TINY, assert_one_line, make_tiny, read_metrics, tiny_run


def leftovers(folder: Path) -> list[Path]:
    """Temporary or empty files a crash could leave behind."""
    return [
        p
        for p in folder.rglob("*")
        if p.is_file() and (p.name.endswith(".partial") or p.stat().st_size == 0) and p.name != ".lock"
    ]


# ---- the decoded cache's integrity


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


# ---- an empty data folder at first use, by many processes at once


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


# ---- a data folder that cannot be created or written


@pytest.mark.parametrize("root", ["/proc/fmnist_data", "a_file/data"])
def test_an_unwritable_data_folder_is_one_line_and_leaves_no_run_folder(tmp_path, root):
    (tmp_path / "a_file").write_text("a file, not a folder")
    proc, run_dir = tiny_run(tmp_path, Path(root), "data.local_copy=/usr/share/datasets/fashion-mnist")
    assert_one_line(proc, EXIT_BAD_INPUT, f"data.root={root}", "data.root=<folder>")
    assert not run_dir.exists() and not list(tmp_path.glob("lightning_logs/runs/*"))


# ---- a full disk: atomic writes, and messages that name their file


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
