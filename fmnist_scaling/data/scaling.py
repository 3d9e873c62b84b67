"""Input scaling modes: the variable this project studies.

A scaling maps uint8 images, flattened to ``(N, D)``, onto float32 model inputs. Modes with
statistics learn them with :meth:`Scaling.fit` on the training split only; the statistics are
plain tensors, so they travel in checkpoints (``state_dict``) and evaluation reuses them instead
of recomputing them elsewhere.

Adding a mode takes one subclass here (or in any importable module) and one yaml in
``conf/scaling/`` whose ``_target_`` names it. Constructor arguments must be stored as public
attributes of the same name: :meth:`Scaling.config` rebuilds the mode from them.
"""

from __future__ import annotations

from typing import Annotated, Any

import torch
from torch import Tensor

#: The largest value a uint8 pixel can take: the default of the modes that need the pixel range.
#: The configs pass the chosen dataset's own (``${dataset:max_value}``: 16 for the 8 x 8 digits).
PIXEL_MAX = 255.0
#: A constructor argument that must be > 0 (a pixel range, a floor): the config's schema reads
#: the bound from the annotation (:mod:`fmnist_scaling.run.schema`).
Positive = Annotated[float, "> 0"]

#: Images per chunk when fitting statistics: float64 sums stay exact without a 60,000 x 784
#: float64 copy (376 MB) of the training set.
_FIT_CHUNK = 8192


class Scaling:
    """Base class: ``scaling.fit(train_images)`` then ``scaling(images) -> float32``."""

    #: Whether this mode has statistics to learn from the training split.
    needs_fit: bool = False

    def __init__(self) -> None:
        self.fitted = not self.needs_fit

    def fit(self, images: Tensor) -> Scaling:
        """Learn statistics from training images ``(N, D)``; modes without statistics keep none."""
        if images.ndim != 2 or images.shape[0] == 0:
            raise ValueError(f"fit expects a non-empty (N, D) batch of images, got shape {tuple(images.shape)}")
        self._fit(images)
        self.fitted = True
        return self

    def __call__(self, images: Tensor) -> Tensor:
        if not self.fitted:
            raise RuntimeError(f"{type(self).__name__} must be fit on the training images before use")
        return self.transform(images.to(torch.float32))

    def transform(self, x: Tensor) -> Tensor:
        """Scale float32 images ``(N, D)`` holding raw pixel values."""
        raise NotImplementedError

    def _fit(self, images: Tensor) -> None:
        pass

    # Statistics and settings, kept apart so that checkpoints hold only tensors and primitives.
    def state_dict(self) -> dict[str, Tensor]:
        return {k: v for k, v in vars(self).items() if isinstance(v, Tensor)}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        for key, value in state.items():
            setattr(self, key, value)
        self.fitted = True

    def config(self) -> dict[str, Any]:
        """A Hydra-instantiable description: ``_target_`` plus the constructor arguments."""
        args = {k: v for k, v in vars(self).items() if not k.startswith("_") and k != "fitted"}
        args = {k: v for k, v in args.items() if not isinstance(v, Tensor)}
        return {"_target_": f"{type(self).__module__}.{type(self).__qualname__}", **args}

    def to(self, device: torch.device | str) -> Scaling:
        for key, value in self.state_dict().items():
            setattr(self, key, value.to(device))
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "_target_")
        return f"{type(self).__name__}({args})"


class Shifted(Scaling):
    """``x / max_value + offset``: the ``max`` inputs moved by a constant. Not one of the study's
    modes (no yaml): the threshold law's test case, where the largest eigenvalue λ of E[x xᵀ]
    grows along the mean direction while the spread of the inputs stays what ``max`` gives
    (``python -m fmnist_scaling.tools.threshold --cases max scaling._target_=...Shifted +scaling.offset=1``)."""

    def __init__(self, max_value: Positive = PIXEL_MAX, offset: float = 0.0) -> None:
        super().__init__()
        if not max_value > 0:
            raise ValueError(f"max_value must be > 0, got {max_value!r}")
        self.max_value, self.offset = float(max_value), float(offset)

    def transform(self, x: Tensor) -> Tensor:
        return x / self.max_value + self.offset


