"""The GPU check: one prepared script for a machine with a CUDA GPU (``make gpu-check``).

    python -m fmnist_scaling.tools.gpu_check              # on a GPU machine: about 7 minutes
    python -m fmnist_scaling.tools.gpu_check --smoke      # its steps on the CPU, tiny: checks the script

In order, each step timed and recorded whatever the others do:

1. ``runs``: one 5-epoch run per scaling mode (seed 0, one sweep process) with
   ``trainer.accelerator=auto``; each must land on the GPU (``metrics.json``'s ``device``) and end
   within the seed spread of the CPU study (``docs/study.md``: mean ± max(3 std, 1 point); a mode
   with no row there yet, added since ``make docs`` last ran, is listed and compared with nothing);
2. ``evaluate``: one of those checkpoints evaluated on the GPU and on the CPU: the same accuracy;
3. ``bench``: the article's loop, the floor and the project side by side on the GPU (5 epochs,
   interleaved), with peak GPU memory; targets: project >= 20x faster than the article's loop,
   <= 1.5x the floor, first step <= 5 s after launch;
4. ``tests``: the default test suite with the GPU visible (last: it takes what time is left).

Writes one JSON file (``--out``, default ``lightning_logs/gpu_check/<time>.json``) and prints a
short table. Without a CUDA GPU it refuses in one line (exit 2), unless ``--smoke``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from fmnist_scaling.data import splits
from fmnist_scaling.run.resolvers import group_choices
from fmnist_scaling.utils.files import user_path

REPO = Path(__file__).resolve().parents[2]
MODES = tuple(group_choices("scaling"))
#: Targets of the GPU figures (the GPU issue): project vs the article's loop and the floor, start-up.
TARGETS = {"project/article": 1 / 20, "project/floor": 1.5, "first_step_s": 5.0}


def cpu_study(path: Path = REPO / "docs" / "study.md") -> dict[str, tuple[float, float]]:
    """Test accuracy (mean, std, in %) per scaling mode from the CPU study's first table (the
    page's other tables have other columns); none where the page has no table."""
    text = path.read_text().splitlines() if path.is_file() else []
    start = next((i for i, line in enumerate(text) if line.startswith("|")), len(text))
    lines = list(itertools.takewhile(lambda line: line.startswith("|"), text[start:]))
    if len(lines) < 2:
        return {}
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    column = header.index("test acc %")
    table = {}
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        mean, _, std = cells[column].partition("±")
        table[cells[0]] = (float(mean), float(std or 0))
    return table


def mode_row(mode: str, job: Path | None, study: dict[str, tuple[float, float]], expected: str) -> dict[str, Any]:
    """One mode's row: where its run ran and its test accuracy, against the CPU study's for the
    mode. A mode added since ``make docs`` last ran has no row there: it is compared with nothing
    (``within_spread`` None), not an error."""
    record = json.loads((job / "metrics.json").read_text()) if job and (job / "metrics.json").is_file() else {}
    acc = 100 * record.get("final", {}).get(splits.acc(splits.TEST), float("nan"))
    cpu = study.get(mode)
    return {
        "status": record.get("status"),
        "device": record.get("device"),
        "test_acc": acc,
        "cpu_test_acc": cpu[0] if cpu else None,
        "cpu_std": cpu[1] if cpu else None,
        "within_spread": abs(acc - cpu[0]) <= max(3 * cpu[1], 1.0) if cpu else None,
        "on_expected_device": str(record.get("device", "")).startswith(expected),
        "wall_time_s": record.get("wall_time_s"),
        "run_dir": str(job) if job else None,
    }


def run(cmd: list[str], cwd: Path, timeout: float) -> tuple[int, str, str, float]:
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
        return proc.returncode, proc.stdout, proc.stderr, time.perf_counter() - start
    except subprocess.TimeoutExpired as err:
        return 124, str(err.stdout or ""), f"timed out after {timeout:.0f} s", time.perf_counter() - start


