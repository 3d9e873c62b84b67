"""The prepared GPU check: it refuses clearly without a GPU, and its steps run end to end (on the
CPU, tiny, with --smoke) so that the one call on a lent GPU machine is not spent on a typo."""

import json

import pytest
import torch

from fmnist_scaling.run.resolvers import group_choices
from fmnist_scaling.tools import gpu_check
from tests.conftest import run_module

pytestmark = pytest.mark.real_data


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible: the check would run")
def test_refuses_in_one_line_without_a_gpu(tmp_path):
    proc = run_module("fmnist_scaling.tools.gpu_check", f"--out={tmp_path / 'gpu.json'}", cwd=tmp_path)
    assert proc.returncode == 2 and "no CUDA GPU visible" in proc.stderr and "--smoke" in proc.stderr
    assert proc.stderr.count("\n") == 1 and not (tmp_path / "gpu.json").exists()


@pytest.mark.slow  # every step of make gpu-check, tiny, on the CPU: 100 s; make test-all
def test_smoke_runs_every_step_and_writes_its_json(tmp_path, real_root):
    out = tmp_path / "gpu.json"
    proc = run_module("fmnist_scaling.tools.gpu_check", "--smoke", f"--root={real_root}", f"--out={out}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    report = json.loads(out.read_text())
    modes = report["runs"]["modes"]
    assert set(modes) == {"none", "max"}  # the smoke run's two; a GPU run has all six
    assert all(row["status"] == "completed" and row["device"] == "cpu" for row in modes.values())
    assert modes["max"]["cpu_test_acc"] == pytest.approx(83.8, abs=0.05)  # read from docs/study.md
    assert report["evaluate"]["ok"] and report["evaluate"]["cpu"]["test_acc"] == report["evaluate"]["auto"]["test_acc"]
    assert report["bench"]["ok"] and set(report["bench"]["ratios"]) >= {"project/article", "project/floor"}
    assert "| scaling | device |" in proc.stdout and "evaluate: GPU" in proc.stdout


def test_a_mode_with_no_row_in_the_cpu_study_is_listed_and_compared_with_nothing(tmp_path, capsys):
    """A mode added since ``make docs`` last ran (none here: a made-up name) has no row in
    docs/study.md: the check lists it, compares it with nothing, and does not fail for it."""
    study = gpu_check.cpu_study()
    assert tuple(group_choices("scaling")) == gpu_check.MODES and set(study) <= set(gpu_check.MODES)
    job = tmp_path / "scaling=new,seed=0"
    job.mkdir()
    record = {"status": "completed", "device": "cuda:0", "final": {"test/acc": 0.5}, "wall_time_s": 2.0}
    (job / "metrics.json").write_text(json.dumps(record))
    rows = {mode: gpu_check.mode_row(mode, job, study, "cuda") for mode in ("max", "new")}
    assert rows["new"]["within_spread"] is None and rows["new"]["cpu_test_acc"] is None
    assert rows["max"]["within_spread"] is False and rows["max"]["cpu_test_acc"] == study["max"][0]
    steps = {"evaluate": {"ok": True}, "bench": {"ok": True}, "tests": {"ok": None, "skipped": "--smoke"}}
    gpu_check.print_table({"machine": {"gpu": "GPU"}, "runs": {"ok": True, "modes": rows}, **steps})
    assert (
        "| new | cuda:0 | 50.0 | none yet | not compared (no row in docs/study.md) | 2.0 |" in capsys.readouterr().out
    )
