"""docs/extending.md's promise, kept: a scaling mode, a network and a dataset added inside the
package the documented way (one class and one yaml each, no other edit) pass the checks the
suite applies to the built-in ones.

The additions go into a copy of the repository (its package, conf/ and tests, in tmp_path) that
runs with ``PYTHONPATH=<copy>``, so that tests running side by side never see a half-written
file: the docs' own examples as written (``Log1p`` into ``fmnist_scaling/data/scaling.py``,
``Tiny`` into ``fmnist_scaling/models/networks.py``, the README's ``Sketches`` as a module of
``fmnist_scaling/data/``), their yaml files as written (the target renamed where the docs' module
is one of your own). Then, through the real entry points: the suite's own tests that list the
choices (help, errors, schema, the threshold's cases, the modes' yaml files) pass on the copy, ``--help`` lists
the three, a bad argument of the new network is refused in one line, one run with all three
trains and records them, and the GPU check lists the new mode without a row of the CPU study."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fmnist_scaling.run.resolvers import group_choices
from fmnist_scaling.tools import gpu_check
from tests.conftest import REPO, read_metrics, run_module, train, write_sketches

#: Top-level entries of the repository left out of the copy (not what a test needs, or large).
NOT_COPIED = {".git", ".venv", ".ci", "lightning_logs", "data", "hydra_plugins"}


def example(doc: str, heading: str) -> tuple[str, str]:
    """The first python block and the first yaml block after ``heading`` in ``doc``."""
    section = doc[doc.index(heading) :]
    return section.split("```python\n", 1)[1].split("```", 1)[0], section.split("```yaml\n", 1)[1].split("```", 1)[0]


def yaml_path(yaml: str) -> str:
    """Where a docs' yaml says it goes: its first line, ``# conf/scaling/log1p.yaml ...``."""
    return yaml.splitlines()[0].split()[1].rstrip(":")


def ignore(folder: str, names: list[str]) -> list[str]:
    top = NOT_COPIED if Path(folder) == REPO else set()
    return [n for n in names if n in top or n == "__pycache__" or n.endswith((".egg-info", "_cache", ".png"))]