def check_runs(root: str, work: Path, smoke: bool, accelerator: str) -> dict[str, Any]:
    sweep = work / "runs"
    short = (
        ["trainer.max_epochs=1", "trainer.limit_train_batches=2", "data.val_size=0", "data.eval_train=false"]
        if smoke
        else []
    )
    modes = ("none", "max") if smoke else MODES  # the article's two
    expected = "cpu" if accelerator == "cpu" else "cuda"  # a smoke run: the CPU stands in for the GPU
    code, _, err, wall = run(
        [
            sys.executable,
            "-m",
            "fmnist_scaling.train",
            "-m",
            f"scaling={','.join(modes)}",
            "seed=0",
            f"trainer.accelerator={accelerator}",
            "trainer.enable_progress_bar=false",
            f"data.root={root}",
            f"hydra.sweep.dir={sweep}",
            *short,
        ],
        REPO,
        300,
    )
    study = cpu_study()
    rows = {mode: mode_row(mode, next(sweep.glob(f"*scaling={mode},*"), None), study, expected) for mode in modes}
    # a smoke run stops after a few steps: its accuracies are not the study's
    ok = (
        code == 0
        and all(r["on_expected_device"] for r in rows.values())
        and (smoke or all(r["within_spread"] is not False for r in rows.values()))
    )
    return {"ok": ok, "exit_code": code, "wall_s": wall, "modes": rows, "stderr_tail": err[-1500:] if code else ""}


def check_evaluate(runs: dict[str, Any], root: str) -> dict[str, Any]:
    run_dir = runs["modes"]["max"]["run_dir"]
    if not run_dir:
        return {"ok": False, "error": "no run to evaluate"}
    out: dict[str, Any] = {}
    for accelerator in ("auto", "cpu"):
        code, stdout, err, wall = run(
            [
                sys.executable,
                "-m",
                "fmnist_scaling.evaluate",
                f"ckpt_path={run_dir}",
                f"accelerator={accelerator}",
                f"data.root={root}",
            ],
            REPO,
            120,
        )
        found = re.search(r"test accuracy ([\d.]+)%", stdout)
        out[accelerator] = {
            "exit_code": code,
            "test_acc": float(found.group(1)) if found else None,
            "wall_s": wall,
            "stderr_tail": err[-800:] if code else "",
        }
    accs = [out[a]["test_acc"] for a in ("auto", "cpu")]
    out["ok"] = None not in accs and abs(accs[0] - accs[1]) <= 0.02  # percent: 2 test images of 10,000
    return out


def check_bench(root: str, work: Path, smoke: bool) -> dict[str, Any]:
    out = work / "bench.json"
    args = ["--quick", "--max-steps=5", "--no-curve", "--no-sweep"] if smoke else ["--reps=2", "--no-curve"]
    code, stdout, err, wall = run(
        [sys.executable, "-m", "fmnist_scaling.tools.bench", *args, f"--root={root}", f"--out={out}"], REPO, 420
    )
    if code != 0 or not out.is_file():
        return {"ok": False, "exit_code": code, "wall_s": wall, "stderr_tail": err[-1500:]}
    report = json.loads(out.read_text())
    ratios, median = report["ratios"], report["median"]
    met = {
        "project >= 20x faster than the article's loop": ratios["project/article"] <= TARGETS["project/article"],
        "project <= 1.5x the floor": ratios["project/floor"] <= TARGETS["project/floor"],
        "first step <= 5 s": median["project"]["first_step_s"] <= TARGETS["first_step_s"],
    }
    return {
        "ok": True,
        "targets_met": met,
        "exit_code": code,
        "wall_s": wall,
        "median": median,
        "ratios": ratios,
        "sweep": report["sweep"],
        "table": stdout[stdout.find("| median") :].strip(),
    }


