"""Shared fixtures: tiny IDX datasets written by the tests, the real data, and a runner for the
real entry points in a subprocess."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fmnist_scaling.data import sources

REPO = Path(__file__).resolve().parent.parent

if os.environ.get("PYTEST_XDIST_WORKER"):  # tests run side by side (make test: -n auto): one thread each
    torch.set_num_threads(1)
REAL_ROOT = REPO / "data"


def write_idx(folder: Path, prefix: str, images: torch.Tensor, labels: torch.Tensor, gz: bool = False) -> None:
    """Write ``images`` (N, H, W uint8) and ``labels`` (N,) as the two IDX files of one split."""
    import gzip

    folder.mkdir(parents=True, exist_ok=True)
    opener = gzip.open if gz else open
    suffix = ".gz" if gz else ""
    n, h, w = images.shape
    with opener(folder / f"{prefix}-images-idx3-ubyte{suffix}", "wb") as f:
        f.write(struct.pack(">IIII", 0x803, n, h, w) + images.numpy().astype("uint8").tobytes())
    with opener(folder / f"{prefix}-labels-idx1-ubyte{suffix}", "wb") as f:
        f.write(struct.pack(">II", 0x801, n) + labels.numpy().astype("uint8").tobytes())


def make_tiny(folder: Path, n_train: int = 600, n_test: int = 200, gz: bool = False, seed: int = 0) -> None:
    """A learnable toy set in Fashion-MNIST's format: each class lights its own band of rows."""
    g = torch.Generator().manual_seed(seed)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = torch.arange(n) % 10
        images = torch.randint(0, 60, (n, 28, 28), generator=g)
        for c in range(10):
            images[labels == c, 2 * c + 4 : 2 * c + 6, 4:24] = 250
        write_idx(folder, prefix, images.to(torch.uint8), labels, gz=gz)


def write_sketches(folder: Path) -> None:
    """The README's outside dataset (``Sketches``) as it reads it: ``sketches.npz`` of three
    classes, each a band of bright rows, 3,000 training and 600 test images."""
    import numpy as np

    g = torch.Generator().manual_seed(0)
    arrays = {}
    for split, n in (("train", 3000), ("test", 600)):
        labels = torch.arange(n) % 3
        images = torch.randint(0, 80, (n, 28, 28), generator=g)
        for c in range(3):
            images[labels == c, 8 * c + 2 : 8 * c + 6, :] = 255
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images.to(torch.uint8).numpy(), labels.numpy()
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "sketches.npz", **arrays)


@pytest.fixture
def tiny_root(tmp_path: Path) -> Path:
    """A data folder in torchvision's layout holding a tiny dataset."""
    root = tmp_path / "tiny"
    make_tiny(sources.raw_folder(root))
    return root


@pytest.fixture(scope="session")
def real_root() -> Path:
    """The real Fashion-MNIST, prepared once in the repository's data folder."""
    try:
        sources.prepare(str(REAL_ROOT), download=False)
    except sources.DataError as err:
        if os.environ.get("CI"):
            raise  # CI installs dataset-fashion-mnist: missing data there is a failure
        pytest.skip(f"real data unavailable: {err}")
    return REAL_ROOT


def run_module(
    module: str, *args: str, cwd: Path, timeout: float = 600, env: dict | None = None
) -> subprocess.CompletedProcess:
    """``python -m <module> <args>`` as a user would type it, one torch thread (tests may run
    beside other processes; oversubscribed threads are 10-20x slower)."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore", **(env or {})}
    full_env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout
    )


def train(*args: str, cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    flags = [a for a in args if a.startswith("-")]  # Hydra's flags (-m) come before overrides
    overrides = [a for a in args if not a.startswith("-")]
    return run_module(
        "fmnist_scaling.train", *flags, "trainer.enable_progress_bar=false", *overrides, cwd=cwd, **kwargs
    )


def read_metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def write_record(job: Path, overrides: list[str], record: dict) -> None:
    """A record of this project for a made-up job of a sweep: ``record`` plus the fields every
    run's record has (format, run_dir, overrides, config)."""
    from fmnist_scaling.run import records

    records.write(job, {"run_dir": str(job), "overrides": overrides, "config": {}, **record})


def write_job(sweep: Path, name: str, overrides: list[str], record: dict | None) -> None:
    """A made-up job of a sweep: its folder, its ``.hydra/overrides.yaml`` and, unless None, its record."""
    folder = sweep / name
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    if record is not None:
        write_record(folder, overrides, record)


#: The tiny dataset (500 training images after a 100-image validation split: 16 SGD steps an epoch).
TINY = ["data.verify=false", "data.local_copy=null", "data.val_size=100", "trainer.max_epochs=1"]


def tiny_run(
    tmp_path: Path, root: Path, *extra: str, run_dir: Path | None = None, **kwargs
) -> tuple[subprocess.CompletedProcess, Path]:
    """One run on the tiny dataset at ``root``, into ``run_dir`` (default ``tmp_path/run``)."""
    run_dir = run_dir or tmp_path / "run"
    proc = train(*TINY, f"data.root={root}", f"hydra.run.dir={run_dir}", *extra, cwd=tmp_path, **kwargs)
    return proc, run_dir


def assert_one_line(proc: subprocess.CompletedProcess, code: int, *needles: str) -> str:
    """``proc`` exited with ``code`` and said one ``error:`` line holding each of ``needles``, no traceback."""
    assert proc.returncode == code, (proc.returncode, proc.stderr[-3000:])
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]
