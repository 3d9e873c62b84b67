"""The benchmark's pieces (a run's stages, the compute limit's count, the ratios, a sweep against
its limit), and its quick mode, on a few steps: it runs every contender (the MLP's three, the CNN
and its plain loop) and writes its JSON."""

import json
import time

import pytest
import torch

from fmnist_scaling.tools import bench, reference
from tests.conftest import TINY, read_metrics, run_module, train


def test_the_stages_of_a_run_add_up_to_its_wall_time(tiny_root, tmp_path):
    launched = time.time()
    proc = train(
        "scaling=max",
        "trainer.max_epochs=2",
        f"data.root={tiny_root}",
        "data.verify=false",
        "data.val_size=100",
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
    )
    exited = time.time()
    assert proc.returncode == 0, proc.stderr[-2000:]
    record = read_metrics(tmp_path / "run")
    assert set(record["timeline"]) == {"cli", "main", "imports", "setup", "fit_end", "test_end"}
    assert record["eval_time_s"] > 0 and record["checkpoint_time_s"] > 0
    stages = bench.stages(record, launched, exited)
    assert list(stages) == [name for name, _, _ in bench.STAGES]
    assert sum(stages.values()) == pytest.approx(exited - launched, rel=1e-6)
    assert all(seconds > 0 for seconds in stages.values()), stages
    limit = {"compute_s": 1.5, "train_s": 1.0, "eval_s": 0.5}
    table = bench.stage_table([{"wall_s": exited - launched, "stages": stages}], limit)
    assert "| training steps |" in table and "| 1.00 |" in table and "| 1.50 |" in table


