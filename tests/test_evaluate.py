"""``evaluate`` on a run's checkpoint from another folder: it reads the run's own data, says a
data file it cannot read as a read, and names a plug-in that does not import there, with the fix."""

from __future__ import annotations

import json
import textwrap

import pytest

from fmnist_scaling.data import sources
from fmnist_scaling.utils.errors import EXIT_BAD_INPUT
from tests.conftest import TINY, read_metrics, run_module, tiny_run, train


def test_evaluate_from_another_folder_uses_the_runs_data(tmp_path, tiny_root):
    proc, run_dir = tiny_run(tmp_path, tiny_root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    evaluated = run_module("fmnist_scaling.evaluate", f"ckpt_path={run_dir}", cwd=elsewhere)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert not (elsewhere / "data").exists()  # no second copy of the data
    assert json.loads((run_dir / "checkpoints" / "evaluation.json").read_text())["test/acc"] == pytest.approx(
        read_metrics(run_dir)["final"]["test/acc"], abs=1e-6
    )
    # a data file that cannot be read is said as a read, not as "cannot write evaluation.json"
    cache = sources.cache_path(tiny_root)
    cache.unlink()
    cache.mkdir()  # where the decoded data should be, a folder: reading it fails with EISDIR
    for idx in sources.raw_folder(tiny_root).iterdir():
        idx.unlink()
    unreadable = run_module("fmnist_scaling.evaluate", f"ckpt_path={run_dir}", "data.download=false", cwd=elsewhere)
    assert unreadable.returncode != 0 and "evaluation.json" not in unreadable.stderr, unreadable.stderr[-2000:]
    assert "Traceback" not in unreadable.stderr


OWN_SCALING = """
    from fmnist_scaling.data.scaling import Scaling


    class Halve(Scaling):
        def transform(self, x):
            return x / 510.0
"""


def test_evaluate_names_a_plugin_that_does_not_import_and_the_fix(tmp_path, tiny_root):
    (tmp_path / "my_scaling.py").write_text(textwrap.dedent(OWN_SCALING))
    (tmp_path / "conf" / "scaling").mkdir(parents=True)
    (tmp_path / "conf" / "scaling" / "halve.yaml").write_text("_target_: my_scaling.Halve\n")
    run_dir = tmp_path / "run"
    proc = train(f"hydra.searchpath=[file://{tmp_path / 'conf'}]", "scaling=halve", f"data.root={tiny_root}", *TINY,
                 f"hydra.run.dir={run_dir}", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = run_module("fmnist_scaling.evaluate", f"ckpt_path={run_dir}", cwd=elsewhere)
    assert proc.returncode == EXIT_BAD_INPUT, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "its scaling mode my_scaling.Halve cannot be built here" in lines[0] and "PYTHONPATH" in lines[0]
    proc = run_module("fmnist_scaling.evaluate", f"ckpt_path={run_dir}", cwd=elsewhere,
                      env={"PYTHONPATH": str(tmp_path)})  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]  # the fix it names works