def check_tests(timeout: float) -> dict[str, Any]:
    code, stdout, err, wall = run(
        [sys.executable, "-m", "pytest", "-m", "not slow", "-q", "-p", "no:cacheprovider"], REPO, timeout
    )
    last = (stdout.strip().splitlines() or [""])[-1]
    return {
        "ok": code == 0,
        "exit_code": code,
        "wall_s": wall,
        "summary": last,
        "failures": [line for line in stdout.splitlines() if line.startswith("FAILED")][:20],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], prog="python -m fmnist_scaling.tools.gpu_check"
    )
    parser.add_argument(
        "--smoke", action="store_true", help="run the steps on the CPU, tiny and without the test suite"
    )
    parser.add_argument(
        "--root", type=user_path, default=str(REPO / "data"), help="the data folder (default: the repository's data/)"
    )
    parser.add_argument(
        "--budget", type=float, default=480, help="seconds for the whole check (the tests take what is left)"
    )
    parser.add_argument("--out", type=user_path, help="JSON file (default: lightning_logs/gpu_check/<time>.json)")
    args = parser.parse_args(argv)
    import torch

    if not args.smoke and not torch.cuda.is_available():
        print(
            "error: no CUDA GPU visible (torch.cuda.is_available() is False): this check needs one; "
            "--smoke runs its steps on the CPU",
            file=sys.stderr,
        )
        return 2
    started = time.perf_counter()
    from fmnist_scaling.data import sources

    root = str(Path(args.root).resolve())
    sources.prepare(root)
    out = args.out or REPO / "lightning_logs" / "gpu_check" / f"gpu_check_{datetime.now():%Y-%m-%d_%H-%M-%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "machine": {
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "cpus": os.cpu_count(),
            "smoke": args.smoke,
        }
    }
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        report["runs"] = check_runs(root, work, args.smoke, "cpu" if args.smoke else "auto")
        report["evaluate"] = check_evaluate(report["runs"], root)
        report["bench"] = check_bench(root, work, args.smoke)
        left = args.budget - (time.perf_counter() - started)
        report["tests"] = {"ok": None, "skipped": "--smoke"} if args.smoke else check_tests(max(left, 60))
    report["wall_s"] = time.perf_counter() - started
    out.write_text(json.dumps(report, indent=1))
    print_table(report)
    print(f"written: {out}")
    return 0 if all(report[step]["ok"] is not False for step in ("runs", "evaluate", "bench", "tests")) else 1


def print_table(report: dict[str, Any]) -> None:
    print(f"\nGPU check on {report['machine']['gpu'] or 'the CPU (smoke)'}, {report.get('wall_s', 0):.0f} s\n")
    print("| scaling | device | test acc % | CPU study % | within spread | wall s |\n|---|---|---|---|---|---|")
    for mode, row in report["runs"]["modes"].items():
        cpu = "none yet" if row["cpu_test_acc"] is None else f"{row['cpu_test_acc']:.1f} ± {row['cpu_std']:.1f}"
        within = {True: "yes", False: "NO", None: "not compared (no row in docs/study.md)"}[row["within_spread"]]
        wall = row["wall_time_s"] or 0
        print(f"| {mode} | {row['device']} | {row['test_acc']:.1f} | {cpu} | {within} | {wall:.1f} |")
    ev = report["evaluate"]
    print(
        f"\nevaluate: GPU {ev.get('auto', {}).get('test_acc')}%, CPU {ev.get('cpu', {}).get('test_acc')}% "
        f"-> {'ok' if ev['ok'] else 'DIFFER'}"
    )
    bench = report["bench"]
    if bench.get("table"):
        print(f"\n{bench['table']}")
        for target, met in bench["targets_met"].items():
            print(f"  {'met' if met else 'NOT met'}: {target}")
    tests = report["tests"]
    print(f"\ntests: {tests.get('summary') or tests.get('skipped')}")
    for step in ("runs", "evaluate", "bench", "tests"):
        if report[step]["ok"] is False:
            print(f"FAILED step: {step}")


if __name__ == "__main__":
    sys.exit(main())
