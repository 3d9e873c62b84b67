"""What TensorBoard shows (read back with its own event reader), and evaluating a checkpoint."""

import json

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.conftest import read_metrics, run_module, train

pytestmark = pytest.mark.real_data


@pytest.fixture(scope="module")
def run(tmp_path_factory, real_root):
    tmp = tmp_path_factory.mktemp("visuals")
    run_dir = tmp / "run"
    proc = train(
        "scaling=standard",
        "trainer.max_epochs=2",
        "trainer.limit_train_batches=100",
        f"data.root={real_root}",
        f"hydra.run.dir={run_dir}",
        cwd=tmp,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    events = EventAccumulator(str(run_dir), size_guidance={"images": 0, "histograms": 0, "scalars": 0, "tensors": 0})
    return run_dir, events.Reload()


def test_input_pictures_diagnostic_histograms_and_confusion_matrix(run):
    _, events = run
    tags = events.Tags()
    assert {"inputs/images", "test/confusion_matrix"} <= set(tags["images"])
    assert {"inputs/values", "hist/preact/layers.fc1", "hist/activation/layers.act1", "hist/weight/layers.fc1"} <= set(
        tags["histograms"]
    )
    assert len(events.Histograms("hist/preact/layers.fc1")) == 3  # step 0 and after each of the 2 epochs
    grid = events.Images("inputs/images")[0]
    assert (grid.width, grid.height) == (112, 112)  # 4 x 4 images of 28 x 28
    values = events.Histograms("inputs/values")[0].histogram_value
    assert values.min < -0.5 and 2.0 < values.max < 3.0  # standardized pixels: about -0.8 .. 2.0
    assert {"inputs/min", "inputs/max", "inputs/mean", "inputs/std"} <= set(tags["scalars"])
    assert {
        "diag/dead_frac",
        "diag/preact_std",
        "diag/grad_norm/layers.fc1.weight",
        "train/acc",
        "val/acc",
        "train_full/acc",
    } <= set(tags["scalars"])
    assert [e.step for e in events.Scalars("diag/preact_std")][0] == 0  # measured at step 0 too


def test_hparams_hold_the_final_metrics_not_placeholders(run):
    run_dir, events = run
    metrics = read_metrics(run_dir)
    assert "hp_metric" not in events.Tags()["scalars"]
    start_info = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    assert b"standard" in start_info and b"lr" in start_info
    for key in ("test_acc", "val_acc", "diag_dead_frac"):
        [value] = [e.value for e in events.Scalars(f"hparams/{key}")]
        assert value == pytest.approx(metrics["final"][key.replace("_", "/", 1)], abs=1e-6)


def test_evaluate_reproduces_the_test_accuracy_from_the_checkpoint(run, real_root):
    run_dir, _ = run
    proc = run_module("fmnist_scaling.evaluate", f"ckpt_path={run_dir}", f"data.root={real_root}", cwd=run_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((run_dir / "checkpoints" / "evaluation.json").read_text())
    assert result["test/acc"] == pytest.approx(read_metrics(run_dir)["final"]["test/acc"], abs=1e-4)
    assert result["scaling"]["_target_"].endswith("Standardize")
    assert set(result["per_class_acc"]) >= {"T-shirt/top", "Ankle boot"} and "Ankle boot" in proc.stdout
    assert sum(map(sum, result["confusion_matrix"])) == 10_000


def test_every_event_and_the_history_share_the_sgd_step_axis(run):
    run_dir, events = run
    history_steps = [h["step"] for h in read_metrics(run_dir)["history"]]
    assert history_steps == [1600, 3200]  # 100 Lightning batches of 16 SGD steps per epoch
    tags = events.Tags()
    steps = {e.step for t in tags["scalars"] for e in events.Scalars(t)}
    steps |= {e.step for t in tags["histograms"] for e in events.Histograms(t)}
    steps |= {e.step for t in tags["images"] for e in events.Images(t)}
    assert steps == {0, *history_steps}
    assert {e.step for e in events.Scalars("val/acc")} == set(history_steps)
    assert {e.step for e in events.Histograms("hist/preact/layers.fc1")} == {0, *history_steps}
    assert [e.step for e in events.Images("test/confusion_matrix")] == [3200]
    hparams = (run_dir / "hparams.yaml").read_text()
    assert "scaling: standard" in hparams and "lr: 0.01" in hparams  # not the empty file Lightning wrote
