"""Datasets as a choice (``data=<name>``): the digits train offline on their real data, MNIST from
small IDX files the test writes, a missing dataset is one line, a dataset of your own (outside
the package, through ``hydra.searchpath``) trains and evaluates, and the scaling modes read the
chosen dataset's own pixel range."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from fmnist_scaling.data import datasets, sources
from fmnist_scaling.data.scaling import Centered, MaxScaling, PerPixelStandardize
from fmnist_scaling.run.migrate import upgrade_target
from tests.conftest import make_tiny, read_metrics, run_module, train, write_sketches

pytest.importorskip("sklearn", reason="data=digits needs scikit-learn: pip install -e '.[digits]'")


def compose(*overrides: str):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from fmnist_scaling.run.resolvers import CONF_DIR

    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return hydra_compose("train", overrides=list(overrides))


def test_digits_raw_and_divided_train_offline_and_their_records_name_the_dataset(tmp_path):
    sweep = tmp_path / "sweep"
    proc = train("-m", "data=digits", "scaling=none,max", "seed=0", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = {p.parent.name: read_metrics(p.parent) for p in sweep.glob("*/metrics.json")}
    assert len(runs) == 2
    for name, record in runs.items():
        assert record["status"] == "completed"
        assert record["dataset"]["name"] == "Digits (scikit-learn)" and record["dataset"]["image_shape"] == [8, 8]
        assert record["config"]["model"]["net"]["in_features"] == 64
        assert record["final"]["test/acc"] > 0.7, (name, record["final"])  # chance is 0.1
    divided = next(r for n, r in runs.items() if "scaling=max" in n)
    assert divided["config"]["scaling"]["max_value"] == 16.0  # the digits' own range, not 255
    hparams = (next(sweep.glob("*scaling=max*")) / "hparams.yaml").read_text()
    assert "data: digits" in hparams


def test_digits_split_is_fixed_and_checked():
    data = datasets.Digits().load("unused", verify=True)
    assert data["train_images"].shape == (1437, 8, 8) and data["test_images"].shape == (360, 8, 8)
    assert int(data["train_images"].max()) == 16 and data["train_images"].dtype == torch.uint8
    again = datasets.Digits().load("unused", verify=True)
    assert torch.equal(data["test_labels"], again["test_labels"])  # the same permutation every time
    counts = torch.bincount(torch.cat([data["train_labels"], data["test_labels"]]), minlength=10)
    assert counts.sum() == 1797 and counts.min() >= 170  # every digit, as scikit-learn ships them


@pytest.mark.parametrize(
    "mode,expected", [("max", MaxScaling), ("centered", Centered), ("per_pixel", PerPixelStandardize)]
)
def test_scaling_modes_take_the_chosen_datasets_pixel_range(mode, expected):
    from hydra.utils import instantiate

    import fmnist_scaling.run.resolvers  # noqa: F401 - the config's resolvers

    digits = instantiate(compose("data=digits", f"scaling={mode}").scaling)
    fashion = instantiate(compose(f"scaling={mode}").scaling)
    assert isinstance(digits, expected) and digits.max_value == 16.0 and fashion.max_value == 255.0
    if mode == "centered":  # 0..16 onto -1..1, as 0..255 on Fashion-MNIST
        assert digits(torch.tensor([[0, 8, 16]], dtype=torch.uint8)).tolist() == [[-1.0, 0.0, 1.0]]
    if mode == "max":
        assert digits(torch.tensor([[4, 16]], dtype=torch.uint8)).tolist() == [[0.25, 1.0]]


def test_the_networks_and_the_gain_read_the_chosen_dataset():
    import fmnist_scaling.run.resolvers  # noqa: F401

    cfg = compose("data=digits", "model/net=cnn")
    assert cfg.model.net.image_size == 8 and cfg.model.num_classes == 10
    cfg = compose("data=digits", "+experiment=scale_law", "gain=4")
    assert cfg.scaling.max_value == 4.0  # / 16, then times the gain 4


def test_mnist_without_its_files_is_one_line_and_exit_2(tmp_path):
    proc = train("data=mnist", "data.download=false", "data.root=data", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: MNIST not found. Tried: the data folder"), lines
    assert "data.local_copy=<folder>" in lines[0] and "Traceback" not in proc.stderr
    assert not (tmp_path / "lightning_logs" / "runs").exists() or not any((tmp_path / "lightning_logs/runs").iterdir())


def test_mnist_from_a_local_copy_of_idx_files(tmp_path):
    copy = tmp_path / "mnist_copy"
    make_tiny(copy, gz=True)
    root = tmp_path / "data"
    mnist = datasets.MNIST()
    with pytest.raises(sources.DataError, match=r"is not the MNIST file .*expected 47040016 bytes"):
        sources.prepare(str(root), str(copy), download=False, verify=True, dataset=mnist)
    where = sources.prepare(str(root / "own"), str(copy), download=False, verify=False, dataset=mnist)
    assert where == f"local copy {copy}" and sources.cache_path(root / "own", mnist).name == "mnist_uint8.pt"
    assert mnist.load(str(root / "own"), verify=False)["train_images"].shape == (600, 28, 28)
    proc = train(
        "data=mnist",
        f"data.local_copy={copy}",
        f"data.root={root / 'run'}",
        "data.verify=false",
        "data.val_size=100",
        "trainer=debug",
        "hydra.run.dir=run",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = read_metrics(tmp_path / "run")
    assert record["status"] == "completed" and record["dataset"]["name"] == "MNIST"
    assert (root / "run" / "MNIST" / "mnist_uint8.pt").is_file()


def test_old_configs_and_checkpoints_name_the_data_module_as_it_is_called_now():
    assert (
        upgrade_target("fmnist_scaling.data.FashionMNISTDataModule") == "fmnist_scaling.data.datamodule.ImageDataModule"
    )
    assert upgrade_target("fmnist_scaling.data.datamodule.FashionMNISTDataModule").endswith(".ImageDataModule")
    assert datasets.dataset_class(None) is datasets.FashionMNIST  # a checkpoint that names no dataset


OWN_DATASET = '''
"""A dataset of one's own: 12 x 12 images of 3 classes, pixel values 0..7, made up on the spot."""
import torch

