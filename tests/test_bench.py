"""The benchmark's quick mode, on a few steps: it runs every contender (the MLP's three, the CNN
and its plain loop) and writes its JSON."""

import json

import pytest

from tests.conftest import run_module

pytestmark = pytest.mark.real_data


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
    assert len(report["ratios"]) == 6 and all(ratio > 0 for ratio in report["ratios"].values())
    assert "CNN: project / plain loop of the same CNN" in proc.stdout
    sweep = report["sweep"]  # a multirun of 2 jobs against 2 single runs
    assert sweep["jobs"] == 2 and sweep["sweep_wall_s"] > 0 and 0 < sweep["bound_s"] < sweep["single_runs_s"]
    assert "sweep of 2 jobs" in proc.stdout
    assert [(r["hidden"], r["batch_size"]) for r in report["cost_curve"]] == [(1000, 32), (1000, 1024)]
    assert all(r["ms_per_step"] > 0 and r["train_s"] <= r["epoch_s"] for r in report["cost_curve"])
    assert "project / article loop" in proc.stdout and "project / floor" in proc.stdout
