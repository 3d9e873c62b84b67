"""A run's record: ``metrics.json`` in its directory, written atomically after every epoch.

Top-level keys: ``format`` (:data:`FORMAT`: whose record, which layout), ``status`` (``running``,
``completed``, ``diverged``, ``stopped`` (by a time or step limit: ``stopped_by``), ``failed``,
``interrupted``; ``steps_done``, ``steps_planned``, ``fraction_done``;
``running`` only while the run is alive, or after a kill -9 or a power cut), ``collapsed``
(finished, but at chance accuracy), ``final`` (the last value of each metric, test included),
``initial`` (the diagnostics at step 0), ``history`` (one dict per epoch), ``diverged_at``,
``error``, ``wall_time_s`` (and ``first_step_at``, ``timeline``, ``eval_time_s``, ``checkpoint_time_s``:
where the time went, :mod:`fmnist_scaling.tools.bench`), ``train_step`` (``fused`` or ``autograd (why)``, see
:mod:`fmnist_scaling.models.fused`), ``device``, ``threads`` and ``threads_reason``, ``overrides``,
``choices`` (the config groups chosen) and ``config`` (the composed config, resolved).

A record is read through :func:`read`, which checks it: anything else in a run's place (not
JSON, not an object, truncated, written by something else or by a newer version) raises
:class:`RecordProblem` naming the file, and is never trusted as a run's result. A record of this
project written before the ``format`` field existed is recognised by its shape and upgraded.
"""

from __future__ import annotations

import json
import math
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from fmnist_scaling.data import splits
from fmnist_scaling.utils.errors import BadInput
from fmnist_scaling.utils.files import atomic_file

METRICS_FILE = "metrics.json"
#: Where a run's checkpoints go, and the one that resume and evaluate read (conf/callbacks/default.yaml).
CHECKPOINTS = "checkpoints"
LAST_CHECKPOINT = f"{CHECKPOINTS}/last.ckpt"
#: Statuses of a run that is over: a re-run of its sweep skips it instead of redoing it.
FINISHED = ("completed", "diverged")
#: A finished run whose accuracy stays below this multiple of chance has collapsed.
COLLAPSE_FACTOR = 2.0
#: The accuracy that stands for a run, in order of preference.
HEADLINE_KEYS = (splits.acc(splits.VAL), splits.acc(splits.TRAIN_FULL), splits.acc(splits.TRAIN))


#: What every record of this project says it is: the project, and the version of its layout.
FORMAT = "fmnist_scaling.record/1"
#: Every status a record may hold.
STATUSES = ("running", "completed", "diverged", "stopped", "failed", "interrupted")


class RecordProblem(BadInput):
    """A file in a run's place that is not a record of this project (the message names it)."""


def read(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The run's record, checked (and upgraded from the layout before ``format``); None where
    there is none; :class:`RecordProblem` where the file is not one."""
    path = Path(run_dir) / METRICS_FILE
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RecordProblem(f"{path} is not a record of fmnist_scaling (not JSON: {err})") from None
    except OSError as err:
        raise RecordProblem(f"{path} cannot be read ({err.strerror})") from None
    problem = _problem(record)
    if problem:
        raise RecordProblem(f"{path} is not a record of fmnist_scaling ({problem})")
    return {**record, "format": FORMAT}


def _problem(record: Any) -> str | None:
    """Why ``record`` is not a record of this project, or None."""
    if not isinstance(record, dict):
        return f"a JSON {type(record).__name__}, not an object"
    fmt = record.get("format")
    if fmt is not None and fmt != FORMAT:
        return f"format {fmt!r}, this version reads {FORMAT!r}"
    if record.get("status") not in STATUSES:
        return f"status {record.get('status')!r} is none of {', '.join(STATUSES)}"
    if not isinstance(record.get("run_dir"), str):
        return "no run_dir"
    if record["status"] == "failed" and "config" not in record:
        return None if isinstance(record.get("error"), str) else "a failure with no error"
    if not isinstance(record.get("config"), dict) or not isinstance(record.get("overrides"), list):
        return "no config or overrides: not written by a run"
    if record["status"] in FINISHED and not isinstance(record.get("final"), dict):
        return "finished, but no final metrics"
    if not isinstance(record.get("history", []), list):
        return "a history that is not a list"
    return None


#: What a run folder holds of its run, beside Hydra's ``.hydra/`` and ``train.log``: the record,
#: the checkpoints, TensorBoard's event files and hparams.yaml (conf/logger/tensorboard.yaml).
RUN_FILES = (METRICS_FILE, CHECKPOINTS, "events.out.tfevents.*", "hparams.yaml")


def set_aside(run_dir: str | os.PathLike) -> Path:
    """Move everything a run folder holds of a run (:data:`RUN_FILES`) into a folder of its own,
    ``set_aside_<time>``, so that the job can run anew: TensorBoard then shows the two runs
    apart (it reads the event files of each folder as one run)."""
    run_dir = Path(run_dir)
    aside = run_dir / f"set_aside_{datetime.now().strftime('%Y-%m-%d_%H-%M-%S_%f')}"
    aside.mkdir()
    for path in sorted({p for pattern in RUN_FILES for p in run_dir.glob(pattern)}):
        path.rename(aside / path.name)
    return aside


def write(run_dir: str | os.PathLike, record: dict[str, Any]) -> Path:
    """Write ``metrics.json`` atomically (a kill mid-write leaves the previous version), marked
    as this project's record of :data:`FORMAT`."""
    return write_json(Path(run_dir) / METRICS_FILE, {"format": FORMAT, **record})


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
