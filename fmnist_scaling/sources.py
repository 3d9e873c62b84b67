"""Where Fashion-MNIST comes from, checked, and decoded once into a ready cache.

In order: the data folder (``<root>/FashionMNIST/raw``, torchvision's layout) if it already holds
the four IDX files; a local copy of the four original ``.gz`` files (by default where Debian's
``dataset-fashion-mnist`` puts them); torchvision's download. torchvision reads the IDX files;
the decoded uint8 tensors are then cached as ``<root>/FashionMNIST/fmnist_uint8.pt`` so that later
runs load one file and never import torchvision.

``python -m fmnist_scaling.sources [root]`` fetches the data and says where it came from.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import sys
from pathlib import Path

import torch
from torch import Tensor

DEBIAN_COPY = "/usr/share/datasets/fashion-mnist"
SPLITS = ("train", "test")
_FILES = {
    # name: (uncompressed bytes, md5 of the uncompressed IDX file). The md5 of the data, not of
    # the .gz: Debian recompressed the archives, so their bytes differ from torchvision's.
    "train-images-idx3-ubyte": (47040016, "f4a8712d7a061bf5bd6d2ca38dc4d50a"),
    "train-labels-idx1-ubyte": (60008, "9018921c3c673c538a1fc5bad174d6f9"),
    "t10k-images-idx3-ubyte": (7840016, "8181f5470baa50b63fa0f6fddb340f0a"),
    "t10k-labels-idx1-ubyte": (10008, "15d484375f8d13e6eb1aabb0c3f46965"),
}
_PREFIX = {"train": "train", "test": "t10k"}
CACHE_NAME = "fmnist_uint8.pt"
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


class DataError(RuntimeError):
    """The data cannot be found, fetched or trusted; the message says what to do."""


def raw_folder(root: str | os.PathLike) -> Path:
    return Path(root) / "FashionMNIST" / "raw"


def cache_path(root: str | os.PathLike) -> Path:
    return Path(root) / "FashionMNIST" / CACHE_NAME


def prepare(root: str, local_copy: str | None = DEBIAN_COPY, download: bool = True, verify: bool = True) -> str:
    """Make sure the decoded cache exists under ``root``; return where the data came from."""
    cache = cache_path(root)
    if cache.is_file() and (not verify or _verified_mark(cache).is_file()):
        return f"cache {cache}"
    raw = raw_folder(root)
    if all((raw / name).is_file() for name in _FILES):
        source = f"data folder {raw}"
    elif local_copy and _has_copy(Path(local_copy)):
        _unpack(Path(local_copy), raw)
        source = f"local copy {local_copy}"
    else:
        tried = [f"the data folder {raw} (empty)"]
        tried.append(f"a local copy in {local_copy} (not there)" if local_copy else "no local copy (data.local_copy=null)")
        source = _download(root, tried) if download else None
        if not download:
            tried.append("no download (data.download=false)")
        if source is None:
            raise DataError(_not_found_message(root, tried))
    _build_cache(root, verify)
    return source


def load(root: str) -> dict[str, Tensor]:
    """The four tensors from the cache: ``{split}_images`` (N, 28, 28) uint8, ``{split}_labels``."""
    path = cache_path(root)
    try:
        data = torch.load(path, weights_only=True)
        if not all(f"{s}_{k}" in data for s in SPLITS for k in ("images", "labels")):
            raise ValueError("keys missing")
    except Exception as err:  # a truncated or foreign file: say which, and how to rebuild it
        reason = f"{type(err).__name__}: {str(err).splitlines()[0][:100]}"
        raise DataError(f"the data cache {path} is unreadable ({reason}); delete it to rebuild it from the IDX files") from None
    return data


def _has_copy(folder: Path) -> bool:
    return all((folder / f"{name}.gz").is_file() or (folder / name).is_file() for name in _FILES)


def _unpack(folder: Path, raw: Path) -> None:
    raw.mkdir(parents=True, exist_ok=True)
    for name in _FILES:
        target, partial = raw / name, raw / f"{name}.partial"
        source = folder / f"{name}.gz"
        try:
            if source.is_file():
                with gzip.open(source, "rb") as src, open(partial, "wb") as dst:
                    shutil.copyfileobj(src, dst)
            else:
                shutil.copyfile(folder / name, partial)
        except (OSError, EOFError, gzip.BadGzipFile) as err:
            partial.unlink(missing_ok=True)
            raise DataError(f"cannot unpack {source}: {err}; the local copy is damaged (reinstall it, or set data.local_copy)") from None
        os.replace(partial, target)  # never leave a half-written IDX file under its real name


def _download(root: str, tried: list[str]) -> str | None:
    from torchvision.datasets import FashionMNIST

    try:
        FashionMNIST(root, train=True, download=True)
        return "torchvision download"
    except Exception as err:  # no network, a mirror down: report it among the things tried
        tried.append(f"torchvision's download ({type(err).__name__}: {str(err).splitlines()[0][:120]})")
        return None


def _not_found_message(root: str, tried: list[str]) -> str:
    return (
        "Fashion-MNIST not found. Tried: " + "; ".join(tried) + ". Fix: connect to the internet and rerun "
        f"(torchvision downloads it into {root}), or install the Debian package: "
        "`sudo apt-get install -y dataset-fashion-mnist`, or copy the four .gz files into a folder "
        "and pass data.local_copy=<folder>."
    )


def _check_file(path: Path, verify: bool) -> None:
    if not verify:
        return
    size, md5 = _FILES[path.name]
    actual_size = path.stat().st_size
    digest = hashlib.md5(path.read_bytes()).hexdigest() if actual_size == size else None
    if digest != md5:
        found = f"{actual_size} bytes" + (f", md5 {digest}" if digest else "")
        raise DataError(
            f"{path} is not the Fashion-MNIST file it is named after (expected {size} bytes with md5 {md5}; found {found}). "
            f"Delete {path.parent.parent} to fetch the data again, or set data.verify=false for a dataset of your own."
        )


def _build_cache(root: str, verify: bool) -> None:
    from torchvision.datasets.mnist import read_image_file, read_label_file

    raw = raw_folder(root)
    data = {}
    for split in SPLITS:
        images_file = raw / f"{_PREFIX[split]}-images-idx3-ubyte"
        labels_file = raw / f"{_PREFIX[split]}-labels-idx1-ubyte"
        for path in (images_file, labels_file):
            _check_file(path, verify)
        try:
            images, labels = read_image_file(str(images_file)), read_label_file(str(labels_file))
        except Exception as err:  # torchvision's reader asserts on a bad header or a short file
            raise DataError(f"cannot read the IDX files in {raw} ({type(err).__name__}: {err}); delete them to fetch the data again") from None
        if images.ndim != 3 or images.shape[0] != labels.shape[0]:
            raise DataError(
                f"{images_file} holds images of shape {tuple(images.shape)} but {labels_file} holds {labels.shape[0]} labels: "
                "they must match one to one"
            )
        if labels.numel() and (labels.min() < 0 or labels.max() >= len(CLASSES)):
            raise DataError(f"{labels_file} has labels outside 0..{len(CLASSES) - 1}")
        data[f"{split}_images"], data[f"{split}_labels"] = images.contiguous(), labels.to(torch.int64)
    path = cache_path(root)
    partial = path.with_suffix(f".partial{os.getpid()}")
    torch.save(data, partial)
    os.replace(partial, path)  # atomic: parallel jobs never read a half-written cache
    # a cache built without the checksums is not taken for verified data later
    if verify:
        _verified_mark(path).touch()
    else:
        _verified_mark(path).unlink(missing_ok=True)


def _verified_mark(cache: Path) -> Path:
    return cache.with_suffix(".verified")


def main(argv: list[str]) -> int:
    root = argv[0] if argv else "data"
    try:
        print(f"Fashion-MNIST ready in {root} (from {prepare(root)})")
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
