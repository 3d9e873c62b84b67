"""Pictures for TensorBoard: what the scaling does to the inputs, and the test confusion matrix.

- ``inputs/images``: the same 16 training images after the run's scaling, stretched to 0..1 for
  display over the whole grid (so relative intensities stay), with the true range in
  ``inputs/range`` (text) and ``inputs/{min,max,mean,std}`` (scalars);
- ``inputs/values``: a histogram of all scaled pixel values of the probe batch;
- ``test/confusion_matrix``: counts on the test split, rows true class, columns predicted.
"""

from __future__ import annotations

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from torch import Tensor
from torchmetrics import Metric

from fmnist_scaling.data import splits
from fmnist_scaling.data.datamodule import study_data
from fmnist_scaling.data.datasets import DEFAULT

GRID_SIDE = 4  # 4 x 4 = 16 images
#: Equal-width histogram bins: numpy's fast path. TensorBoard's default ("tensorflow", ~1,500
#: exponential bins) took 3-4x longer on the 1,000,000 pre-activations of the probe batch.
HISTOGRAM_BINS = 128


def image_grid(x: Tensor, side: int = GRID_SIDE) -> Tensor:
    """``side**2`` square images, flat ``(N, D)`` or ``(N, 1, H, W)``, as one ``(1, H, W)`` image
    stretched to 0..1."""
    n = side * side
    x = x.flatten(1)
    pixels = int(x.shape[1] ** 0.5)
    tiles = x[:n].float().reshape(side, side, pixels, pixels).permute(0, 2, 1, 3).reshape(side * pixels, side * pixels)
    low, high = tiles.min(), tiles.max()
    return ((tiles - low) / (high - low).clamp_min(1e-12))[None]


def confusion_figure(matrix: Tensor, class_names: tuple[str, ...] = DEFAULT.classes):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = matrix.cpu()
    fig, ax = plt.subplots(figsize=(7, 6))
    ax.imshow(matrix, cmap="Blues")
    ticks = range(len(class_names))
    ax.set_xticks(ticks, class_names, rotation=45, ha="right")
    ax.set_yticks(ticks, class_names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    threshold = matrix.max() / 2
    for i in ticks:
        for j in ticks:
            value = int(matrix[i, j])
            colour = "white" if value > threshold else "black"
            ax.text(j, i, str(value), ha="center", va="center", fontsize=7, color=colour)
    accuracy = matrix.diag().sum() / matrix.sum().clamp_min(1)
    ax.set_title(f"test confusion matrix (accuracy {100 * float(accuracy):.1f}%)")
    fig.tight_layout()
    return fig


class TensorBoardVisuals(L.Callback):
    """Writes the pictures above to every TensorBoard logger of the trainer."""

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.global_step > 0:  # a resumed run drew them already
            return
        x, _ = study_data(trainer).probe_batch()
        stats = {"min": x.min(), "max": x.max(), "mean": x.mean(), "std": x.std()}
        stats = dict(zip(stats, torch.stack(list(stats.values())).tolist()))
        for tb in tensorboard_writers(trainer):
            tb.add_image("inputs/images", image_grid(x).cpu(), 0)
            tb.add_histogram("inputs/values", x.flatten().cpu(), 0, bins=HISTOGRAM_BINS)
            tb.add_text("inputs/range", ", ".join(f"{k} {v:.4g}" for k, v in stats.items()), 0)
            for key, value in stats.items():
                tb.add_scalar(f"inputs/{key}", value, 0)

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        writers = tensorboard_writers(trainer)
        if writers:
            names = getattr(study_data(trainer), "classes", None) or DEFAULT.classes  # StudyData.classes
            confusion = pl_module.test_confusion
            assert isinstance(confusion, Metric)  # the classifier's ConfusionMatrix
            figure = confusion_figure(confusion.compute(), tuple(names))
            for tb in writers:
                tb.add_figure(f"{splits.TEST}/confusion_matrix", figure, trainer.global_step, close=False)
            import matplotlib.pyplot as plt

            plt.close(figure)


def tensorboard_writers(trainer: L.Trainer) -> list:
    """The SummaryWriter of each TensorBoard logger of the trainer (none without one)."""
    return [logger.experiment for logger in trainer.loggers if isinstance(logger, TensorBoardLogger)]
