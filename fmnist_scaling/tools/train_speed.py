"""Do scaled inputs train faster? The article says so; this reads a sweep and says how much.

    python -m fmnist_scaling.tools.train_speed lightning_logs/multirun/<sweep> [--target 0.8]

Per configuration of the sweep (its overrides without the seed): the seconds per epoch of the
training steps alone (``train_time_s`` of each epoch, mean over epochs and runs), and the SGD
steps after which an accuracy first reaches ``--target`` (``train_full/acc``, else ``val/acc``,
read after each epoch: a bound at the resolution of an epoch), per seed. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

from fmnist_scaling.data import splits
from fmnist_scaling.run import records


def configurations(sweep: Path) -> dict[str, list[dict[str, Any]]]:
    """The completed runs of ``sweep``, by their overrides without the seed and the launcher."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(sweep.glob("*/metrics.json")):
        try:
            record = records.read(path.parent)
        except records.RecordProblem:  # not a record of this project: not counted
            continue
        if not record or record.get("status") != "completed":
            continue
        name = " ".join(o for o in record.get("overrides", []) if not o.startswith(("seed=", "+launcher=")))
        groups.setdefault(name or "(defaults)", []).append(record)
    return groups


def steps_to(record: dict[str, Any], target: float) -> tuple[int | None, str]:
    """The SGD step after the first epoch whose accuracy reached ``target`` (None: never), and the split read."""
    history = record.get("history", [])
    split = splits.TRAIN_FULL if any(splits.acc(splits.TRAIN_FULL) in h for h in history) else splits.VAL
    return next((h["step"] for h in history if h.get(splits.acc(split), 0.0) >= target), None), split


def table(sweep: Path, target: float) -> str:
    goal = f"SGD steps to {100 * target:.0f}% accuracy, per seed"
    lines = [f"| configuration | runs | s per epoch (training steps) | {goal} |", "|---|---|---|---|"]
    split = splits.TRAIN_FULL
    for name, runs in configurations(sweep).items():
        seconds = [h["train_time_s"] for r in runs for h in r.get("history", []) if "train_time_s" in h]
        reached = []
        for record in sorted(runs, key=lambda r: r.get("config", {}).get("seed", 0)):
            step, split = steps_to(record, target)
            reached.append(f"{step:,}" if step is not None else "not reached")
        per_epoch = f"{statistics.fmean(seconds):.2f}" if seconds else "-"
        lines.append(f"| {name} | {len(runs)} | {per_epoch} | {', '.join(reached)} |")
    note = (
        f"\nAccuracy: `{split}/acc` after each epoch (so a step count is the end of the first epoch that "
        "reached the target); seconds: the mean of every epoch's training steps over the runs.\n"
    )
    return "\n".join(lines) + "\n" + note


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], prog="python -m fmnist_scaling.tools.train_speed"
    )
    parser.add_argument("sweep", type=Path)
    parser.add_argument("--target", type=float, default=0.8, help="the accuracy to reach, a fraction (default 0.8)")
    args = parser.parse_args(argv)
    if not args.sweep.is_dir() or not configurations(args.sweep):
        parser.error(f"{args.sweep} holds no completed run (a sweep folder with */metrics.json)")
    print(table(args.sweep, args.target))
    return 0


if __name__ == "__main__":
    sys.exit(main())
