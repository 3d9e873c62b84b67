"""Benchmark: the project's ``train`` against the article's loop and the floor
(:mod:`fmnist_scaling.tools.reference`), whole processes, interleaved A B C A B C ...

    python -m fmnist_scaling.tools.bench            # 5 epochs, 5 repetitions, and the cost curve
    python -m fmnist_scaling.tools.bench --quick    # 1 epoch, 1 repetition, a short cost curve

Prints median wall time, the ratios project / article, project / floor and project / the compute
limit (the run's unavoidable matrix products alone, timed here: ``reference limit``; and for the CNN,
``model/net=cnn`` / a plain loop of the same CNN, ``cnn_floor``), each of them also within each
repetition (median and range: what a drifting machine moves least), time from launch to
the first training step, peak RSS (and GPU memory on a GPU); where a project run's time goes,
stage by stage (imports, config, data, training steps, evaluation passes, ...); then a sweep of
the study's shape, 2 scaling modes x 2 seeds (``--study-sweep full``: the study's 6 x 3), on each
launcher (``+launcher=parallel``, what ``make study`` runs; Hydra's basic launcher) against the
sweep's compute limit, where its time goes and each job's start-up and evaluation passes; then the
project's time per epoch by batch size and hidden width. Writes everything as JSON
(``docs/bench/bench_<time>.json``, or ``--out``). Run it on a quiet machine: other busy processes
distort timings far more than run-to-run noise.

The sweep's compute limit: one run's matrix products (``reference limit``, as for a single run),
timed in as many processes side by side as ``+launcher=parallel`` runs jobs at once (k: its
n_jobs, at most the cores), each with the cores / k torch threads a job gets there (2 processes of
1 thread on 2 cores); a round of k jobs ends with the slower process (t), so a sweep of N jobs
needs at least ceil(N / k) x t (:func:`sweep_limit`). Each launcher's sweep is divided by that one
limit.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from fmnist_scaling.run.resolvers import CONF_DIR
from fmnist_scaling.run.threads import usable_cores
from fmnist_scaling.utils.files import user_path

CONTENDERS = ("article", "floor", "project")
#: Where a project run's time goes: each stage, from the record's timeline (Unix times marked as
#: the run goes, :meth:`fmnist_scaling.run.recorder.RunRecorder.mark`), the launch and the exit.
STAGES = (
    ("start-up: interpreter, Hydra and the command's imports", "launched", "cli"),
    ("config check, composition, run folder", "cli", "main"),
    ("torch and Lightning imports, seeding", "main", "imports"),
    ("model, data (read, checked), trainer", "imports", "setup"),
    ("fit's set-up to the first step (data split, probes at init)", "setup", "first_step"),
    ("training steps", None, None),
    ("evaluation passes after each epoch (val, train_full)", None, None),
    ("checkpoints", None, None),
    ("after each epoch: probes, histograms, records", None, None),
    ("test", "fit_end", "test_end"),
    ("final record, summary, hparams, shutdown", "test_end", "exit"),
)
#: SGD steps per Lightning batch of the project: data.steps_per_batch as the config sets it.
STEPS_PER_BATCH = int(OmegaConf.load(CONF_DIR / "data" / "fashion_mnist.yaml").steps_per_batch)
#: With ``--cnn`` (the default): the project's CNN (``model/net=cnn``) and a plain loop of the same CNN.
CNN_CONTENDERS = ("cnn_floor", "cnn")


def project_limit(max_steps: int) -> str:
    """``max_steps`` SGD steps per epoch for the project, whose Lightning batches are groups of
    ``data.steps_per_batch`` (16) steps: rounded up to whole groups."""
    return f"trainer.limit_train_batches={-(-max_steps // STEPS_PER_BATCH)}"


def project_steps(max_steps: int) -> int:
    """The SGD steps per epoch of a project run limited to ``max_steps`` (:func:`project_limit`)."""
    return STEPS_PER_BATCH * -(-max_steps // STEPS_PER_BATCH)


def run_process(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``cmd`` to the end: wall time, CPU time (user + system: less swayed than wall time
    by other busy processes), launch time, peak RSS of that process, stdout."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        launched, start = time.time(), time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=err, text=True, env=env)
        _, status, usage = os.wait4(proc.pid, 0)  # the child's own rusage, not all children's
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{err.read()[-2000:]}")
        return {
            "launched": launched,
            "wall_s": wall,
            "cpu_s": usage.ru_utime + usage.ru_stime,
            "peak_rss_mb": usage.ru_maxrss / 1024,
            "stdout": out.read(),
        }


def run_contender(
    name: str, epochs: int, root: str, work: Path, rep: int, max_steps: int | None, baseline: Path | None = None
) -> dict[str, Any]:
    if name in ("project", "cnn", "baseline"):
        run_dir = work / f"{name}_{rep}"
        cmd = [
            sys.executable,
            "-m",
            "fmnist_scaling.train",
            "scaling=max",
            f"trainer.max_epochs={epochs}",
            "trainer.enable_progress_bar=false",
            f"data.root={root}",
            f"hydra.run.dir={run_dir}",
        ]
        if name == "cnn":
            cmd.append("model/net=cnn")
        if max_steps:
            cmd.append(project_limit(max_steps))
        env = {**os.environ, "PYTHONPATH": str(baseline)} if name == "baseline" else None  # another checkout
        result = run_process(cmd, work, env)
        record = json.loads((run_dir / "metrics.json").read_text())
        extra = {
            "first_step_at": record["first_step_at"],
            "train_acc": record["final"].get("train_full/acc"),
            "gpu_peak_bytes": record.get("gpu_peak_bytes"),
        }
        if "timeline" in record:  # a baseline older than the timeline has none
            extra["stages"] = stages(record, result["launched"], result["launched"] + result["wall_s"])
    elif name == "import":  # Lightning alone, launch to imported: what the project's first step is judged against
        seconds = {}  # and with the garbage collector off, as the project imports it (fmnist_scaling.utils.imports)
        for key, before in (("import_s", ""), ("import_gc_off_s", "import gc; gc.disable(); ")):
            code = f"{before}import time, os, lightning.pytorch; print(time.time(), flush=True); os._exit(0)"
            result = run_process([sys.executable, "-c", code], work)
            seconds[key] = float(result["stdout"].split()[-1]) - result["launched"]
        return seconds
    elif name == "limit":
        cmd = [sys.executable, "-m", "fmnist_scaling.tools.reference", "limit", f"--epochs={epochs}"]
        result = run_process(cmd + ([f"--max-steps={project_steps(max_steps)}"] if max_steps else []), work)
        reported = json.loads(result["stdout"].strip().splitlines()[-1])
        return {key: reported[key] for key in ("compute_s", "train_s", "eval_s", "tflop")}
    else:
        loop, net = name.split("_")[-1], ("cnn" if name.startswith("cnn") else "mlp")
        cmd = [
            sys.executable,
            "-m",
            "fmnist_scaling.tools.reference",
            loop,
            f"--net={net}",
            f"--epochs={epochs}",
            f"--root={root}",
        ]
        if max_steps:
            cmd.append(f"--max-steps={max_steps}")
        result = run_process(cmd, work)
        reported = json.loads(result["stdout"].strip().splitlines()[-1])
        extra = {
            "first_step_at": reported["first_step_at"],
            "train_acc": reported["train_acc"][-1],
            "gpu_peak_bytes": reported.get("gpu_peak_bytes"),
        }
    return {
        "wall_s": result["wall_s"],
        "cpu_s": result["cpu_s"],
        "first_step_s": extra["first_step_at"] - result["launched"],
        "peak_rss_mb": result["peak_rss_mb"],
        "train_acc": extra["train_acc"],
        "gpu_peak_mb": extra["gpu_peak_bytes"] / 2**20 if extra["gpu_peak_bytes"] else None,
        **({"stages": extra["stages"]} if "stages" in extra else {}),
    }


def stages(record: dict[str, Any], launched: float, exited: float) -> dict[str, float]:
    """Seconds per stage of :data:`STAGES` for one project run, from its record; they add up to its wall time."""
    marks = {**record.get("timeline", {}), "launched": launched, "first_step": record["first_step_at"], "exit": exited}
    history = record.get("history", [])
    fit = marks["fit_end"] - marks["first_step"]
    train = sum(h.get("train_time_s", 0.0) for h in history)
    evaluation = record.get("eval_time_s") or 0.0
    checkpoints = record.get("checkpoint_time_s") or 0.0
    inside = {
        "training steps": train,
        "evaluation passes after each epoch (val, train_full)": evaluation,
        "checkpoints": checkpoints,
        "after each epoch: probes, histograms, records": fit - train - evaluation - checkpoints,
    }
    return {name: inside[name] if start is None else marks[end] - marks[start] for name, start, end in STAGES}


def stage_table(runs: list[dict[str, Any]], limit: dict[str, float] | None = None) -> str:
    """The median seconds of each stage over ``runs`` (project runs), as a markdown table; with
    ``limit`` (the compute limit's medians: ``train_s``, ``eval_s``, ``compute_s``), the seconds
    that the matrix products alone take in the training steps, the evaluation passes (test
    included) and the whole run."""
    wall = statistics.median(r["wall_s"] for r in runs)
    products = {
        "training steps": "train_s",
        "evaluation passes after each epoch (val, train_full)": "eval_s",
    }
    lines = [
        f"| stage (median of {len(runs)}) | s | share | of which matrix products (the limit) |",
        "|---|---|---|---|",
    ]
    for name, _, _ in STAGES:
        seconds = statistics.median(r["stages"][name] for r in runs)
        floor = f"{limit[products[name]]:.2f}" if limit and name in products else ""
        lines.append(f"| {name} | {seconds:.2f} | {100 * seconds / wall:.0f}% | {floor} |")
    total = f"{limit['compute_s']:.2f}" if limit else ""
    lines.append(f"| whole process | {wall:.2f} | 100% | {total} |")
    return "\n".join(lines)


def cost_curve(
    batch_sizes: list[int], widths: list[int], root: str, work: Path, max_steps: int | None, passes: int
) -> list[dict[str, Any]]:
    """The project's time per epoch by batch size and hidden width: the training steps alone, and
    with the after-epoch passes (validation and the whole training split). Each point is the
    fastest of ``passes`` runs, the passes one after another over the whole grid: other busy
    processes only ever add time."""
    grid = [(width, batch_size) for width in widths for batch_size in batch_sizes]
    epochs: dict[tuple[int, int], list[dict[str, Any]]] = {point: [] for point in grid}
    for n in range(passes):
        for width, batch_size in grid:
            run_dir = work / f"curve_{width}_{batch_size}_{n}"
            cmd = [
                sys.executable,
                "-m",
                "fmnist_scaling.train",
                "scaling=max",
                "trainer.max_epochs=1",
                "trainer.enable_progress_bar=false",
                f"data.batch_size={batch_size}",
                f"model.net.hidden=[{width}]",
                f"data.root={root}",
                f"hydra.run.dir={run_dir}",
            ]
            if max_steps:
                cmd.append(project_limit(max_steps))
            run_process(cmd, work)
            epochs[width, batch_size].append(json.loads((run_dir / "metrics.json").read_text())["history"][0])
    rows = []
    for (width, batch_size), runs in epochs.items():
        epoch = min(runs, key=lambda e: e["train_time_s"])
        rows.append(
            {
                "hidden": width,
                "batch_size": batch_size,
                "train_s": epoch["train_time_s"],
                "epoch_s": min(e["epoch_time_s"] for e in runs),
                "steps": epoch["step"],
                "ms_per_step": 1000 * epoch["train_time_s"] / epoch["step"],
                "val_acc": epoch.get("val/acc"),
                "train_s_all": [e["train_time_s"] for e in runs],
            }
        )
        print(
            f"  hidden {width:>5}  batch {batch_size:>5}: training {epoch['train_time_s']:6.2f} s "
            f"({rows[-1]['ms_per_step']:.2f} ms/step), with evaluation {rows[-1]['epoch_s']:6.2f} s, "
            f"val acc {100 * (epoch.get('val/acc') or 0):.1f}%",
            flush=True,
        )
    return rows


#: How a sweep's jobs run: the default (``make study``'s) and the alternative, as command-line arguments.
LAUNCHERS = {
    "parallel": ["+launcher=parallel"],  # joblib: n_jobs side by side, cores / n_jobs torch threads each
    "basic": ["hydra/launcher=basic"],  # Hydra's basic launcher: one job after another, torch's own threads
}
#: Jobs side by side under ``+launcher=parallel``: its n_jobs, at most the cores (as fmnist_scaling.run.threads).
PARALLEL_JOBS = int(OmegaConf.load(CONF_DIR / "launcher" / "parallel.yaml").hydra.launcher.n_jobs)
#: Where a sweep's wall time goes: each job's stages (summed over the jobs, divided by the jobs
#: run at once), then what lies outside the jobs; they add up to the sweep's wall time.
SWEEP_STAGES = (
    "start-up: job start to first step",
    "training steps",
    "evaluation passes after each epoch (val, train_full)",
    "checkpoints",
    "after each epoch: probes, histograms, records",
    "test",
    "before the first job: launch to its start (Hydra, the workers)",
    "between jobs: each one's last record and summary, a lane waiting for the other",
    "after the last job's test: its record, the sweep's summary, exit",
)
#: The stages of :data:`SWEEP_STAGES` inside each job.
JOB_STAGES = SWEEP_STAGES[:6]


def study_shape(size: str) -> tuple[list[str], list[str]]:
    """The scaling modes and seeds of the benchmark's sweep: ``full``, the study as ``make study``
    runs it (every mode in conf/scaling/ x the seeds a plain ``-m`` sweeps); ``small``, 2 x 2."""
    if size == "full":
        from fmnist_scaling.run.resolvers import group_choices

        seeds = str(OmegaConf.load(CONF_DIR / "train.yaml").hydra.sweeper.params.seed).split(",")
        return group_choices("scaling"), seeds
    return ["none", "max"], ["0", "1"]


def jobs_at_once(launcher: str) -> int:
    """Jobs a sweep on ``launcher`` runs side by side: the parallel launcher's n_jobs, at most the cores."""
    return min(PARALLEL_JOBS, usable_cores()) if launcher == "parallel" else 1


def sweep_limit(run_s: list[float], jobs: int, at_once: int) -> float:
    """The compute limit of a sweep of ``jobs`` jobs run ``at_once`` side by side: ``run_s`` are
    the seconds of one run's matrix products in each of ``at_once`` processes timed side by side;
    a round of ``at_once`` jobs ends with the slower, and the sweep needs ceil(jobs / at_once)
    rounds: ceil(jobs / at_once) x max(run_s)."""
    return -(-jobs // at_once) * max(run_s)


def measure_sweep_limit(
    epochs: int, work: Path, max_steps: int | None, at_once: int, threads: int
) -> list[dict[str, float]]:
    """One run's matrix products (``reference limit``) in ``at_once`` processes side by side, each
    with ``threads`` torch threads (what a parallel sweep's job gets): each one's seconds."""
    from concurrent.futures import ThreadPoolExecutor

    cmd = [
        sys.executable,
        "-m",
        "fmnist_scaling.tools.reference",
        "limit",
        f"--epochs={epochs}",
        f"--threads={threads}",
    ]
    cmd += [f"--max-steps={project_steps(max_steps)}"] if max_steps else []
    with ThreadPoolExecutor(at_once) as pool:
        results = list(pool.map(lambda _: run_process(cmd, work), range(at_once)))
    runs = [json.loads(r["stdout"].strip().splitlines()[-1]) for r in results]
    return [{key: run[key] for key in ("compute_s", "train_s", "eval_s", "tflop")} for run in runs]


def sweep_stages(records: list[dict[str, Any]], launched: float, exited: float, at_once: int) -> dict[str, float]:
    """Seconds of the sweep's wall time per stage of :data:`SWEEP_STAGES`, from its jobs' records:
    a job's stage, summed over the jobs, / ``at_once``; a job runs from Hydra's call of ``main``
    to the end of its test (its record's ``timeline``: ``main``, ``test_end``); the rest is outside."""
    jobs = [job_stages(r) for r in records]
    total = {name: sum(j[name] for j in jobs) / at_once for name in JOB_STAGES}
    before = min(r["timeline"]["main"] for r in records) - launched
    after = exited - max(r["timeline"]["test_end"] for r in records)
    total[SWEEP_STAGES[6]] = before
    total[SWEEP_STAGES[7]] = exited - launched - before - after - sum(total[name] for name in JOB_STAGES)
    total[SWEEP_STAGES[8]] = after
    return total


def job_stages(record: dict[str, Any]) -> dict[str, float]:
    """Seconds per stage of :data:`JOB_STAGES` of one sweep job's record."""
    marks, first = record["timeline"], record["first_step_at"]
    train = sum(h.get("train_time_s", 0.0) for h in record["history"])
    evaluation, checkpoints = record["eval_time_s"] or 0.0, record["checkpoint_time_s"] or 0.0
    return dict(
        zip(
            JOB_STAGES,
            (
                first - marks["main"],
                train,
                evaluation,
                checkpoints,
                marks["fit_end"] - first - train - evaluation - checkpoints,
                marks["test_end"] - marks["fit_end"],
            ),
            strict=True,
        )
    )


def run_sweep(
    launcher: str,
    modes: list[str],
    seeds: list[str],
    epochs: int,
    root: str,
    work: Path,
    max_steps: int | None,
    *extra: str,
) -> dict[str, Any]:
    """One sweep of ``modes`` x ``seeds`` with ``launcher`` (:data:`LAUNCHERS`), a whole process:
    its wall time, where it goes (:func:`sweep_stages`) and each job's stages. ``extra``: more
    overrides (the tests' tiny data)."""
    sweep_dir = work / f"sweep_{launcher}"
    args = [
        "-m",
        *LAUNCHERS[launcher],
        f"scaling={','.join(modes)}",
        f"seed={','.join(seeds)}",
        f"trainer.max_epochs={epochs}",
        "trainer.enable_progress_bar=false",
        f"data.root={root}",
        *extra,
        *([project_limit(max_steps)] if max_steps else []),
    ]
    result = run_process([sys.executable, "-m", "fmnist_scaling.train", *args, f"hydra.sweep.dir={sweep_dir}"], work)
    records = sorted(
        (json.loads(p.read_text()) for p in sweep_dir.glob("*/metrics.json")), key=lambda r: r["timeline"]["main"]
    )
    if len(records) != len(modes) * len(seeds):
        raise RuntimeError(f"{launcher} sweep: {len(records)} job records, {len(modes) * len(seeds)} jobs")
    at_once = jobs_at_once(launcher)
    jobs = []
    for n, record in enumerate(records):  # by start: the first at_once jobs are each the first of a process
        history = [h["train_time_s"] for h in record["history"]]
        jobs.append(
            {
                "job": Path(record["run_dir"]).name,
                "first_of_its_process": n < at_once,
                "stages": job_stages(record),
                # the first epoch's training time over the later epochs' median: first calls (the first self.log, ...)
                "first_epoch_extra_s": history[0] - statistics.median(history[1:]) if len(history) > 1 else None,
            }
        )
    return {
        "command": "python -m fmnist_scaling.train " + " ".join(args[: 1 + len(LAUNCHERS[launcher])]),
        "at_once": at_once,
        "wall_s": result["wall_s"],
        "stages": sweep_stages(records, result["launched"], result["launched"] + result["wall_s"], at_once),
        "jobs": jobs,
    }


def sweep_against_limit(
    modes: list[str], seeds: list[str], epochs: int, root: str, work: Path, max_steps: int | None, *extra: str
) -> dict[str, Any]:
    """A sweep of ``modes`` x ``seeds`` on each launcher of :data:`LAUNCHERS`, against its compute
    limit measured just before (:func:`measure_sweep_limit`, :func:`sweep_limit`): prints each
    one's wall time, its ratio to the limit, where its time goes and each job's start-up and
    evaluation passes."""
    jobs, at_once = len(modes) * len(seeds), jobs_at_once("parallel")
    whole = (modes, seeds) == study_shape("full")
    print(
        f"\nsweep of the study's shape: {len(modes)} scaling modes ({', '.join(modes)}) x {len(seeds)} seeds "
        f"({', '.join(seeds)}) = {jobs} jobs of {epochs} epoch(s)"
        + (f", {project_steps(max_steps)} steps each" if max_steps else "")
        + (" (the whole study)" if whole else " (the whole study: --study-sweep full)"),
        flush=True,
    )
    threads = max(1, usable_cores() // at_once)  # as fmnist_scaling.run.threads gives each job of the parallel launcher
    limit_runs = measure_sweep_limit(epochs, work, max_steps, at_once, threads)
    run_s = [r["compute_s"] for r in limit_runs]
    limit = {"at_once": at_once, "threads": threads, "runs": limit_runs, "run_s": max(run_s)}
    limit |= {"rounds": -(-jobs // at_once), "limit_s": sweep_limit(run_s, jobs, at_once)}
    print(
        f"  the limit: one run's matrix products (tools/reference.py limit) took "
        f"{', '.join(f'{s:.1f}' for s in run_s)} s in {at_once} processes side by side "
        f"(as many as +launcher=parallel runs at once), {threads} torch thread(s) each; {jobs} jobs, "
        f"{at_once} at once: ceil({jobs} / {at_once}) x {limit['run_s']:.1f} s (the slower) = {limit['limit_s']:.1f} s",
        flush=True,
    )
    paths = {}
    for launcher in LAUNCHERS:
        path = run_sweep(launcher, modes, seeds, epochs, root, work, max_steps, *extra)
        path["sweep/limit"] = path["wall_s"] / limit["limit_s"]
        paths[launcher] = path
        print(
            f"  {launcher:<8} ({path['command']}, {path['at_once']} job(s) at once): {path['wall_s']:.1f} s, "
            f"{path['sweep/limit']:.2f}x the limit",
            flush=True,
        )
    print(f"\n{sweep_table(paths, limit)}")
    for launcher, path in paths.items():
        print(f"{launcher}, per job (median): " + per_job(path["jobs"]))
    shape = {"modes": modes, "seeds": seeds, "jobs": jobs, "epochs": epochs, "max_steps": max_steps, "whole": whole}
    return {"shape": shape, "limit": limit, "paths": paths}


def per_job(jobs: list[dict[str, Any]]) -> str:
    """One line of a sweep's per-job costs (medians): the start-up and the first epoch's extra
    training time of the first job of each process and of the later ones; the evaluation passes."""
    groups = {
        "the first job of each process": [j for j in jobs if j["first_of_its_process"]],
        "the later ones": [j for j in jobs if not j["first_of_its_process"]],
    }

    def medians(values: dict[str, list[Any]]) -> str:  # a group with no value (1 epoch: no later epochs) left out
        return ", ".join(
            f"{statistics.median(v):.2f} s for {name}" for name, v in values.items() if v and None not in v
        )

    startup = medians({name: [j["stages"][SWEEP_STAGES[0]] for j in group] for name, group in groups.items()})
    extra = medians({name: [j["first_epoch_extra_s"] for j in group] for name, group in groups.items()})
    evaluation = statistics.median(j["stages"][SWEEP_STAGES[2]] for j in jobs)
    return f"start-up {startup}; evaluation passes {evaluation:.2f} s" + (
        f"; the first epoch's training over the later epochs' median (first calls: the first self.log, ...) {extra}"
        if extra
        else ""
    )


def sweep_table(paths: dict[str, dict[str, Any]], limit: dict[str, Any]) -> str:
    """Where each sweep's wall time goes (:data:`SWEEP_STAGES`), beside the limit's products."""
    slower = max(limit["runs"], key=lambda r: r["compute_s"])
    products = {SWEEP_STAGES[1]: slower["train_s"], SWEEP_STAGES[2]: slower["eval_s"]}
    lines = [
        "| where the sweep's time goes, s (a job stage: its sum over the jobs / jobs at once) | "
        + " | ".join(paths)
        + " | the limit's matrix products |",
        "|---|" + "---|" * (len(paths) + 1),
    ]
    for name in SWEEP_STAGES:
        floor = f"{limit['rounds'] * products[name]:.1f}" if name in products else ""
        if name == SWEEP_STAGES[2]:
            floor += " (test included)"
        lines.append(f"| {name} | " + " | ".join(f"{p['stages'][name]:.1f}" for p in paths.values()) + f" | {floor} |")
    lines.append(
        "| whole sweep | " + " | ".join(f"{p['wall_s']:.1f}" for p in paths.values()) + f" | {limit['limit_s']:.1f} |"
    )
    lines.append("| sweep / limit | " + " | ".join(f"{p['sweep/limit']:.2f}x" for p in paths.values()) + " | 1.00x |")
    return "\n".join(lines)


def summarize(runs: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, float]]:
    table = {}
    for name, results in runs.items():
        table[name] = {
            key: statistics.median(r[key] for r in results)
            for key in ("wall_s", "cpu_s", "first_step_s", "peak_rss_mb", "train_acc")
        }
        gpu = [r["gpu_peak_mb"] for r in results if r["gpu_peak_mb"] is not None]
        table[name]["gpu_peak_mb"] = statistics.median(gpu) if gpu else None
    return table


#: Ratios taken within each repetition: numerator, denominator (``limit``: the compute limit).
PAIRS = {
    "project/floor": ("project", "floor"),
    "project/article": ("project", "article"),
    "project/baseline": ("project", "baseline"),
    "project/compute limit": ("project", "limit"),
    "cnn/cnn_floor": ("cnn", "cnn_floor"),
}


def pair_ratios(runs: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Each ratio of :data:`PAIRS` within each repetition (the two ran minutes apart at most),
    with their median and range: on a machine whose speed drifts, steadier than the ratio of the
    two medians, which may come from different repetitions."""
    pairs = {}
    for key, (top, bottom) in PAIRS.items():
        if top not in runs or bottom not in runs:
            continue
        seconds = "compute_s" if bottom == "limit" else "wall_s"
        values = [a["wall_s"] / b[seconds] for a, b in zip(runs[top], runs[bottom], strict=True)]
        pairs[key] = {"median": statistics.median(values), "min": min(values), "max": max(values), "values": values}
    return pairs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], prog="python -m fmnist_scaling.tools.bench")
    parser.add_argument("--quick", action="store_true", help="1 epoch, 1 repetition, a short cost curve")
    parser.add_argument("--epochs", type=int, help="epochs per run (default 5; quick: 1)")
    parser.add_argument("--reps", type=int, help="interleaved repetitions (default 5; quick: 1)")
    parser.add_argument("--max-steps", type=int, help="training steps per epoch (default: all)")
    parser.add_argument("--root", type=user_path, default="data", help="the data folder (default: data)")
    parser.add_argument("--no-curve", action="store_true", help="skip the cost curve")
    parser.add_argument("--no-sweep", action="store_true", help="skip the sweeps against their compute limit")
    parser.add_argument(
        "--study-sweep",
        choices=("small", "full"),
        default="small",
        help="the sweep's shape: small, 2 scaling modes x 2 seeds (default); full, the study (6 x 3, as make study)",
    )
    parser.add_argument("--no-cnn", action="store_true", help="skip the CNN against a plain loop of it")
    parser.add_argument("--out", type=user_path, help="JSON file (default: docs/bench/bench_<time>.json)")
    parser.add_argument(
        "--baseline",
        type=user_path,
        help="another checkout of the project (git worktree add <dir> <commit>): its train runs as the "
        "contender 'baseline', interleaved with this one: before and after a change, side by side",
    )
    args = parser.parse_args(argv)
    epochs = args.epochs or (1 if args.quick else 5)
    reps = args.reps or (1 if args.quick else 5)
    root = str(Path(args.root).resolve())
    out = args.out or Path("docs/bench") / f"bench_{datetime.now():%Y-%m-%d_%H-%M-%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)

    from fmnist_scaling.data import sources

    sources.prepare(root)  # decode the data once, outside every timing
    contenders = (
        CONTENDERS
        + (("baseline",) if args.baseline else ())
        + ("limit", "import")
        + (() if args.no_cnn else CNN_CONTENDERS)
    )
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in contenders}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        print(f"{epochs} epoch(s), {reps} interleaved repetition(s) of {', '.join(contenders)}", flush=True)
        for rep in range(reps):
            for name in contenders:
                runs[name].append(run_contender(name, epochs, root, work, rep, args.max_steps, args.baseline))
                r = runs[name][-1]
                if name == "limit":
                    print(f"  {rep + 1}/{reps} {name:<8} {r['compute_s']:6.1f} s of matrix products", flush=True)
                    continue
                if name == "import":
                    print(
                        f"  {rep + 1}/{reps} {name:<8} {r['import_s']:6.1f} s to import lightning.pytorch "
                        f"({r['import_gc_off_s']:.1f} s with the garbage collector off)",
                        flush=True,
                    )
                    continue
                print(
                    f"  {rep + 1}/{reps} {name:<8} {r['wall_s']:6.1f} s wall, {r['cpu_s']:6.1f} s CPU, "
                    f"first step after {r['first_step_s']:.1f} s, "
                    f"peak RSS {r['peak_rss_mb']:.0f} MB",
                    flush=True,
                )
        pairs = pair_ratios(runs)
        limit, lightning_import = runs.pop("limit"), runs.pop("import")
        table = summarize(runs)
        sweep = None
        if not args.no_sweep:
            sweep = sweep_against_limit(*study_shape(args.study_sweep), epochs, root, work, args.max_steps)
        curve = []
        if not args.no_curve:
            passes = 1 if args.quick else 2
            print(f"cost curve (project, 1 epoch, the fastest of {passes}):", flush=True)
            batch_sizes, widths = ([32, 1024], [1000]) if args.quick else ([32, 64, 128, 256, 512, 1024], [1000, 4000])
            curve = cost_curve(batch_sizes, widths, root, work, args.max_steps, passes)
    limits = {key: statistics.median(r[key] for r in limit) for key in ("compute_s", "train_s", "eval_s")}
    compute_s = limits["compute_s"]
    import_s = statistics.median(r["import_s"] for r in lightning_import)
    import_gc_off_s = statistics.median(r["import_gc_off_s"] for r in lightning_import)
    ratios = {
        "project/compute limit": table["project"]["wall_s"] / compute_s,
        "project/article": table["project"]["wall_s"] / table["article"]["wall_s"],
        "project/floor": table["project"]["wall_s"] / table["floor"]["wall_s"],
        "project/article (CPU time)": table["project"]["cpu_s"] / table["article"]["cpu_s"],
        "project/floor (CPU time)": table["project"]["cpu_s"] / table["floor"]["cpu_s"],
    }
    if "baseline" in table:
        ratios["project/baseline"] = table["project"]["wall_s"] / table["baseline"]["wall_s"]
    if "cnn" in table:
        ratios["cnn/cnn_floor"] = table["cnn"]["wall_s"] / table["cnn_floor"]["wall_s"]
        ratios["cnn/cnn_floor (CPU time)"] = table["cnn"]["cpu_s"] / table["cnn_floor"]["cpu_s"]
    print(
        f"\n| median of {reps} | wall s | CPU s | first step s | peak RSS MB | train acc |"
        + (" GPU MB |" if table["project"]["gpu_peak_mb"] else "")
    )
    print("|---|---|---|---|---|---|" + ("---|" if table["project"]["gpu_peak_mb"] else ""))
    for name, row in table.items():
        gpu = f" {row['gpu_peak_mb']:.0f} |" if row["gpu_peak_mb"] else ""
        print(
            f"| {name} | {row['wall_s']:.1f} | {row['cpu_s']:.1f} | {row['first_step_s']:.1f} "
            f"| {row['peak_rss_mb']:.0f} | {100 * row['train_acc']:.1f}% |{gpu}"
        )
    print(
        f"\nproject / article loop: {ratios['project/article']:.2f}x    "
        f"project / floor: {ratios['project/floor']:.2f}x    "
        f"(CPU time: {ratios['project/article (CPU time)']:.2f}x and {ratios['project/floor (CPU time)']:.2f}x)"
    )
    if "baseline" in table:
        print(
            f"project / baseline ({args.baseline}): {ratios['project/baseline']:.2f}x; first step "
            f"{table['project']['first_step_s']:.2f} s against {table['baseline']['first_step_s']:.2f} s"
        )
    print(
        f"project / compute limit: {ratios['project/compute limit']:.2f}x  (the limit: {compute_s:.1f} s for "
        f"{limit[0]['tflop']:.2f} TFLOP of matrix products, {limit[0]['tflop'] * 1e3 / compute_s:.0f} GFLOP/s)"
    )
    first = table["project"]["first_step_s"]
    print(
        f"first step after {first:.2f} s; importing lightning.pytorch alone takes {import_s:.2f} s: the project "
        f"adds {first - import_s:.2f} s ({first - import_gc_off_s:.2f} s over the {import_gc_off_s:.2f} s it takes "
        "with the garbage collector off, as the project imports it: fmnist_scaling.utils.imports)"
    )
    print(
        f"per repetition (median, range over {reps}): "
        + "    ".join(f"{key} {p['median']:.2f}x ({p['min']:.2f}-{p['max']:.2f})" for key, p in pairs.items())
    )
    print(f"\nwhere a project run's time goes:\n{stage_table(runs['project'], limits)}")
    if "cnn" in table:
        print(
            f"CNN: project / plain loop of the same CNN: {ratios['cnn/cnn_floor']:.2f}x "
            f"(CPU time: {ratios['cnn/cnn_floor (CPU time)']:.2f}x)"
        )
    import platform

    import torch

    report = {
        "epochs": epochs,
        "reps": reps,
        "max_steps": args.max_steps,
        "median": table,
        "compute_limit": {**limits, "tflop": limit[0]["tflop"], "runs": limit},
        "lightning_import_s": import_s,
        "lightning_import_gc_off_s": import_gc_off_s,
        "stages": {name: statistics.median(r["stages"][name] for r in runs["project"]) for name, _, _ in STAGES},
        "ratios": ratios,
        "pair_ratios": pairs,
        "runs": runs,
        "sweep": sweep,
        "cost_curve": curve,
        "machine": {
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "platform": platform.platform(),
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        },
    }
    out.write_text(json.dumps(report, indent=1))
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
