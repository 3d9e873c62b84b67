"""Any network: the package's (MLP, CNN, input BatchNorm, He init) trained through the real entry
point with two scalings, a network defined outside the package, the shapes the data gives, and
checkpoints rebuilt by evaluate."""

import json
import textwrap

import pytest
import torch

from fmnist_scaling.data.datamodule import ImageDataModule
from fmnist_scaling.data.scaling import PerPixelStandardize
from fmnist_scaling.models.classifier import ScalingClassifier
from fmnist_scaling.models.networks import CNN, MLP, initialize
from fmnist_scaling.run.migrate import upgrade_hparams
from tests.conftest import read_metrics, run_module, train

TINY = ["data.verify=false", "data.val_size=100", "trainer.max_epochs=2"]


@pytest.fixture(scope="module")
def arch_sweep(tmp_path_factory):
    from fmnist_scaling.data import sources
    from tests.conftest import make_tiny

    tmp = tmp_path_factory.mktemp("arch")
    make_tiny(sources.raw_folder(tmp / "tiny"))
    sweep_dir = tmp / "sweep"
    proc = train(
        "-m",
        "+experiment=architectures",
        "scaling=none,max",
        "seed=0",
        f"data.root={tmp / 'tiny'}",
        *TINY,
        f"hydra.sweep.dir={sweep_dir}",
        cwd=tmp,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return tmp, sweep_dir


def job(sweep_dir, arch, scaling):
    return next(sweep_dir.glob(f"arch={arch},*scaling={scaling},seed=0*"))


@pytest.mark.parametrize("arch", ["mlp", "mlp_bn", "cnn", "mlp_he"])
def test_every_network_trains_with_two_scalings(arch_sweep, arch):
    _, sweep_dir = arch_sweep
    expected = {
        "mlp": ("MLP", "none", "default"),
        "mlp_bn": ("MLP", "batchnorm", "default"),
        "cnn": ("CNN", "none", "default"),
        "mlp_he": ("MLP", "none", "he"),
    }[arch]
    for scaling in ("none", "max"):
        record = read_metrics(job(sweep_dir, arch, scaling))
        assert record["status"] == "completed"
        network = record["network"]
        assert (network["class"], network["input_norm"], network["init"]) == expected
        assert network["input_shape"] == ([1, 28, 28] if arch == "cnn" else [784])
        assert (
            record["train_step"] == "fused"
            if arch in ("mlp", "mlp_he")
            else record["train_step"].startswith("autograd (")
        )
        first = record["history"][0]
        assert 0.0 <= first["diag/dead_frac"] <= 1.0 and first["diag/preact_std"] > 0
        assert any(k.startswith("diag/grad_norm/layers.") for k in first)
        first_weight = next(k for k in record["initial"] if k.startswith("diag/weight_norm/"))
        assert record["final"][first_weight] != record["initial"][first_weight]  # the first layer was trained
    if arch != "cnn":  # the tiny set is easy: with / 255 the MLPs learn it in 32 steps (the CNN is slower to start)
        assert read_metrics(job(sweep_dir, arch, "max"))["final"]["val/acc"] > 0.5


def test_the_summary_groups_by_network(arch_sweep):
    _, sweep_dir = arch_sweep
    text = (sweep_dir / "summary.md").read_text()
    assert "| arch | scaling | runs |" in text
    assert all(f"| {arch} | max | 1 |" in text for arch in ("mlp", "mlp_bn", "cnn", "mlp_he"))


def test_evaluate_rebuilds_a_cnn_from_its_checkpoint(arch_sweep):
    tmp, sweep_dir = arch_sweep
    cnn = job(sweep_dir, "cnn", "max")
    proc = run_module("fmnist_scaling.evaluate", f"ckpt_path={cnn}", f"data.root={tmp / 'tiny'}", cwd=tmp)
    assert proc.returncode == 0, proc.stderr[-2000:]
    evaluation = json.loads((cnn / "checkpoints" / "evaluation.json").read_text())
    assert evaluation["test/acc"] == pytest.approx(read_metrics(cnn)["final"]["test/acc"], abs=1e-6)


OWN_NET = '''
    """A network of one's own: one 5x5 convolution, ReLU, global average pool, a linear layer."""
    from torch import nn


    class Blob(nn.Module):
        input_shape = (1, 28, 28)

        def __init__(self, channels: int = 4, num_classes: int = 10) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, channels, 5)
            self.relu = nn.ReLU()
            self.head = nn.Linear(channels, num_classes)

        def forward(self, x):
            return self.head(self.relu(self.conv(x)).mean(dim=(2, 3)))
'''


def test_a_network_from_outside_the_package_is_one_class_and_one_yaml(tmp_path, tiny_root):
    (tmp_path / "blob_net.py").write_text(textwrap.dedent(OWN_NET))
    (tmp_path / "conf" / "model" / "net").mkdir(parents=True)
    (tmp_path / "conf" / "model" / "net" / "blob.yaml").write_text(
        "_target_: blob_net.Blob\nchannels: 6\nnum_classes: ${..num_classes}\n"
    )
    run_dir = tmp_path / "run"
    proc = train(
        f"hydra.searchpath=[file://{tmp_path / 'conf'}]",
        "model/net=blob",
        "scaling=standard",
        f"data.root={tiny_root}",
        *TINY,
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = read_metrics(run_dir)
    assert (
        record["status"] == "completed" and record["network"]["class"] == "Blob" and record["network"]["net"] == "blob"
    )
    assert record["train_step"].startswith("autograd (network Blob")
    final = record["final"]
    assert {"diag/grad_norm/conv.weight", "diag/weight_norm/head.bias", "diag/dead_frac", "diag/preact_std"} <= set(
        final
    )
    proc = run_module("fmnist_scaling.evaluate", f"ckpt_path={run_dir}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    evaluation = json.loads((run_dir / "checkpoints" / "evaluation.json").read_text())
    assert evaluation["test/acc"] == pytest.approx(final["test/acc"], abs=1e-6)
    # elsewhere, where its module does not import: one line that says so
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = run_module("fmnist_scaling.evaluate", f"ckpt_path={run_dir}", cwd=elsewhere)
    assert proc.returncode == 2 and "its network blob_net.Blob cannot be built here" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_the_data_gives_each_network_its_shape_with_the_same_scaling(tiny_root):
    flat = ImageDataModule(PerPixelStandardize(), root=str(tiny_root), verify=False, val_size=100)
    image = ImageDataModule(
        PerPixelStandardize(), root=str(tiny_root), verify=False, val_size=100, input_shape=(1, 28, 28)
    )
    for data in (flat, image):
        data.prepare_data()
        data.setup("fit")
    assert torch.equal(flat.scaling.mean, image.scaling.mean)  # the statistics do not see the shape
    (x_flat, y_flat), (x_image, y_image) = flat.probe_batch(), image.probe_batch()
    assert x_flat.shape == (500, 784) and x_image.shape == (500, 1, 28, 28)
    assert torch.equal(x_image.flatten(1), x_flat) and torch.equal(y_flat, y_image)
    group = next(iter(image.train_dataloader()))
    assert group[0][0].shape == (32, 1, 28, 28)
    assert next(iter(image.val_dataloader()[0]))[0].shape == (100, 1, 28, 28)


def test_init_schemes_draw_known_spreads():
    torch.manual_seed(0)
    net = MLP(784, [4000], 10)
    initialize(net, "he")
    assert net.layers.fc1.weight.std().item() == pytest.approx((2 / 784) ** 0.5, rel=0.01)
    assert net.layers.fc1.bias.abs().max() == 0
    initialize(net, "lecun")
    assert net.layers.out.weight.std().item() == pytest.approx((1 / 4000) ** 0.5, rel=0.05)
    cnn = CNN()
    initialize(cnn, "he")
    assert cnn.layers.conv2.weight.std().item() == pytest.approx((2 / (8 * 9)) ** 0.5, rel=0.05)
    with pytest.raises(ValueError, match="init='glorot' is not one of: default, he, lecun"):
        initialize(net, "glorot")


def test_the_default_mlp_is_drawn_as_before():
    """The article's network, seed for seed, as the MLP was built before networks were a config
    group: the study's numbers stay where they were."""
    torch.manual_seed(3)
    model = ScalingClassifier()
    torch.manual_seed(3)
    plain = torch.nn.Sequential(torch.nn.Linear(784, 1000), torch.nn.ReLU(), torch.nn.Linear(1000, 10))
    assert torch.equal(model.net.layers.fc1.weight, plain[0].weight) and torch.equal(
        model.net.layers.out.bias, plain[2].bias
    )


def test_a_checkpoint_from_before_networks_were_a_config_loads():
    old = {
        "in_features": 784,
        "hidden": [50],
        "num_classes": 10,
        "activation": "tanh",
        "optimizer": {"_target_": "torch.optim.SGD", "lr": 0.01},
        "fused_step": True,
    }
    model = ScalingClassifier(**upgrade_hparams(old))
    assert isinstance(model.net, MLP) and model.net.activation == "tanh" and model.net.layers.fc1.out_features == 50
    assert upgrade_hparams(model.hparams) == model.hparams  # a new one is left as it is


def test_the_docs_network_example_learns(tmp_path, tiny_root):
    """docs/extending.md's Tiny, as written, trains at the default lr: an example of an extension
    shows it working (its first version averaged its channels away and sat at chance)."""
    from tests.conftest import REPO

    docs = (REPO / "docs" / "extending.md").read_text()
    section = docs[docs.index("### Adding a network") :]
    (tmp_path / "my_nets.py").write_text(section.split("```python\n", 1)[1].split("```", 1)[0])
    (tmp_path / "conf" / "model" / "net").mkdir(parents=True)
    (tmp_path / "conf" / "model" / "net" / "tiny.yaml").write_text(section.split("```yaml\n", 1)[1].split("```", 1)[0])
    run_dir = tmp_path / "run"
    proc = train(
        f"hydra.searchpath=[file://{tmp_path / 'conf'}]",
        "model/net=tiny",
        f"data.root={tiny_root}",
        *TINY,
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = read_metrics(run_dir)
    assert record["network"]["class"] == "Tiny" and record["final"]["test/acc"] > 0.5, record["final"]
