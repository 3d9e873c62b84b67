"""Start-up shortcuts (issue 22): each one gives what the slow way gives, and steps aside where
it might not. The data's check, started in a thread before Lightning's import, stands in for
``prepare``'s own only when it found the cache sound, and otherwise writes and says nothing; the
garbage collector, off while torch and Lightning import, is back on after, in the state it was in;
and a command that only prints or is refused never imports torch."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading

import pytest

from fmnist_scaling.data import sources
from fmnist_scaling.run import cli, resolvers


def test_the_shipped_config_sets_no_run_mode(tmp_path, monkeypatch):
    """A sweep on a single run's command line is named only where no config sets the mode."""
    assert not cli._conf_sets_mode()
    (tmp_path / "train.yaml").write_text("seed: 0\nhydra:\n  mode: MULTIRUN\n")
    monkeypatch.setattr(resolvers, "CONF_DIR", tmp_path)
    assert cli._conf_sets_mode()


# ---- the data's check, started before Lightning's import (sources.check_ahead)


@pytest.fixture
def tiny_cache(tmp_path, monkeypatch):
    """A cache built from tiny IDX files (verify=false), that this process has not checked yet;
    every read of it counted, with the thread that read it."""
    from tests.conftest import make_tiny

    root = tmp_path / "data"
    make_tiny(sources.raw_folder(root))
    sources.prepare(str(root), local_copy=None, download=False, verify=False)
    monkeypatch.setattr(sources, "_checked", {})
    reads, read = [], sources._read_checked
    monkeypatch.setattr(
        sources, "_read_checked", lambda *a, **k: reads.append(threading.current_thread()) or read(*a, **k)
    )
    return root, reads


def test_a_sound_cache_is_checked_once_beside_the_caller_and_prepare_trusts_it(tiny_cache):
    root, reads = tiny_cache
    sources.check_ahead(str(root), verify=False)
    assert sources.prepare(str(root), local_copy=None, download=False, verify=False).startswith("cache")
    assert len(reads) == 1 and reads[0] is not threading.main_thread()  # the thread's check, not prepare's
    assert sources.load(str(root), verify=False)["train_images"].shape == (600, 28, 28)


def test_a_damaged_cache_is_left_to_prepare_which_rebuilds_and_says_so(tiny_cache, capsys):
    import torch

    root, reads = tiny_cache
    cache = sources.cache_path(root)
    stored = torch.load(cache, weights_only=True)
    stored["train_images"][0, 0, 0] ^= 1  # one bit: the stored md5 no longer holds
    torch.save(stored, cache)
    damaged = cache.read_bytes()
    sources.check_ahead(str(root), verify=False)
    sources._ahead[cache].join()
    capsys.readouterr()
    assert cache.read_bytes() == damaged and not sources._checked  # it wrote nothing
    assert capsys.readouterr() == ("", "")  # and said nothing
    sources.prepare(str(root), local_copy=None, download=False, verify=False)
    said = capsys.readouterr().err
    assert "is damaged (the md5 of train_images" in said and "rebuilt it" in said
    assert sources.load(str(root), verify=False)["train_images"][0, 0, 0] == stored["train_images"][0, 0, 0] ^ 1


def test_a_dataset_that_cannot_be_built_is_left_for_the_run_to_report(tmp_path):
    from omegaconf import OmegaConf

    from fmnist_scaling.data.datasets import check_data_ahead

    before = dict(sources._ahead)
    for target in ("no.such.Dataset", "fmnist_scaling.data.datasets.ImageDataset"):  # fails; checks nothing
        data = OmegaConf.create({"dataset": {"_target_": target}, "root": str(tmp_path), "verify": True})
        check_data_ahead(data)
    assert sources._ahead == before and list(tmp_path.iterdir()) == []


# ---- torch and Lightning imported with the garbage collector off (utils.imports.heavy_imports)

HEAVY_IMPORTS = textwrap.dedent(
    """
    import gc, json, sys
    from fmnist_scaling.utils.imports import heavy_imports
    if sys.argv[1] == "off":
        gc.disable()
    states = []
    with heavy_imports():
        states.append(gc.isenabled())
        import lightning.pytorch
    states.append((gc.isenabled(), gc.get_freeze_count()))
    with heavy_imports():  # Lightning is there: nothing to do, nothing frozen again
        states.append(gc.isenabled())
        garbage = [[]]
        garbage[0].append(garbage)
    del garbage
    states.append((gc.isenabled(), gc.get_freeze_count(), gc.collect() if gc.isenabled() else None))
    print(json.dumps(states))
    """
)


@pytest.mark.parametrize("before", ["on", "off"])
def test_lightning_imports_with_the_collector_off_then_frozen_and_the_collector_as_it_was(before):
    proc = subprocess.run(
        [sys.executable, "-c", HEAVY_IMPORTS, before], capture_output=True, text=True, timeout=120, check=True
    )
    during, (after, frozen), again, (after_again, frozen_again, collected) = json.loads(proc.stdout)
    assert during is False and after is (before == "on") and frozen > 100_000  # Lightning's objects
    assert again is after and after_again is after and frozen_again == frozen  # second time: untouched
    assert collected == (2 if before == "on" else None)  # the two lists that hold each other: not frozen


# ---- commands that only print, or are refused, answer without importing torch (under 1 s)

WATCH_IMPORTS = textwrap.dedent(
    """
    import atexit, runpy, sys
    module, sys.argv = sys.argv[1], sys.argv[1:]
    atexit.register(lambda: print("torch imported:", "torch" in sys.modules, file=sys.stderr, flush=True))
    runpy.run_module(module, run_name="__main__", alter_sys=True)
    """
)


@pytest.mark.parametrize(
    ("module", "args", "code"),
    [
        ("fmnist_scaling.train", ["--help"], 0),
        ("fmnist_scaling.train", ["--cfg", "job", "scaling=none"], 0),
        ("fmnist_scaling.train", ["scaling=foo"], 2),
        ("fmnist_scaling.train", ["trainer.max_epochs=0"], 2),
        ("fmnist_scaling.train", ["model.optimizer.lrr=1"], 2),
        ("fmnist_scaling.evaluate", ["--help"], 0),
        ("fmnist_scaling.evaluate", [], 2),
        ("fmnist_scaling.evaluate", ["ckpt_pth=run"], 2),
        ("fmnist_scaling.evaluate", ["ckpt_path=missing.ckpt"], 2),
        ("fmnist_scaling.data.sources", ["--help"], 0),
        ("fmnist_scaling.data.sources", ["--root", "data"], 2),
        ("fmnist_scaling.tools.threshold", ["--help"], 0),
        ("fmnist_scaling.tools.threshold", ["--cases", "nosuch"], 2),
        ("fmnist_scaling.tools.sharpness", ["--help"], 0),
    ],
)
def test_print_only_and_refused_commands_do_not_import_torch(tmp_path, module, args, code):
    proc = subprocess.run(
        [sys.executable, "-c", WATCH_IMPORTS, module, *args], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == code, proc.stderr[-2000:]
    assert proc.stderr.strip().endswith("torch imported: False"), proc.stderr[-2000:]
    if code:  # refused: one line that says why (argparse puts its usage first), and nothing made
        assert proc.stderr.count("error: ") == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert list(tmp_path.iterdir()) == []
