"""The LightningDataModule of any image dataset (:mod:`fmnist_scaling.data.datasets`; Fashion-MNIST
by default), with the scaling as a constructor argument.

Each split is held once as a uint8 tensor, on the training device when there is a trainer, and
batches are cut from it by indexing a seeded per-epoch permutation: no per-sample
``__getitem__``, no collate, no worker processes (see :class:`TensorBatches`). The scaling is
applied to each batch as it is cut: two small element-wise operations per step (about 1% of a
step here), where a scaled float32 copy of the training split would cost 172 MB of memory.

Scalings see flat images ``(N, H * W)`` whatever the network: each network says what it wants
(``input_shape``: flat, or ``(1, H, W)``) and the scaled batch is viewed in that shape (no copy),
so a mode and its per-pixel statistics are the same for every network.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import lightning as L
import torch
from torch import Tensor

from fmnist_scaling.data import sources, splits
from fmnist_scaling.data.datasets import DEFAULT, ImageDataset
from fmnist_scaling.data.scaling import Scaling
from fmnist_scaling.utils.errors import ConfigError

#: The evaluation passes' batch unless the config or the network says otherwise (the MLP's).
EVAL_BATCH_SIZE = 2000


class StudyData(Protocol):
    """What the model, the callbacks and the tools ask of a data module, beyond Lightning's
    hooks: a data module of your own provides these (:class:`ImageDataModule` does).

    Its training loader hands Lightning lists of ``steps_per_batch`` minibatches: the model takes
    one SGD step on each, so Lightning's batches count groups of SGD steps.
    """

    #: SGD steps in one Lightning training batch (``data.steps_per_batch``).
    steps_per_batch: int

    @property
    def steps_per_epoch(self) -> int:
        """SGD steps in one epoch on this process (its share of the split under DDP)."""

    def steps_in(self, batches: int | float) -> int:
        """SGD steps in ``batches`` Lightning training batches of one epoch (at most the epoch's)."""

    @property
    def val_loader_names(self) -> list[str]:
        """The names of the validation loaders, in order (``val``, ``train_full``): the metrics' prefixes."""

    def probe_batch(self) -> tuple[Tensor, Tensor]:
        """A fixed batch of scaled training inputs and their labels, for the diagnostics."""

    def scaled(self, name: str) -> tuple[Tensor, Tensor]:
        """A whole split (``train``, ``val``, ``test``), scaled, in the network's shape."""

    @property
    def classes(self) -> tuple[str, ...]:
        """The class names, by label."""


def study_data(trainer: L.Trainer) -> StudyData:
    """The data module of the trainer's run: Lightning sets ``trainer.datamodule`` when a run
    starts, but its ``Trainer`` does not declare the attribute to a type checker."""
    return trainer.datamodule  # type: ignore[attr-defined]  # set by Lightning's data connector


class EpochPermutation:
    """The training order: a fresh permutation per epoch, a function of ``(seed, epoch)`` only.

    Lightning calls ``set_epoch`` on a loader's ``sampler`` at the start of every epoch, resumed
    runs included, so a resumed run sees the same order as an uninterrupted one.
    """

    def __init__(self, size: int, seed: int) -> None:
        self.size, self.seed, self.epoch = size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def indices(self) -> Tensor:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return torch.randperm(self.size, generator=generator)


class TensorBatches:
    """Batches ``(transform(x[i]), y[i])`` of tensors already on their device.

    ``shuffle`` draws ``i`` from an :class:`EpochPermutation`; otherwise batches are contiguous
    slices (views, no copy). Under DDP each rank takes every ``world_size``-th index of the same
    permutation, padded by wrap-around to equal length as ``DistributedSampler`` does.

    With ``group=K`` each item is instead a list of up to K consecutive batches, cut and scaled
    as one block: the training loader hands Lightning K SGD steps at a time (see
    :class:`~fmnist_scaling.models.classifier.ScalingClassifier`). The batches, and their order, are the same
    for every K.
    """

    batch_sampler = None  # Lightning inspects loaders for one; batches here need none

    def __init__(
        self,
        x: Tensor,
        y: Tensor,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        transform: Callable[[Tensor], Tensor] | None = None,
        group: int | None = None,
    ) -> None:
        self.x, self.y, self.batch_size, self.group = x, y, batch_size, group
        self.transform = transform or (lambda batch: batch)
        self.rank, self.world_size = rank, world_size
        self.sampler = EpochPermutation(len(x), seed) if shuffle else None

    def _rows(self) -> int:
        return self.batch_size * (self.group or 1)

    def _rank_size(self) -> int:
        return -(-len(self.x) // self.world_size)

    def __len__(self) -> int:
        return -(-self._rank_size() // self._rows())

    def __iter__(self) -> Iterator[Any]:
        for x, y in self._blocks(self._rows()):
            if self.group is None:
                yield x, y
            else:
                yield list(zip(x.split(self.batch_size), y.split(self.batch_size)))

    def _blocks(self, rows: int) -> Iterator[tuple[Tensor, Tensor]]:
        if self.sampler is None and self.world_size == 1:
            for start in range(0, len(self.x), rows):
                yield self.transform(self.x[start : start + rows]), self.y[start : start + rows]
            return
        order = self.sampler.indices() if self.sampler is not None else torch.arange(len(self.x))
        if self.world_size > 1:
            padded = self._rank_size() * self.world_size
            order = torch.cat([order, order[: padded - len(order)]])[self.rank :: self.world_size]
        for block in order.to(self.x.device).split(rows):
            yield self.transform(self.x[block]), self.y[block]


class ImageDataModule(L.LightningDataModule):
    """A dataset's official training split, split again (seeded) into training and validation,
    and its official test split for test only.

    Args:
        scaling: the input scaling; fit on the training part of the split only.
        dataset: the dataset (:mod:`fmnist_scaling.data.datasets`); None: Fashion-MNIST.
        root: the data folder (torchvision layout) where the data is kept and cached.
        local_copy: a folder holding the original files, tried before downloading.
        download: whether torchvision may download the data when it is found nowhere else.
        verify: check the files against the dataset's known checksums (off for own data).
        val_size: images held out of the training split for validation (0: train on all, as the article).
        split_seed: the seed of the split; fixed, so every mode and seed sees the same split.
        batch_size: training batch size: the samples of one SGD step.
        steps_per_batch: SGD steps handed to Lightning at a time (K batches of ``batch_size``),
            so that Lightning's per-batch overhead, more than half a step of this small model on
            a CPU, is paid once per K steps. The steps are the same for any K; but
            ``trainer.limit_train_batches`` counts groups of K steps. 1: one step per batch.
        eval_batch_size: batch size of validation, test and the after-epoch training pass.
        eval_train: also pass over the whole training split after each epoch (the article's
            training accuracy, logged as ``train_full/acc``).
        probe_size: training images in the fixed probe batch of the diagnostics.
        seed: seed of the training order (the run's seed).
        input_shape: the shape of one input the network asks for (its ``input_shape``): flat
            (the default, ``(784,)`` for 28 x 28 images) or ``(1, H, W)``; any shape holding an
            image's pixels.
    """

    def __init__(
        self,
        scaling: Scaling,
        dataset: ImageDataset | None = None,
        root: str = "data",
        local_copy: str | None = None,
        download: bool = True,
        verify: bool = True,
        val_size: int = 5000,
        split_seed: int = 0,
        batch_size: int = 32,
        steps_per_batch: int = 16,
        eval_batch_size: int = EVAL_BATCH_SIZE,
        eval_train: bool = True,
        probe_size: int = 1000,
        seed: int = 0,
        input_shape: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        self.scaling, self.dataset = scaling, dataset if dataset is not None else DEFAULT()
        self.root, self.local_copy, self.download, self.verify = root, local_copy, download, verify
        self.val_size, self.split_seed = val_size, split_seed
        self.batch_size, self.steps_per_batch = batch_size, steps_per_batch
        self.eval_batch_size, self.eval_train = eval_batch_size, eval_train
        self.probe_size, self.seed = probe_size, seed
        self.input_shape = tuple(input_shape) if input_shape else None
        self.splits: dict[str, tuple[Tensor, Tensor]] = {}

    # ---- hooks, in the order Lightning calls them
    def prepare_data(self) -> None:
        """Only fetch: find, check and cache the files (once per machine, not per process)."""
        self.dataset.prepare(self.root, self.local_copy, self.download, self.verify)

    def setup(self, stage: str | None = None) -> None:
        """Split, fit the scaling on the training part, move the splits to the device. Idempotent."""
        if self.splits:
            return
        data = self.dataset.load(self.root, self.verify)
        problem = sources.shape_problem(data, len(self.dataset.classes))  # a dataset of your own too
        if problem is not None:
            raise sources.DataError(f"{self.dataset.name} does not load as images with labels: {problem}")
        check_input_shape(self.input_shape, tuple(data["train_images"].shape[1:]))
        images, labels = data["train_images"].flatten(1), data["train_labels"]
        splits.check_val_size(self.val_size, len(images), self.dataset.name)
        order = torch.randperm(len(images), generator=torch.Generator().manual_seed(self.split_seed))
        val_idx, train_idx = order[: self.val_size], order[self.val_size :]
        if not self.scaling.fitted:  # statistics restored from a checkpoint are kept as they are
            self.scaling.fit(images[train_idx])
        device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        self.scaling.to(device)
        self.splits = {
            splits.TRAIN: (images[train_idx].to(device), labels[train_idx].to(device)),
            splits.VAL: (images[val_idx].to(device), labels[val_idx].to(device)),
            splits.TEST: (data["test_images"].flatten(1).to(device), data["test_labels"].to(device)),
        }

    def train_dataloader(self) -> TensorBatches:
        x, y = self.splits[splits.TRAIN]
        return TensorBatches(
            x,
            y,
            self.batch_size,
            shuffle=True,
            seed=self.seed,
            transform=self.inputs,
            group=self.steps_per_batch,
            **self._shard(),
        )

    def val_dataloader(self) -> list[TensorBatches]:
        return [self._eval_loader(name) for name in self.val_loader_names]

    def test_dataloader(self) -> TensorBatches:
        return self._eval_loader(splits.TEST)

    # ---- what the model and callbacks ask of the data (StudyData)
    @property
    def steps_per_epoch(self) -> int:
        """SGD steps in one epoch on this process (its share of the training split under DDP); 0
        before the data is set up (a run that failed there planned none)."""
        if not self.splits:
            return 0
        world_size = self.trainer.world_size if self.trainer is not None else 1
        return math.ceil(len(self.splits[splits.TRAIN][0]) / world_size / self.batch_size)

    def steps_in(self, batches: int | float) -> int:
        """SGD steps in ``batches`` Lightning training batches of one epoch (at most the epoch's)."""
        return (
            self.steps_per_epoch
            if not math.isfinite(batches)
            else min(int(batches) * self.steps_per_batch, self.steps_per_epoch)
        )

    @property
    def val_loader_names(self) -> list[str]:
        """Names of the validation loaders, in order: ``val`` and/or ``train_full``."""
        return ([splits.VAL] if self.val_size > 0 else []) + ([splits.TRAIN_FULL] if self.eval_train else [])

    def probe_batch(self) -> tuple[Tensor, Tensor]:
        """A fixed batch of scaled training images: the first ``probe_size`` of the split."""
        x, y = self.splits[splits.TRAIN]
        return self.inputs(x[: self.probe_size]), y[: self.probe_size]

    def scaled(self, name: str) -> tuple[Tensor, Tensor]:
        """A whole split, scaled: ``(float32 images in the network's shape, labels)``."""
        x, y = self.splits[name]
        return self.inputs(x), y

    @property
    def classes(self) -> tuple[str, ...]:
        return self.dataset.classes

    def inputs(self, images: Tensor) -> Tensor:
        """Flat uint8 images ``(N, D)`` scaled, in the shape the network asks for."""
        x = self.scaling(images)
        return x.view(len(x), *self.input_shape) if self.input_shape and len(self.input_shape) > 1 else x

    def _eval_loader(self, name: str) -> TensorBatches:
        x, y = self.splits[splits.TRAIN if name == splits.TRAIN_FULL else name]
        return TensorBatches(x, y, self.eval_batch_size, shuffle=False, transform=self.inputs, **self._shard())

    def _shard(self) -> dict[str, int]:
        if self.trainer is None:
            return {"rank": 0, "world_size": 1}
        return {"rank": self.trainer.global_rank, "world_size": self.trainer.world_size}

    # ---- checkpoint state: the scaling's statistics, so evaluation reuses them
    def state_dict(self) -> dict[str, Any]:
        return {
            "scaling": self.scaling.config(),
            "scaling_state": {k: v.cpu() for k, v in self.scaling.state_dict().items()},
            "val_size": self.val_size,
            "split_seed": self.split_seed,
            "root": str(Path(self.root).resolve()),  # where evaluate finds the data again
            "dataset": f"{type(self.dataset).__module__}.{type(self.dataset).__qualname__}",
            "verify": self.verify,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scaling.load_state_dict(state["scaling_state"])


def eval_batch_size(configured: int | None, net: Any) -> int:
    """The evaluation passes' batch: as configured, else the network's own (``eval_batch_size``),
    else :data:`EVAL_BATCH_SIZE`."""
    if configured:
        return int(configured)
    return int(getattr(net, "eval_batch_size", EVAL_BATCH_SIZE))


def check_input_shape(shape: tuple[int, ...] | None, image: tuple[int, ...]) -> None:
    """A network's input shape must hold one image's pixels (``image``: height, width)."""
    if shape and math.prod(shape) != math.prod(image):
        flat, grid = (math.prod(image),), (1, *image)
        raise ConfigError(
            f"the network's input_shape={shape} is invalid: the images are {' x '.join(map(str, image))} "
            f"({math.prod(image)} values); use {flat} or {grid}"
        )
