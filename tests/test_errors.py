"""Bad input through the real entry point: a non-zero exit, one line naming the bad value and
what is allowed, and no run folder left behind."""

import pytest

from fmnist_scaling.data import sources
from fmnist_scaling.models.options import ACTIVATION_NAMES, INITS, INPUT_NORMS
from fmnist_scaling.run import cli
from fmnist_scaling.run.resolvers import group_choices
from tests.conftest import make_tiny, train

# the choices as the config and the code define them: a mode, a network or an optimizer added to
# conf/ is listed here too, with no edit of this file
SCALINGS = ", ".join(group_choices("scaling"))
NETWORKS = ", ".join(group_choices("model/net"))
OPTIMIZERS = ", ".join(group_choices("model/optimizer"))
ACTIVATIONS = ", ".join(ACTIVATION_NAMES)

BAD_VALUES = [
    ("scaling=foo", f"scaling=foo is invalid: must be one of {SCALINGS}", SCALINGS),
    ("-m scaling=max,foo", "scaling=foo is invalid", SCALINGS),
    # a sweep without -m (Hydra: five lines, exit 1); a group gets no list to write, a key does
    ("scaling=max,none", "scaling=max,none is a sweep, and this is a single run", "add -m (--multirun)"),
    ("seed=range(0,3)", "seed=range(0,3) is a sweep", "add -m (--multirun)"),
    ("model.net.hidden=300,100", "model.net.hidden=300,100 is a sweep", "model.net.hidden=[a,b]"),
    ("model/net=resnet", f"model/net=resnet is invalid: must be one of {NETWORKS}", NETWORKS),
    ("model/net=cnn model.net.channels=[8,0]", "model.net.channels=[8, 0] is invalid", "integers >= 1"),
    ("model/net=cnn model.net.activation=swish", "model.net.activation='swish' is invalid", ACTIVATIONS),
    (
        "model/net=cnn model.net.image_size=32",
        "input_shape=(1, 32, 32) is invalid: the images are 28 x 28",
        "(1, 28, 28)",
    ),
    (
        "model/net=cnn +model.net.depth=3",
        "model.net could not build fmnist_scaling.models.networks.CNN: TypeError",
        "depth",
    ),
    ("model.init=glorot", "model.init='glorot' is invalid", ", ".join(INITS)),
    ("model.input_norm=layernorm", "model.input_norm='layernorm' is invalid", ", ".join(INPUT_NORMS)),
    ("model.hidden=[500]", "model.hidden has moved", "model.net.hidden=[500]"),
    ("model.net.activation=swish", "model.net.activation='swish' is invalid", ACTIVATIONS),
    ("model.fused_step=maybe", "model.fused_step='maybe' is invalid", "true or false"),
    ("model/optimizer=rmsprop", f"model/optimizer=rmsprop is invalid: must be one of {OPTIMIZERS}", OPTIMIZERS),
    ("model.optimizer.lr=0", "model.optimizer.lr=0 is invalid", "finite number > 0"),
    ("model.optimizer.lr=-0.1", "model.optimizer.lr=-0.1 is invalid", "finite number > 0"),
    ("model.optimizer.lr=fast", "model.optimizer.lr='fast' is invalid", "finite number > 0"),
    ("data.batch_size=0", "data.batch_size=0 is invalid", "integer >= 1"),
    ("trainer.max_epochs=0", "trainer.max_epochs=0 is invalid", "integer >= 1"),
    ("data.val_size=-1", "data.val_size=-1 is invalid", "integer >= 0"),
    ("data.val_size=60000", "data.val_size=60000 is invalid", "0..59999"),
    ("model.net.hidden=[1000,0]", "model.net.hidden=[1000, 0] is invalid", "integers >= 1"),
    ("scaling=per_pixel scaling.eps=0", "scaling.eps=0 is invalid", "number > 0"),
    ("trainer.accelerator=tpux", "trainer.accelerator='tpux' is invalid", "auto, cpu, gpu"),
    ("trainer.accelerator=cpu trainer.devices=4096", "trainer.devices=4096 is invalid", "cpu device(s)"),
    ("resume=no/such/run", "resume='no/such/run' is invalid", "checkpoints/last.ckpt"),
    ("hydra.run.dir=README.md/run", "cannot be written", "not a folder"),
]


