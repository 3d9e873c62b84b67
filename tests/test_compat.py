"""The reaches into other libraries' private parts (fmnist_scaling/utils/compat.py): each written
for the releases installed here, and each fallback giving the same result."""

import subprocess
import sys
from importlib.metadata import version

import lightning as L
import pytest
import torch

from fmnist_scaling.models.classifier import ScalingClassifier
from fmnist_scaling.utils import compat


def test_every_shim_was_written_for_the_installed_release():
    installed = {"python": "{}.{}.{}".format(*sys.version_info[:3])} | {
        name: version(name) for name in compat.WRITTEN_FOR if name != "python"
    }
    for name, release in compat.WRITTEN_FOR.items():
        assert compat._written_for(name), (
            f"{name} {installed[name]} is installed; fmnist_scaling/utils/compat.py was written for {release}: "
            "check each of its shims against this release, then update WRITTEN_FOR"
        )


class Loader:
    """Lightning batches as the project's data module hands them: lists of minibatches."""

    def __init__(self, batches: list) -> None:
        self.batches = batches

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def fit_fused(monkeypatch, private: bool) -> tuple[int, dict[str, torch.Tensor]]:
    """One epoch of 3 Lightning batches of 2 fused SGD steps each; the step count and weights."""
    if not private:
        monkeypatch.setattr(compat, "STEP_HOOKS", False)  # as on a release it was not written for
    generator = torch.Generator().manual_seed(0)
    batches = [
        [(torch.rand(8, 784, generator=generator), torch.randint(0, 10, (8,), generator=generator)) for _ in range(2)]
        for _ in range(3)
    ]
    torch.manual_seed(0)
    model = ScalingClassifier(optimizer={"_target_": "torch.optim.SGD", "lr": 0.1})
    trainer = L.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, train_dataloaders=Loader(batches))
    assert model.step_kind == "fused"
    return trainer.global_step, {k: v.clone() for k, v in model.state_dict().items()}


def test_the_fused_step_is_counted_the_same_by_the_private_hooks_and_the_public_fallback(monkeypatch):
    steps, weights = fit_fused(monkeypatch, private=True)
    with monkeypatch.context() as patch:
        fallback_steps, fallback_weights = fit_fused(patch, private=False)
    assert steps == fallback_steps == 6  # SGD steps, not Lightning's 3 batches
    assert weights.keys() == fallback_weights.keys()
    assert all(torch.equal(weights[k], fallback_weights[k]) for k in weights)


@pytest.mark.parametrize("private", [True, False])
def test_the_exit_runs_exit_handlers_and_flushes_the_output_either_way(tmp_path, private):
    script = (
        "import atexit, pathlib, sys; from fmnist_scaling.utils.compat import exit_without_teardown; "
        f"atexit.register(lambda: pathlib.Path({str(tmp_path / 'handled')!r}).write_text('yes')); "
        f"print('buffered', end=''); sys.stderr.write('said'); exit_without_teardown(private={private}); "
        "print(' after', end='')"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stderr == "said"
    # the private path ends the process at once; the fallback returns and Python exits as usual
    assert proc.stdout == ("buffered" if private else "buffered after")
    assert (tmp_path / "handled").read_text() == "yes"
