"""The sweep summary: one row per configuration (the swept keys other than ``seed``), mean and
std over seeds, read from each job's ``metrics.json``.

Writes ``summary.csv``, ``summary.md`` and ``curves.png`` into the sweep directory and prints the
table. Runs by itself at the end of every multirun (:class:`SweepSummary`, a Hydra callback), and
rebuilds everything from the job directories on demand:

    python -m fmnist_scaling.tools.report lightning_logs/multirun/<sweep>
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import math
import statistics
import sys
from pathlib import Path
from typing import Any

import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from fmnist_scaling.data.splits import TEST, TRAIN, TRAIN_FULL, VAL, acc, loss
from fmnist_scaling.run import context, records
from fmnist_scaling.tools import scale_law
from fmnist_scaling.tools.figures import plot_curves
from fmnist_scaling.utils.log import log

#: (column, label, how to read it from a record); accuracies are shown in %.
METRICS = {
    "train_acc": ("train acc", lambda r: r["final"].get(acc(TRAIN_FULL), r["final"].get(acc(TRAIN)))),
    "val_acc": ("val acc", lambda r: r["final"].get(acc(VAL))),
    "test_acc": ("test acc", lambda r: r["final"].get(acc(TEST))),
    "train_loss": ("train loss", lambda r: r["final"].get(loss(TRAIN_FULL), r["final"].get(loss(TRAIN)))),
    "val_loss": ("val loss", lambda r: r["final"].get(loss(VAL))),
    "test_loss": ("test loss", lambda r: r["final"].get(loss(TEST))),
    "init_loss": ("loss at step 0", lambda r: r.get("initial", {}).get("diag/loss")),
    "init_preact_std": ("pre-act std at step 0", lambda r: r.get("initial", {}).get("diag/preact_std")),
    "epoch1_loss": ("epoch-1 loss", lambda r: (r.get("history") or [{}])[0].get(loss(TRAIN))),
    "dead_frac": ("dead units", lambda r: r["final"].get("diag/dead_frac")),
    "weight_growth": ("first-layer weight norm, epoch 1 / step 0", lambda r: first_weight_growth(r)),
    "saturated_frac": ("saturated", lambda r: r["final"].get("diag/saturated_frac")),
    "wall_time_s": ("wall s", lambda r: r.get("wall_time_s")),
}
#: The mechanism, on the probe batch: step 0, and after the first epoch (the report's second table).
DIAGNOSTICS = {
    "init_logit_norm": ("logit norm, step 0", lambda r: r.get("initial", {}).get("diag/logit_norm")),
    "init_grad_norm": ("first-layer weight gradient norm, step 0", lambda r: first_layer(r, "grad_norm", None)),
    "init_weight_norm": ("first-layer weight norm, step 0", lambda r: first_layer(r, "weight_norm", None)),
    "epoch1_weight_norm": ("the same after epoch 1", lambda r: first_layer(r, "weight_norm", 0)),
    "epoch1_dead_frac": ("dead units after epoch 1", lambda r: (r.get("history") or [{}])[0].get("diag/dead_frac")),
    "epoch1_logit_norm": ("logit norm after epoch 1", lambda r: (r.get("history") or [{}])[0].get("diag/logit_norm")),
}
PERCENT = {"train_acc", "val_acc", "test_acc", "dead_frac", "saturated_frac", "epoch1_dead_frac"}
#: The counts of each row: runs averaged, then the runs of each other end.
COUNTS = ("runs", "diverged", "collapsed", "stopped", "failed", "unfinished")
#: Statuses of a run stopped before its last epoch (a signal, a time or step limit).
STOPPED = ("interrupted", "stopped")
SEED_KEY = "seed"
LR_KEY = "model.optimizer.lr"


def first_layer(record: dict[str, Any], stat: str, epoch: int | None) -> float | None:
    """A first-layer weight statistic of the probe (``grad_norm``, ``weight_norm``) at step 0
    (``epoch`` None) or after ``epoch``. The first layer is the one the record names
    (``network.first_layer``, the probe's definition); a record older than that field: its first."""
    initial, history = record.get("initial", {}), record.get("history") or []
    first = (record.get("network") or {}).get("first_layer")
    prefix = f"diag/{stat}/"
    key = f"{prefix}{first}.weight" if first else next((k for k in initial if k.startswith(prefix)), None)
    at = initial if epoch is None else (history[epoch] if epoch < len(history) else {})
    return at.get(key) if key else None


def first_weight_growth(record: dict[str, Any]) -> float | None:
    """How far the first layer's weights grew in the first epoch: their norm after it over their
    norm at step 0."""
    before, after = first_layer(record, "weight_norm", None), first_layer(record, "weight_norm", 0)
    return after / before if before and after is not None else None


def load_jobs(sweep_dir: Path) -> list[dict[str, Any]]:
    """Every job under ``sweep_dir`` once: its overrides (from Hydra's ``.hydra/overrides.yaml``)
    and its record (``None`` for a job that never wrote one)."""
    jobs = []
    for overrides_file in sorted(sweep_dir.glob("**/.hydra/overrides.yaml")):
        job_dir = overrides_file.parent.parent
        overrides = dict(_split(o) for o in yaml.safe_load(overrides_file.read_text()) or [])
        try:
            record = records.read(job_dir)
        except records.RecordProblem as problem:  # never trusted, never crashed on: counted as unfinished
            log.warning(f"warning: {problem}; counted as unfinished")
            record = {"status": "unreadable", "error": str(problem)}
        jobs.append({"dir": job_dir, "overrides": overrides, "record": record})
    return jobs


def _split(override: str) -> tuple[str, str]:
    key, _, value = override.partition("=")
    return key.lstrip("+~"), value


def summarize(jobs: list[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    """Group jobs by the overrides that vary between them, other than the seed; returns
    ``(group keys, rows)``. Overrides shared by every job (``data.root=...``) group nothing."""
    all_keys = {k for job in jobs for k in job["overrides"] if k != SEED_KEY}
    keys = sorted(k for k in all_keys if len({job["overrides"].get(k) for job in jobs}) > 1)
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for job in jobs:
        groups.setdefault(tuple(job["overrides"].get(k, "") for k in keys), []).append(job)
    rows = []
    for values, members in groups.items():
        cell = [j["record"] or {"status": "unfinished"} for j in members]
        completed = [r for r in cell if r.get("status") == "completed"]
        row: dict[str, Any] = dict(zip(keys, values))
        row |= {
            "runs": len(completed),  # the n of every mean and spread in the row
            "diverged": sum(r.get("status") == "diverged" for r in cell),
            "collapsed": sum(bool(r.get("collapsed")) for r in completed),
            "stopped": sum(r.get("status") in STOPPED for r in cell),
            "failed": sum(r.get("status") == "failed" for r in cell),
            "unfinished": sum(r.get("status") in ("running", "unfinished", "unreadable") for r in cell),
            "nonfinite": set(),
        }
        for column, (_, read) in (METRICS | DIAGNOSTICS).items():
            values_read = [read(r) for r in completed]
            row[column], row[f"{column}_std"] = mean_std(values_read)
            if math.isnan(row[column]) and any(_number(v) for v in values_read):
                row["nonfinite"].add(column)  # measured, but inf or NaN in every run: shown as such
                row[column] = _only_nonfinite(values_read)
        row["curves"] = [r.get("history", []) for r in completed]
        rows.append(row)
    rank = _headline_column(rows)
    rows.sort(key=lambda r: -r[rank] if math.isfinite(r[rank]) else math.inf)
    return keys, rows


def mean_std(values: list[Any]) -> tuple[float, float]:
    """Mean and sample standard deviation of the finite values; NaN where there are none, and a
    NaN spread (shown as no ±, not as ± 0) where there is one."""
    finite = [float(v) for v in values if _number(v) and math.isfinite(v)]
    if not finite:
        return math.nan, math.nan
    return statistics.fmean(finite), statistics.stdev(finite) if len(finite) > 1 else math.nan


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _only_nonfinite(values: list[Any]) -> float:
    """inf or -inf where every measured value is that, else NaN."""
    measured = {float(v) for v in values if _number(v)}
    return measured.pop() if len(measured) == 1 else math.nan


def _headline_column(rows: list[dict[str, Any]]) -> str:
    """Validation accuracy where the sweep has a validation split, else training accuracy."""
    return "val_acc" if any(not math.isnan(r["val_acc"]) for r in rows) else "train_acc"


def write_report(sweep_dir: str | Path) -> list[dict[str, Any]]:
    sweep_dir = Path(sweep_dir)
    jobs = load_jobs(sweep_dir)
    if not jobs:
        raise FileNotFoundError(f"no job directories (with .hydra/overrides.yaml) under {sweep_dir}")
    keys, rows = summarize(jobs)
    _write_csv(sweep_dir / "summary.csv", keys, rows)
    # the stamp of these results: the summary and every figure drawn from it carry it
    source = "results " + hashlib.sha256((sweep_dir / "summary.csv").read_bytes()).hexdigest()[:12]
    markdown = (
        to_markdown(keys, rows)
        + _diagnostics(keys, rows)
        + _lr_grid(keys, rows)
        + scale_law.section(keys, rows, sweep_dir, _headline_column(rows), source)
    )
    total = sum(r.get("wall_time_s") or 0 for j in jobs if (r := j["record"]))
    markdown += f"\n{len(jobs)} jobs, {total:.0f} s of run time in all.\n\n<!-- {source} -->\n"
    (sweep_dir / "summary.md").write_text(markdown)
    plot_curves(keys, rows, sweep_dir / "curves.png", title=f"sweep {sweep_dir.resolve().name}", source=source)
    written = "summary.csv, summary.md, curves.png" + (", scale_law.png" if scale_law.GAIN_KEY in keys else "")
    log.info(f"\nSweep summary ({sweep_dir}):\n\n{markdown}\nwritten: {written}")
    return rows


def _write_csv(path: Path, keys: list[str], rows: list[dict[str, Any]]) -> None:
    columns = [*keys, *COUNTS]
    columns += [c for m in METRICS | DIAGNOSTICS for c in (m, f"{m}_std")]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def _cell(row: dict[str, Any], column: str) -> str:
    """Mean ± sample std over the row's completed runs; no ± for one value; inf or nan where every
    run measured a non-finite value; large and tiny values in scientific notation."""
    mean, std = row[column], row[f"{column}_std"]
    if column in row["nonfinite"]:
        return str(mean)  # inf, -inf or nan
    if math.isnan(mean):
        return "-"
    scale, digits = (100, 1) if column in PERCENT else (1, 3 if column != "wall_time_s" else 0)
    text = _number_text(scale * mean, digits)
    return text + (f" ± {_number_text(scale * std, digits)}" if not math.isnan(std) else "")


def _number_text(value: float, digits: int) -> str:
    """Fixed digits, or scientific notation for values too large to read that way (a collapsed loss)."""
    return f"{value:.3g}" if abs(value) >= 1e5 else f"{value:.{digits}f}"


def to_markdown(keys: list[str], rows: list[dict[str, Any]]) -> str:
    shown = [m for m in METRICS if any(not math.isnan(r[m]) or m in r["nonfinite"] for r in rows)]
    header = [*keys, "runs", *(METRICS[m][0] + (" %" if m in PERCENT else "") for m in shown), *COUNTS[1:]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [str(row[k]) for k in keys] + [str(row["runs"])] + [_cell(row, m) for m in shown]
        cells += [str(row[c]) for c in COUNTS[1:]]
        lines.append("| " + " | ".join(cells) + " |")
    note = (
        "\nMeans ± sample standard deviation over the row's completed runs (`runs`: their number; one run: no ±); "
        "diverged, stopped, failed and unfinished runs are counted in their own columns, not averaged; "
        "`collapsed`: completed runs at chance accuracy (averaged, and counted).\n"
    )
    return "\n".join(lines) + "\n" + note


def _diagnostics(keys: list[str], rows: list[dict[str, Any]]) -> str:
    """The mechanism: the probe batch's statistics at step 0 and after the first epoch, per row."""
    shown = [m for m in DIAGNOSTICS if any(not math.isnan(r[m]) for r in rows)]
    if not shown:
        return ""
    header = [*keys, "runs", *(DIAGNOSTICS[m][0] + (" %" if m in PERCENT else "") for m in shown)]
    lines = ["\nOn the probe batch (fixed training images), at step 0 and after the first epoch:\n"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [str(row[k]) for k in keys] + [str(row["runs"])] + [_cell(row, m) for m in shown]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _lr_grid(keys: list[str], rows: list[dict[str, Any]]) -> str:
    """With the learning rate swept: accuracy per lr for each other configuration, and the best lr:
    the highest accuracy among the lrs whose every run completed and none collapsed ("-": none)."""
    if LR_KEY not in keys:
        return ""
    others = [k for k in keys if k != LR_KEY]
    lrs = sorted({r[LR_KEY] for r in rows}, key=float)
    metric = _headline_column(rows)
    table: dict[tuple, dict[str, float]] = {}
    healthy: dict[tuple, set[str]] = {}
    for row in rows:
        table.setdefault(tuple(row[k] for k in others), {})[row[LR_KEY]] = row[metric]
        if row["runs"] and not any(row[c] for c in COUNTS[1:]):  # none diverged, collapsed, stopped, ...
            healthy.setdefault(tuple(row[k] for k in others), set()).add(row[LR_KEY])
    lines = [f"\n{METRICS[metric][0]} % by learning rate:\n", "| " + " | ".join([*others, *lrs, "best lr"]) + " |"]
    lines.append("|" + "---|" * (len(others) + len(lrs) + 1))
    for values, by_lr in sorted(table.items()):
        finite = {lr: acc for lr, acc in by_lr.items() if not math.isnan(acc)}
        candidates = {lr: acc for lr, acc in finite.items() if lr in healthy.get(values, set())}
        best = max(candidates, key=candidates.__getitem__) if candidates else "-"
        cells = [f"{100 * by_lr[lr]:.1f}" if lr in finite else "-" for lr in lrs]
        lines.append("| " + " | ".join([*values, *cells, best]) + " |")
    return "\n".join(lines) + "\n"


class SweepSummary(Callback):
    """Hydra callback: writes the summary into the sweep directory when a multirun ends; one
    stopped on its way (Ctrl-C, a signal) writes it too, of the jobs it finished
    (:func:`fmnist_scaling.run.cli.run` calls :func:`write_unfinished_summary`)."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        context.command.sweep_dir = Path(config.hydra.sweep.dir)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        context.command.sweep_dir = None
        write_summary(Path(config.hydra.sweep.dir))


def write_summary(sweep_dir: Path) -> None:
    """The sweep's summary; where it cannot be written, one line says how to rebuild it."""
    try:
        write_report(sweep_dir)
    except Exception as err:  # the jobs' results are safe on disk; say how to rebuild
        log.warning(
            f"warning: no sweep summary ({err}); rebuild it with python -m fmnist_scaling.tools.report {sweep_dir}"
        )


def write_unfinished_summary() -> Path | None:
    """The summary of a sweep stopped on its way, of the jobs that finished (once); its folder."""
    sweep_dir, context.command.sweep_dir = context.command.sweep_dir, None
    if sweep_dir is None or not sweep_dir.is_dir():
        return None
    write_summary(sweep_dir)
    return sweep_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], prog="python -m fmnist_scaling.tools.report")
    parser.add_argument("sweep_dir", type=Path, help="a multirun directory (holding one folder per job)")
    args = parser.parse_args(argv)
    if not args.sweep_dir.is_dir():
        parser.error(f"{args.sweep_dir} is not a directory")
    try:
        write_report(args.sweep_dir)
    except FileNotFoundError as err:
        parser.error(str(err))
    return 0


if __name__ == "__main__":
    sys.exit(main())