def test_the_compute_limit_counts_the_products_it_times():
    """The FLOP it reports are those torch's own counter sees it do, less its warm-up (one
    training step of 32 rows, one evaluation batch of 20)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        limit = reference.compute_limit(
            2, torch.device("cpu"), train_rows=100, eval_rows=50, test_rows=30, batch=32, eval_batch=20, sizes=(8, 6, 3)
        )
    assert limit["steps_per_epoch"] == 4 and limit["compute_s"] == limit["train_s"] + limit["eval_s"] > 0
    warm_up = 2 * 32 * (2 * 8 * 6 + 3 * 6 * 3) + 2 * 20 * (8 * 6 + 6 * 3)
    assert limit["tflop"] * 1e12 == counter.get_total_flops() - warm_up


def test_pair_ratios_are_taken_within_each_repetition():
    # the machine slows down in the second repetition: the medians' ratio (6 / 10 = 0.6) mixes
    # repetitions, the ratios within them (0.5, 0.5, 0.8) do not
    runs = {
        "project": [{"wall_s": 5.0}, {"wall_s": 10.0}, {"wall_s": 6.0}],
        "floor": [{"wall_s": 10.0}, {"wall_s": 20.0}, {"wall_s": 7.5}],
        "limit": [{"compute_s": 2.0}, {"compute_s": 4.0}, {"compute_s": 3.0}],
    }
    pairs = bench.pair_ratios(runs)
    assert set(pairs) == {"project/floor", "project/compute limit"}  # no article, baseline or CNN ran
    assert pairs["project/floor"]["values"] == [0.5, 0.5, 0.8]
    assert [pairs["project/floor"][key] for key in ("median", "min", "max")] == [0.5, 0.5, 0.8]
    limit = pairs["project/compute limit"]
    assert limit["values"] == [2.5, 2.5, 2.0] and limit["median"] == 2.5


@pytest.mark.real_data
@pytest.mark.slow  # two minutes of whole processes (references, sweep, cost curve): make test-all
def test_quick_benchmark_writes_every_field(tmp_path, real_root):
    out = tmp_path / "bench.json"
    proc = run_module(
        "fmnist_scaling.tools.bench", "--quick", "--max-steps=20", f"--root={real_root}", f"--out={out}", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert set(report["median"]) == {"article", "floor", "project", "cnn_floor", "cnn"}
    for row in report["median"].values():
        assert (
            row["cpu_s"] > 0
            and row["wall_s"] > 0
            and 0 < row["first_step_s"] < row["wall_s"]
            and row["peak_rss_mb"] > 100
        )
        assert 0.0 <= row["train_acc"] <= 1.0
    assert len(report["ratios"]) == 7 and all(ratio > 0 for ratio in report["ratios"].values())
    pairs = report["pair_ratios"]  # one repetition: each pair's median is its one value
    assert set(pairs) == {"project/floor", "project/article", "project/compute limit", "cnn/cnn_floor"}
    assert all(p["min"] == p["median"] == p["max"] > 0 and len(p["values"]) == 1 for p in pairs.values())
    assert "per repetition (median, range over 1)" in proc.stdout
    assert report["compute_limit"]["compute_s"] > 0 and report["lightning_import_s"] > 0
    assert report["lightning_import_gc_off_s"] > 0 and "with the garbage collector off" in proc.stdout
    assert set(report["stages"]) == {name for name, _, _ in bench.STAGES}
    assert "where a project run's time goes" in proc.stdout and "project / compute limit" in proc.stdout
    assert "CNN: project / plain loop of the same CNN" in proc.stdout
    sweep = report["sweep"]  # 2 modes x 2 seeds on each launcher, against the sweep's limit
    assert sweep["shape"]["jobs"] == 4 and sweep["limit"]["limit_s"] > 0 and set(sweep["paths"]) == set(bench.LAUNCHERS)
    assert all(p["sweep/limit"] > 0 and len(p["jobs"]) == 4 for p in sweep["paths"].values())
    assert "sweep of the study's shape: 2 scaling modes" in proc.stdout and "x the limit" in proc.stdout
    assert [(r["hidden"], r["batch_size"]) for r in report["cost_curve"]] == [(1000, 32), (1000, 1024)]
    assert all(r["ms_per_step"] > 0 and r["train_s"] <= r["epoch_s"] for r in report["cost_curve"])
    assert "project / article loop" in proc.stdout and "project / floor" in proc.stdout


def test_a_sweeps_limit_is_its_rounds_of_the_slower_process():
    # 5 jobs 2 at once: 3 rounds, each ending with the slower of the two processes timed side by side
    assert bench.sweep_limit([10.0, 12.0], jobs=5, at_once=2) == 36.0
    assert bench.sweep_limit([10.0, 12.0], jobs=4, at_once=2) == 24.0
    assert bench.sweep_limit([7.0], jobs=3, at_once=1) == 21.0


def test_a_tiny_sweep_against_its_limit_prints_its_ratio(tiny_root, tmp_path, capsys):
    """Two tiny jobs on each launcher, the limit of one step per epoch timed beside them: every
    stage adds up to each sweep's wall time, and the printed ratio is the sweep over the limit."""
    overrides = [o for o in TINY if not o.startswith("trainer.max_epochs")]
    sweep = bench.sweep_against_limit(["max"], ["0", "1"], 1, str(tiny_root), tmp_path, 16, *overrides)
    printed = capsys.readouterr().out
    limit = sweep["limit"]
    assert limit["at_once"] == bench.jobs_at_once("parallel") and len(limit["runs"]) == limit["at_once"]
    assert limit["limit_s"] == -(-2 // limit["at_once"]) * max(r["compute_s"] for r in limit["runs"])
    assert f"= {limit['limit_s']:.1f} s" in printed and "(the whole study: --study-sweep full)" in printed
    assert set(sweep["paths"]) == set(bench.LAUNCHERS)
    for launcher, path in sweep["paths"].items():
        assert path["sweep/limit"] == path["wall_s"] / limit["limit_s"]
        assert f"{path['wall_s']:.1f} s, {path['sweep/limit']:.2f}x the limit" in printed
        assert list(path["stages"]) == list(bench.SWEEP_STAGES)
        assert sum(path["stages"].values()) == pytest.approx(path["wall_s"], rel=1e-6)
        assert [j["first_of_its_process"] for j in path["jobs"]] == [True, path["at_once"] > 1]
        assert f"{launcher}, per job (median): start-up" in printed and "for the first job of each process" in printed
    assert "| sweep / limit |" in printed
