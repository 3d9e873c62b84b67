"""The splits a run is measured on and the names of its metrics, as TensorBoard, the records
(``metrics.json``) and the summaries spell them: the one place that names them.

``train`` is the training part (its metrics, ``train/*``, are running means over each epoch's
steps); ``val`` is held out of it (``data.val_size``); ``train_full`` is the whole training part
evaluated after each epoch, as ``val`` is; ``test`` is the dataset's test split.
"""

from fmnist_scaling.utils.errors import ConfigError

TRAIN, VAL, TRAIN_FULL, TEST = "train", "val", "train_full", "test"
#: The evaluation passes, in the order they run: after each epoch, then the test.
EVAL_SPLITS = (VAL, TRAIN_FULL, TEST)


def acc(split: str) -> str:
    """The name of a split's accuracy (``val/acc``)."""
    return f"{split}/acc"


def loss(split: str) -> str:
    """The name of a split's mean cross-entropy (``val/loss``)."""
    return f"{split}/loss"


def check_val_size(val_size: int, size: int, dataset: str) -> None:
    """``data.val_size`` must leave images to train on: checked before anything runs for a
    dataset whose size its class declares, and again on the images loaded (your own data)."""
    if not 0 <= val_size < size:
        raise ConfigError(
            f"data.val_size={val_size} is invalid: must be an integer in 0..{size - 1} "
            f"({dataset} has {size:,} training images; 0: train on all)"
        )