@pytest.mark.parametrize("overrides,message,allowed", BAD_VALUES, ids=[b[0] for b in BAD_VALUES])
def test_bad_value_is_one_clear_error(tmp_path, overrides, message, allowed):
    (tmp_path / "README.md").write_text("a file, not a folder")
    proc = train(*overrides.split(), "data.root=unused", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and allowed in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not list(tmp_path.glob("lightning_logs/runs/*"))  # nothing half-written
    assert not (tmp_path / "unused").exists()  # rejected before any data was looked for


@pytest.mark.parametrize(
    "argv",
    [
        ["-m", "seed=0,1"],
        ["--multirun", "scaling=max,none"],
        ["hydra.mode=MULTIRUN", "seed=0,1"],  # the mode set otherwise: Hydra sweeps
        ["model.net.hidden=[300,100]"],  # a list
        ["seed='0,1'"],  # a quoted string: the schema's rule refuses it, not this check
        ["resume=lightning_logs/multirun/2026-12-03/scaling=max,seed=0"],  # a sweep job's folder
        ["hydra.run.dir=runs/a,b"],  # Hydra's own keys: Hydra tells
    ],
)
def test_a_sweep_is_refused_only_in_a_single_run(argv):
    assert cli.sweep_without_multirun(argv) is None


def test_resume_from_a_file_that_is_not_a_checkpoint(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").write_text("not a checkpoint")
    proc = train(f"resume={run}", "data.root=unused", cwd=tmp_path)
    assert proc.returncode == 2 and "is not a checkpoint that loads with weights_only=True" in proc.stderr
    assert (run / "checkpoints" / "last.ckpt").read_text() == "not a checkpoint"  # left as it was


@pytest.mark.parametrize("damage", ["truncated", "foreign"])
def test_corrupt_data_folder(tmp_path, damage):
    raw = sources.raw_folder(tmp_path / "data")
    make_tiny(raw)
    path = raw / "train-images-idx3-ubyte"
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:5000])
    proc = train("data.root=data", "data.local_copy=null", cwd=tmp_path)
    assert proc.returncode == 2
    assert "train-images-idx3-ubyte is not the Fashion-MNIST file" in proc.stderr and "Delete" in proc.stderr
    assert proc.stderr.count("\n") == 1 and not list(tmp_path.glob("lightning_logs/runs/*"))


def test_no_data_anywhere(tmp_path):
    proc = train("data.root=data", f"data.local_copy={tmp_path / 'none'}", "data.download=false", cwd=tmp_path)
    assert proc.returncode == 2
    assert "Fashion-MNIST not found" in proc.stderr and "apt-get install -y dataset-fashion-mnist" in proc.stderr
    assert not list(tmp_path.glob("lightning_logs/runs/*"))


def test_evaluate_bad_paths(tmp_path):
    from tests.conftest import run_module

    (tmp_path / "junk.ckpt").write_text("junk")
    missing = run_module("fmnist_scaling.evaluate", "ckpt_path=missing.ckpt", cwd=tmp_path)
    assert missing.returncode == 2 and "ckpt_path='missing.ckpt' is invalid" in missing.stderr
    junk = run_module("fmnist_scaling.evaluate", "ckpt_path=junk.ckpt", cwd=tmp_path)
    assert junk.returncode == 2 and "junk.ckpt is not a checkpoint" in junk.stderr
    none = run_module("fmnist_scaling.evaluate", cwd=tmp_path)
    assert none.returncode == 2 and none.stderr.strip() == (
        "error: ckpt_path is missing: add ckpt_path=<checkpoint file or run directory>"
    )
    misspelt = run_module("fmnist_scaling.evaluate", "ckpt_pth=junk.ckpt", cwd=tmp_path)
    assert misspelt.returncode == 2 and misspelt.stderr.strip() == (
        "error: ckpt_pth is not a key of the config: did you mean ckpt_path?"
    )
    # what train takes and evaluate reads from the checkpoint, and Hydra's own hint for it
    for choice in ("data=mnist", "+data=mnist", "+data.dataset._target_=my.Data", "model/optimizer=adam", "~data.root"):
        refused = run_module("fmnist_scaling.evaluate", "ckpt_path=junk.ckpt", choice, cwd=tmp_path)
        assert refused.returncode == 2 and refused.stderr.strip() == (
            f"error: {choice} is not an option of evaluate: the dataset, the scaling and the network come from "
            "the checkpoint, and the data is read from data.root; evaluate takes ckpt_path, data.root, "
            "data.local_copy, data.download, data.eval_batch_size, accelerator"
        ), refused.stderr