class Whitened(Scaling):
    """``x / max_value``, centred and whitened (ZCA: rotated onto the principal axes, each divided
    by its standard deviation, rotated back), then scaled so that the mean squared norm of an
    input is what ``max`` gives. Not one of the study's modes (no yaml): the threshold law's test
    case where λ, the largest eigenvalue of E[x xᵀ], falls about a hundredfold while the inputs'
    size stays the same (``python -m fmnist_scaling.tools.threshold --cases max
    scaling._target_=fmnist_scaling.data.scaling.Whitened``). ``eps`` floors each variance, in
    units of the squared pixel range, so that the near-constant border pixels are not blown up."""

    needs_fit = True

    def __init__(self, max_value: Positive = PIXEL_MAX, eps: Positive = 0.01) -> None:
        super().__init__()
        for name, value in (("max_value", max_value), ("eps", eps)):
            if not value > 0:
                raise ValueError(f"{name} must be > 0, got {value!r}")
        self.max_value, self.eps = float(max_value), float(eps)

    def _fit(self, images: Tensor) -> None:
        total = torch.zeros(images.shape[1], dtype=torch.float64)
        second = torch.zeros(images.shape[1], images.shape[1], dtype=torch.float64)
        for chunk in images.split(_FIT_CHUNK):
            x = chunk.to(torch.float64) / self.max_value
            total += x.sum(0)
            second += x.T @ x
        mean, second = total / len(images), second / len(images)
        values, vectors = torch.linalg.eigh(second - torch.outer(mean, mean))
        values = values.clamp_min(0.0)
        gains = (values + self.eps).rsqrt()
        # the whitened inputs' mean squared norm, sum(v / (v + eps)), brought to that of max's: trace(E[x xᵀ])
        size = (second.trace() / (values * gains**2).sum()).sqrt()
        self.mean = mean.to(torch.float32)
        self.whiten = (vectors * (gains * size) @ vectors.T).to(torch.float32)

    def transform(self, x: Tensor) -> Tensor:
        return (x / self.max_value - self.mean) @ self.whiten


def _moments(images: Tensor, dim: int | None) -> tuple[Tensor, Tensor]:
    """Mean and (population) std of raw pixel values, in float64, over all pixels or per feature."""
    total = torch.zeros((), dtype=torch.float64) if dim is None else torch.zeros(images.shape[1], dtype=torch.float64)
    total_sq = total.clone()
    for chunk in images.split(_FIT_CHUNK):
        x = chunk.to(torch.float64)
        total += x.sum() if dim is None else x.sum(dim=0)
        total_sq += (x * x).sum() if dim is None else (x * x).sum(dim=0)
    count = images.numel() if dim is None else images.shape[0]
    mean = total / count
    var = (total_sq / count - mean * mean).clamp_min(0.0)
    return mean.to(torch.float32), var.sqrt().to(torch.float32)


class NoScaling(Scaling):
    """``none``: raw pixel values (0..255 for 8-bit images) as floats (the article's failing case)."""

    def transform(self, x: Tensor) -> Tensor:
        return x


class MaxScaling(Scaling):
    """``max``: divide by the largest possible value, ``max_value`` (255 for 8-bit images: the article's fix)."""

    def __init__(self, max_value: Positive = PIXEL_MAX) -> None:
        super().__init__()
        if not max_value > 0:
            raise ValueError(f"max_value must be > 0, got {max_value!r}")
        self.max_value = float(max_value)

    def transform(self, x: Tensor) -> Tensor:
        return x / self.max_value


class MinMaxScaling(Scaling):
    """``minmax``: per image, ``(x - min) / (max - min)``; a blank image maps to zeros."""

    def transform(self, x: Tensor) -> Tensor:
        low = x.amin(dim=1, keepdim=True)
        span = x.amax(dim=1, keepdim=True) - low
        return (x - low) / span.clamp_min(torch.finfo(x.dtype).tiny)


class Standardize(Scaling):
    """``standard``: ``(x - mean) / std`` with one mean and std over all training pixels."""

    needs_fit = True

    def _fit(self, images: Tensor) -> None:
        self.mean, self.std = _moments(images, dim=None)
        if self.std <= 0:
            raise ValueError("the training images are constant: their std is 0, standardizing is undefined")

    def transform(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


class PerPixelStandardize(Scaling):
    """``per_pixel``: a z-score per pixel position, from training statistics.

    Border pixels are nearly always 0 (their std goes down to 4e-4 of the pixel range), so a
    plain z-score would turn a faint test pixel into a value near 280. ``eps`` floors each std,
    in units of the pixel range ``max_value``: 0.01 means no pixel's std counts as less than 2.55
    grey levels of 255.
    """

    needs_fit = True

    def __init__(self, eps: Positive = 0.01, max_value: Positive = PIXEL_MAX) -> None:
        super().__init__()
        for name, value in (("eps", eps), ("max_value", max_value)):
            if not value > 0:
                raise ValueError(f"{name} must be > 0, got {value!r}")
        self.eps, self.max_value = float(eps), float(max_value)

    def _fit(self, images: Tensor) -> None:
        self.mean, std = _moments(images, dim=0)
        self.std = std.clamp_min(self.eps * self.max_value)

    def transform(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


class Centered(Scaling):
    """``centered``: the pixel range 0..``max_value`` (0..255) mapped linearly onto -1..1."""

    def __init__(self, max_value: Positive = PIXEL_MAX) -> None:
        super().__init__()
        if not max_value > 0:
            raise ValueError(f"max_value must be > 0, got {max_value!r}")
        self.max_value = float(max_value)

    def transform(self, x: Tensor) -> Tensor:
        return x / (self.max_value / 2) - 1.0