from fmnist_scaling.data.datasets import ImageDataset


class Stripes(ImageDataset):
    name, folder = "Stripes", "Stripes"
    image_shape = (12, 12)
    classes = ("left", "middle", "right")
    train_size, test_size = 300, 90
    max_value = 7.0

    def prepare(self, root, local_copy, download, verify):
        return "made up"

    def load(self, root, verify):
        out = {}
        for split, n in (("train", self.train_size), ("test", self.test_size)):
            g = torch.Generator().manual_seed(len(split))
            labels = torch.arange(n) % 3
            images = torch.randint(0, 3, (n, 12, 12), generator=g)
            for c in range(3):
                images[labels == c, :, 4 * c : 4 * c + 4] = 7
            out[f"{split}_images"], out[f"{split}_labels"] = images.to(torch.uint8), labels
        return out
'''


def test_a_dataset_of_your_own_outside_the_package_trains_and_evaluates(tmp_path):
    plugin = tmp_path / "plugin"
    (plugin / "conf" / "data").mkdir(parents=True)
    (plugin / "stripes_data.py").write_text(OWN_DATASET)
    (plugin / "conf" / "data" / "stripes.yaml").write_text(
        textwrap.dedent(
            """\
            defaults:
              - fashion_mnist
              - _self_
            dataset:
              _target_: stripes_data.Stripes
            val_size: 60
            """
        )
    )
    env = {"PYTHONPATH": str(plugin)}
    proc = train(
        f"hydra.searchpath=[file://{plugin / 'conf'}]",
        "data=stripes",
        "trainer.max_epochs=1",
        "hydra.run.dir=run",
        cwd=tmp_path,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = read_metrics(tmp_path / "run")
    assert record["dataset"]["name"] == "Stripes" and record["dataset"]["class"] == "stripes_data.Stripes"
    assert record["config"]["scaling"]["max_value"] == 7.0 and record["config"]["model"]["net"]["in_features"] == 144
    assert record["final"]["test/acc"] > 0.9  # three stripes: easy
    proc = run_module("fmnist_scaling.evaluate", f"ckpt_path={tmp_path / 'run'}", cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    evaluation = json.loads((tmp_path / "run" / "checkpoints" / "evaluation.json").read_text())
    assert evaluation["dataset"] == "Stripes" and list(evaluation["per_class_acc"]) == ["left", "middle", "right"]
    assert evaluation["test/acc"] == pytest.approx(record["final"]["test/acc"])
    proc = run_module("fmnist_scaling.evaluate", f"ckpt_path={tmp_path / 'run'}", cwd=tmp_path)  # without its path
    assert proc.returncode == 2 and "stripes_data.Stripes cannot be built here" in proc.stderr
    assert "PYTHONPATH" in proc.stderr and "Traceback" not in proc.stderr


FILE_DATASET = '''
import torch

