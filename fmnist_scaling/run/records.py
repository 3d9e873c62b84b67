"""A run's record: ``metrics.json`` in its directory, written atomically after every epoch.

Top-level keys: ``status`` (``running``, ``completed``, ``diverged``, ``failed``, ``interrupted``;
``running`` only while the run is alive, or after a kill -9 or a power cut), ``collapsed``
(finished, but at chance accuracy), ``final`` (the last value of each metric, test included),
``initial`` (the diagnostics at step 0), ``history`` (one dict per epoch), ``diverged_at``,
``error``, ``wall_time_s``, ``train_step`` (``fused`` or ``autograd (why)``, see
:mod:`fmnist_scaling.models.fused`), ``device``, ``threads`` and ``threads_reason``, ``overrides``,
``choices`` (the config groups chosen) and ``config`` (the composed config, resolved).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from fmnist_scaling.utils.files import atomic_file

METRICS_FILE = "metrics.json"
#: Statuses of a run that is over: a re-run of its sweep skips it instead of redoing it.
FINISHED = ("completed", "diverged")
#: A finished run whose accuracy stays below this multiple of chance has collapsed.
COLLAPSE_FACTOR = 2.0
#: The accuracy that stands for a run, in order of preference.
HEADLINE_KEYS = ("val/acc", "train_full/acc", "train/acc")


def read(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    path = Path(run_dir) / METRICS_FILE
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def write(run_dir: str | os.PathLike, record: dict[str, Any]) -> Path:
    """Write ``metrics.json`` atomically: a kill mid-write leaves the previous version."""
    return write_json(Path(run_dir) / METRICS_FILE, record)


def write_json(path: Path, record: dict[str, Any]) -> Path:
    """Write ``record`` as JSON to ``path`` atomically, under a temporary name beside it."""
    text = json.dumps(record, indent=1, default=_plain, allow_nan=True)
    with atomic_file(path, "w") as f:  # a full disk: no empty or half file beside the previous record
        f.write(text)
    return path


def headline_accuracy(final: dict[str, float]) -> float:
    """The accuracy that stands for a run: validation, else the training split (after the
    epoch, else running); NaN when there is none."""
    return float(next((final[k] for k in HEADLINE_KEYS if k in final), math.nan))


def objective(record: dict[str, Any]) -> float:
    """What the task returns to a sweeper."""
    return headline_accuracy(record.get("final", {}))


def is_collapsed(final: dict[str, float], num_classes: int) -> bool:
    if not any(k in final for k in HEADLINE_KEYS):
        return False  # nothing measured, nothing to judge
    acc = headline_accuracy(final)
    return math.isnan(acc) or acc < COLLAPSE_FACTOR / num_classes


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