@pytest.fixture(scope="module")
def extended(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The copy with a mode, a network and a dataset added as the docs say; the data root of the
    dataset (tiny images the test makes); a folder to run from; the environment that runs the copy."""
    tmp = tmp_path_factory.mktemp("extending")
    copy = tmp / "repo"
    shutil.copytree(REPO, copy, ignore=ignore)
    docs, readme = (REPO / "docs" / "extending.md").read_text(), (REPO / "README.md").read_text()

    code, yaml = example(docs, "### Adding a mode")  # in the package, where the docs put it
    assert code.startswith("# fmnist_scaling/data/scaling.py") and "class Log1p(Scaling)" in code
    with open(copy / "fmnist_scaling" / "data" / "scaling.py", "a") as module:
        module.write("\n\n" + code)
    (copy / yaml_path(yaml)).write_text(yaml)

    code, yaml = example(docs, "### Adding a network")  # the docs' my_nets.py, here in the package
    assert "class Tiny(nn.Module)" in code and "_target_: my_nets.Tiny" in yaml
    with open(copy / "fmnist_scaling" / "models" / "networks.py", "a") as module:
        module.write("\n\n" + code)
    (copy / yaml_path(yaml)).write_text(yaml.replace("my_nets.Tiny", "fmnist_scaling.models.networks.Tiny"))

    code, yaml = example(readme, "### Adding a dataset")  # the README's my_data.py, as a module of the package
    assert "class Sketches(ImageDataset)" in code and "_target_: my_data.Sketches" in yaml
    (copy / "fmnist_scaling" / "data" / "sketches.py").write_text(code)
    (copy / yaml_path(yaml)).write_text(yaml.replace("my_data.Sketches", "fmnist_scaling.data.sketches.Sketches"))

    root = tmp / "data"
    write_sketches(root)
    work = tmp / "work"
    work.mkdir()
    return {"copy": copy, "root": root, "work": work}


def env(extended: dict[str, Path]) -> dict[str, str]:
    """The copy's package first on the path (before the installed one)."""
    return {"PYTHONPATH": str(extended["copy"])}


def folder(extended: dict[str, Path], name: str) -> Path:
    """A new, empty folder for one test to run from."""
    path = extended["work"] / name
    path.mkdir()
    return path


def python(code: str, *args: str, cwd: Path, extended: dict[str, Path]) -> subprocess.CompletedProcess:
    """``python -c <code> <args>`` on the copy."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **env(extended)}
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, env=full_env, capture_output=True, text=True)


def test_the_copy_runs_its_own_package_and_conf(extended):
    code = "from fmnist_scaling.run import resolvers; print(resolvers.CONF_DIR)"
    proc = python(code, cwd=folder(extended, "probe"), extended=extended)
    assert proc.returncode == 0 and Path(proc.stdout.strip()) == extended["copy"] / "conf", proc.stderr


#: The suite's tests whose lists of choices come from conf/: run on the copy, they see the additions.
SUITES_CHECKS = [
    "tests/test_help.py",
    "tests/test_errors.py::test_bad_value_is_one_clear_error[scaling=foo]",
    "tests/test_errors.py::test_bad_value_is_one_clear_error[model/net=resnet]",
    "tests/test_scale_law.py::test_an_unknown_case_is_refused_with_the_choices",
    *(
        f"tests/test_schema.py::test_every_leaf_of_every_shipped_config_has_a_rule_and_passes_it[{choice}]"
        for choice in ("scaling=log1p", "model/net=tiny", "data=sketches")
    ),
    "tests/test_scaling.py::test_every_scaling_yaml_instantiates_a_scaling[log1p]",
]


def test_the_suites_checks_of_the_choices_pass_with_the_additions(extended):
    proc = run_module("pytest", "-q", "-p", "no:cacheprovider", *SUITES_CHECKS, cwd=extended["copy"], env=env(extended))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert re.fullmatch(r"\d+ passed in .*", proc.stdout.strip().splitlines()[-1]), proc.stdout[-2000:]  # none skipped


def test_help_lists_the_additions(extended):
    proc = train("--help", cwd=folder(extended, "help"), env=env(extended))
    assert proc.returncode == 0, proc.stderr
    for group, added in (("scaling", "log1p"), ("model/net", "tiny"), ("data", "sketches")):
        assert f"\n{group}: {', '.join(sorted([*group_choices(group), added]))}\n" in proc.stdout, proc.stdout


def test_the_new_networks_arguments_are_checked_from_its_signature(extended):
    """``channels: int`` in Tiny, not the CNN's list of channels: 8 holds, a list or a word is
    refused in one line, before anything is made."""
    work = folder(extended, "refused")
    for value, shown in (("eight", "'eight'"), ("[8,16]", "[8, 16]")):
        proc = train("model/net=tiny", f"model.net.channels={value}", "data.root=unused", cwd=work, env=env(extended))
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.strip() == f"error: model.net.channels={shown} is invalid: must be an integer", proc.stderr
    assert not list(work.iterdir())  # refused before anything was made


def test_one_run_with_the_three_trains_and_records_them(extended):
    work = folder(extended, "run")
    proc = train(
        "scaling=log1p", "model/net=tiny", "data=sketches", "model.net.channels=4", f"data.root={extended['root']}",
        "trainer=debug", "data.eval_train=false", "hydra.run.dir=run", cwd=work, env=env(extended),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = read_metrics(work / "run")
    assert record["status"] == "completed"
    assert record["config"]["scaling"]["_target_"] == "fmnist_scaling.data.scaling.Log1p"
    assert record["network"]["class"] == "Tiny" and record["network"]["net"] == "tiny"
    assert record["dataset"]["name"] == "Sketches" and record["config"]["model"]["net"]["channels"] == 4
    assert 0 <= record["final"]["test/acc"] <= 1

    # the GPU check's table of modes: the new mode, whose run it reads, with no row in docs/study.md yet
    listing = textwrap.dedent(
        """
        import sys
        from pathlib import Path
        from fmnist_scaling.tools import gpu_check as g

        study = g.cpu_study()
        rows = {m: g.mode_row(m, Path(sys.argv[1]) if m == "log1p" else None, study, "cpu") for m in g.MODES}
        steps = {"evaluate": {"ok": True}, "bench": {"ok": True}, "tests": {"ok": None, "skipped": "listing only"}}
        g.print_table({"machine": {"gpu": None}, "runs": {"ok": True, "modes": rows}, **steps})
        """
    )
    proc = python(listing, str(work / "run"), cwd=work, extended=extended)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| log1p | cpu | " in proc.stdout and "| none yet | not compared (no row in docs/study.md) |" in proc.stdout
    mean, std = gpu_check.cpu_study()["max"]  # a mode the study has a row for: compared as before
    assert f"| max | None | nan | {mean:.1f} ± {std:.1f} | NO |" in proc.stdout, proc.stdout