from stripes_data import Stripes


class StripesFile(Stripes):
    """The stripes, kept in one file directly in data.root."""

    def prepare(self, root, local_copy, download, verify):
        return f"{root}/stripes.pt"

    def load(self, root, verify):
        return torch.load(f"{root}/stripes.pt")
'''


def test_a_dataset_that_keeps_its_file_in_data_root_evaluates_from_anywhere(tmp_path):
    plugin = tmp_path / "plugin"
    plugin.mkdir()
    (plugin / "stripes_data.py").write_text(OWN_DATASET)
    (plugin / "stripes_file.py").write_text(FILE_DATASET)
    mydata = tmp_path / "mydata"
    mydata.mkdir()
    make = f"import torch, stripes_data; torch.save(stripes_data.Stripes().load(None, False), '{mydata}/stripes.pt')"
    env = {"PYTHONPATH": str(plugin)}
    subprocess.run([sys.executable, "-c", make], check=True, env={**os.environ, **env})
    proc = train(
        "data.dataset._target_=stripes_file.StripesFile", "data.val_size=60", "data.verify=false",
        f"data.root={mydata}", "trainer.max_epochs=1", "hydra.run.dir=run", cwd=tmp_path, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = run_module("fmnist_scaling.evaluate", f"ckpt_path={tmp_path / 'run'}", cwd=elsewhere, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]  # the data folder the run trained with
    (mydata / "stripes.pt").unlink()  # and where it is gone: a read, said as one
    proc = run_module("fmnist_scaling.evaluate", f"ckpt_path={tmp_path / 'run'}", cwd=elsewhere, env=env)
    assert proc.returncode == 3 and "cannot read the checkpoint or its data" in proc.stderr, proc.stderr[-2000:]
    assert "evaluation.json" not in proc.stderr and "Traceback" not in proc.stderr


def test_a_dataset_target_that_is_not_a_dataset_is_named(tmp_path):
    proc = train("data.dataset._target_=collections.OrderedDict", cwd=tmp_path)
    assert proc.returncode == 2 and "is not a dataset (a subclass of ImageDataset)" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_the_readmes_dataset_example_trains(tmp_path):

    from tests.conftest import REPO

    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("### Adding a dataset") :]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    yaml = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    plugin = tmp_path / "plugin"
    (plugin / "conf" / "data").mkdir(parents=True)
    (plugin / "my_data.py").write_text(code)
    (plugin / "conf" / "data" / "sketches.yaml").write_text(yaml)
    write_sketches(tmp_path / "data")
    proc = train(
        f"hydra.searchpath=[file://{plugin / 'conf'}]",
        "data=sketches",
        "trainer.max_epochs=1",
        "hydra.run.dir=run",
        cwd=tmp_path,
        env={"PYTHONPATH": str(plugin)},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = read_metrics(tmp_path / "run")
    assert record["dataset"]["name"] == "Sketches" and record["final"]["test/acc"] > 0.9
