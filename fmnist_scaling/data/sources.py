"""Where an IDX dataset (Fashion-MNIST, MNIST, KMNIST: :mod:`fmnist_scaling.data.datasets`) comes
from, checked, and decoded once into a ready cache. Every function takes the dataset; without
one, Fashion-MNIST.

In order: the data folder (``<root>/<folder>/raw``, torchvision's layout, e.g.
``data/FashionMNIST/raw``) if it already holds the four IDX files; a local copy of the four
original ``.gz`` files (for Fashion-MNIST by default where Debian's ``dataset-fashion-mnist`` puts
them); torchvision's download. torchvision reads the IDX files; the decoded uint8 tensors are then
cached as ``<root>/<folder>/<cache_name>`` (``fmnist_uint8.pt``) so that later runs load one file and
never import torchvision.

What a run trains on is checked every time, not only when the cache is built: the cache holds an
md5 digest of each tensor, and each run recomputes them once (about 0.08 s for the 55 MB, in
``prepare``; its ``load`` then only re-reads the same file) and checks shapes and label range.
With ``verify`` (the default) the digests must also be those of the real
dataset, where the dataset pins them (Fashion-MNIST does; the files' sizes and, where pinned,
their md5s are checked before decoding). A damaged, truncated or outdated cache is rebuilt from the IDX files, with a
warning; one that cannot be rebuilt is refused with one line that says what to do.

Any number of processes may prepare the same empty data folder at once: the first one unpacks
and caches under a lock, the others wait for it and then use its cache; every file is written
under a temporary name and renamed into place, so no process ever reads a half-written file.

``python -m fmnist_scaling.data.sources [root]`` fetches Fashion-MNIST and says where it came from.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import hashlib
import os
import shutil
import sys
import threading
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from fmnist_scaling.data.datasets import TENSORS, FashionMNIST, IDXDataset
from fmnist_scaling.utils.errors import BadInput, Fault, describe_os_error
from fmnist_scaling.utils.files import atomic_file
from fmnist_scaling.utils.log import log

if TYPE_CHECKING:  # torch is imported where it is used: `--help` answers without it
    from torch import Tensor

FASHION_MNIST = FashionMNIST()
DEBIAN_COPY = FashionMNIST.system_copy
SPLITS = ("train", "test")
_FILES = FashionMNIST.files
_PREFIX = {"train": "train", "test": "t10k"}
#: The cache's layout; a cache of another version is rebuilt.
CACHE_FORMAT = 2


class DataError(BadInput):
    """The data cannot be found, fetched or trusted; the message says what to do (exit 2)."""


class DataFault(Fault):
    """The data folder could not be written (disk full, I/O error); the message says what to do."""


def raw_folder(root: str | os.PathLike, dataset: IDXDataset = FASHION_MNIST) -> Path:
    return Path(root) / dataset.folder / "raw"


def cache_path(root: str | os.PathLike, dataset: IDXDataset = FASHION_MNIST) -> Path:
    return Path(root) / dataset.folder / dataset.cache_name


#: Caches a ``prepare`` of this process has checked, by their file's identity (inode, mtime, size)
#: and ``verify``: a later ``prepare`` (Lightning calls it again in fit and in test) trusts the same
#: file unread, and the ``load`` that follows reads it without hashing it again. Only
#: the identity is kept, not the tensors: holding 55 MB from ``prepare`` to ``setup`` raised a
#: run's peak memory by as much.
_checked: dict[Path, tuple] = {}
#: Checks started by :func:`check_ahead`, by cache: ``prepare`` waits for its cache's one.
_ahead: dict[Path, threading.Thread] = {}


def prepare(
    root: str,
    local_copy: str | None = DEBIAN_COPY,
    download: bool = True,
    verify: bool = True,
    dataset: IDXDataset = FASHION_MNIST,
) -> str:
    """Make sure a sound decoded cache exists under ``root``; return where the data came from."""
    cache = cache_path(root, dataset)
    ahead = _ahead.pop(cache, None)
    if ahead is not None:
        ahead.join()
    if _checked.get(cache) == _stamp(cache, verify):  # this process checked this very file: unchanged since
        return f"cache {cache}"
    problem = _check_cache(cache, verify, dataset)
    if problem is None:
        return f"cache {cache}"
    with _lock(root, dataset):  # one process builds; the others wait here, then find its cache
        problem = _check_cache(cache, verify, dataset)
        if problem is None:
            return f"cache {cache}"
        try:
            source = _fetch(root, local_copy, download, dataset)
            _build_cache(root, verify, dataset)
        except OSError as err:
            raise _write_error(err, root) from None
    if problem != "missing":
        log.warning(f"warning: the data cache {cache} {problem}; rebuilt it from the IDX files")
    if _check_cache(cache, verify, dataset) is not None:  # the file system lost what was just written
        raise DataFault(
            f"the data cache {cache} does not read back as written; check the disk, delete {cache.parent} and run again"
        )
    return source


def check_ahead(root: str, verify: bool = True, dataset: IDXDataset = FASHION_MNIST) -> None:
    """Check the cache under ``root`` in a thread, as ``prepare`` would, while the caller goes on
    (a run: importing Lightning, on one core). Reading the file and its md5 (0.14 s of every run)
    let go of the interpreter's lock, so they take the other core. A sound cache is noted for
    ``prepare``, which waits for this thread and then trusts the file unread; a missing or bad one
    is left for ``prepare`` to fetch, rebuild and say: the thread writes and prints nothing."""
    cache = cache_path(root, dataset)
    if cache in _ahead or _checked.get(cache) == _stamp(cache, verify):
        return
    # what torch.load imports on its first call: here, not in the thread beside another import
    import torch.utils.serialization  # noqa: F401

    def check() -> None:
        with contextlib.suppress(Exception):
            _check_cache(cache, verify, dataset)

    _ahead[cache] = threading.Thread(target=check, name="data check", daemon=True)
    _ahead[cache].start()


def load(root: str, verify: bool = True, dataset: IDXDataset = FASHION_MNIST) -> dict[str, Tensor]:
    """The four checked tensors: ``{split}_images`` (N, H, W) uint8, ``{split}_labels`` int64."""
    path = cache_path(root, dataset)
    hash_it = _checked.get(path) != _stamp(path, verify)
    data, problem = _read_checked(path, verify, dataset, hash_it=hash_it)
    if problem is not None:
        raise DataError(f"the data cache {path} {problem}; delete {path.parent} to fetch the data again")
    return data


def _check_cache(path: Path, verify: bool, dataset: IDXDataset) -> str | None:
    """None if the cache at ``path`` is sound (noted in ``_checked`` for the next ``load``); else why not."""
    if not path.is_file():
        return "missing"
    _, problem = _read_checked(path, verify, dataset)
    if problem is None:
        _checked[path] = _stamp(path, verify)
    return problem


def _read_checked(
    path: Path, verify: bool, dataset: IDXDataset, hash_it: bool = True
) -> tuple[dict[str, Tensor], str | None]:
    import torch
    from torch import Tensor

    try:
        stored = torch.load(path, weights_only=True)
    except FileNotFoundError:
        return {}, "is missing"
    except Exception as err:  # a truncated or foreign file
        return {}, f"is unreadable ({type(err).__name__}: truncated, or not a cache of this project)"
    if not isinstance(stored, dict) or stored.get("format") != CACHE_FORMAT:
        return {}, "was written by another version of fmnist_scaling"
    found = {name: stored.get(name) for name in TENSORS}
    inconsistent = shape_problem(found, len(dataset.classes))
    if inconsistent:
        return {}, f"is damaged ({inconsistent})"
    data = {name: tensor for name, tensor in found.items() if isinstance(tensor, Tensor)}  # all of them
    problem: str | None = None
    if hash_it:
        digests = {name: _digest(tensor) for name, tensor in data.items()}
        pinned = dataset.digests if verify else None
        expected = pinned if pinned is not None else stored.get("digests", {})
        wrong = [name for name in TENSORS if digests[name] != expected.get(name)]
        if wrong and pinned is not None and digests == stored.get("digests"):
            problem = (
                f"holds data other than {dataset.name} ({', '.join(wrong)}; built with data.verify=false: "
                "set data.verify=false to use a dataset of your own)"
            )
        elif wrong:
            problem = f"is damaged (the md5 of {', '.join(wrong)} differs from the one it was written with)"
    return data, problem


def shape_problem(data: Mapping[str, object], num_classes: int) -> str | None:
    """Why ``data`` is not internally consistent (shapes, types, label range), or None."""
    import torch
    from torch import Tensor

    for split in SPLITS:
        images, labels = data[f"{split}_images"], data[f"{split}_labels"]
        if not isinstance(images, Tensor) or not isinstance(labels, Tensor):
            return f"no {split} tensors"
        if images.dtype != torch.uint8 or images.ndim != 3:
            return f"{split} images of shape {tuple(images.shape)} and type {images.dtype}, not (N, H, W) uint8"
        if labels.dtype != torch.int64 or labels.shape != images.shape[:1]:
            return f"{len(images)} {split} images but labels of shape {tuple(labels.shape)}: they must match one to one"
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
            return f"{split} labels outside 0..{num_classes - 1}"
    return None


def _digest(tensor: Tensor) -> str:
    return hashlib.md5(tensor.contiguous().numpy().data).hexdigest()


def _stamp(path: Path, verify: bool) -> tuple:
    try:
        stat = path.stat()
    except OSError:
        return (None,)
    return (stat.st_ino, stat.st_mtime_ns, stat.st_size, verify)


@contextlib.contextmanager
def _lock(root: str, dataset: IDXDataset) -> Iterator[None]:
    """An exclusive lock on ``<root>/<folder>`` across processes (where the system has one)."""
    folder = Path(root) / dataset.folder
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle = open(folder / ".lock", "a")  # noqa: SIM115 - held by the with block below
    except OSError as err:
        raise _write_error(err, root) from None
    with handle:
        try:
            import fcntl

            fcntl.flock(handle, fcntl.LOCK_EX)
        except (ImportError, OSError):  # no flock here (Windows, some network file systems):
            pass  # the temporary names and atomic renames below still keep every file whole
        yield


_FAULTS = {errno.ENOSPC, errno.EDQUOT, errno.EIO}  # the machine's fault, not the path's


def _write_error(err: OSError, root: str) -> DataError | DataFault:
    message = describe_os_error(err, f"write the data folder data.root={root}")
    message += " (the data takes 106 MB; data.root=<folder> puts it elsewhere)"
    return DataFault(message) if err.errno in _FAULTS else DataError(message)


def _fetch(root: str, local_copy: str | None, download: bool, dataset: IDXDataset) -> str:
    """Make sure the four IDX files are in the data folder; return where they came from."""
    raw = raw_folder(root, dataset)
    if all((raw / name).is_file() for name in dataset.files):
        return f"data folder {raw}"
    if local_copy and _has_copy(Path(local_copy), dataset):
        _unpack(Path(local_copy), raw, dataset)
        # a notice on stderr, as every data notice (stdout holds the run's own lines)
        log.warning(f"{dataset.name} unpacked from {local_copy} into {raw.resolve()}")
        return f"local copy {local_copy}"
    tried = [f"the data folder {raw} (empty)"]
    tried.append(f"a local copy in {local_copy} (not there)" if local_copy else "no local copy (data.local_copy=null)")
    if download and _download(root, tried, dataset):
        return "torchvision download"
    if not download:
        tried.append("no download (data.download=false)")
    raise DataError(_not_found_message(root, tried, dataset))


def _has_copy(folder: Path, dataset: IDXDataset) -> bool:
    return all((folder / f"{name}.gz").is_file() or (folder / name).is_file() for name in dataset.files)


def _unpack(folder: Path, raw: Path, dataset: IDXDataset) -> None:
    raw.mkdir(parents=True, exist_ok=True)
    for name in dataset.files:
        source = folder / f"{name}.gz"
        try:
            with atomic_file(raw / name) as dst:
                if source.is_file():
                    with gzip.open(source, "rb") as src:
                        shutil.copyfileobj(src, dst)
                else:
                    with open(folder / name, "rb") as src:
                        shutil.copyfileobj(src, dst)
        except (EOFError, gzip.BadGzipFile, zlib.error) as err:
            raise DataError(
                f"cannot unpack {source}: {err}; the local copy is damaged (reinstall it, or set data.local_copy)"
            ) from None


def _download(root: str, tried: list[str], dataset: IDXDataset) -> bool:
    import torchvision.datasets

    try:
        getattr(torchvision.datasets, dataset.torchvision_class)(root, train=True, download=True)
        return True
    except Exception as err:  # no network, a mirror down: report it among the things tried
        tried.append(f"torchvision's download ({type(err).__name__}: {str(err).splitlines()[0][:120]})")
        return False


def _not_found_message(root: str, tried: list[str], dataset: IDXDataset) -> str:
    hint = f", or {dataset.install_hint}" if dataset.install_hint else ""
    return (
        f"{dataset.name} not found. Tried: " + "; ".join(tried) + ". Fix: connect to the internet and rerun "
        f"(torchvision downloads it into {root}){hint}, or copy the four .gz files into a folder "
        "and pass data.local_copy=<folder>."
    )


def _check_file(path: Path, verify: bool, dataset: IDXDataset) -> None:
    if not verify:
        return
    size, md5 = dataset.files[path.name]
    actual_size = path.stat().st_size
    digest = hashlib.md5(path.read_bytes()).hexdigest() if actual_size == size and md5 else None
    if actual_size != size or digest != md5:
        found = f"{actual_size} bytes" + (f", md5 {digest}" if digest else "")
        expected = f"{size} bytes" + (f" with md5 {md5}" if md5 else "")
        raise DataError(
            f"{path} is not the {dataset.name} file it is named after "
            f"(expected {expected}; found {found}). "
            f"Delete {path.parent.parent} to fetch the data again, or set data.verify=false for a dataset of your own."
        )


def _build_cache(root: str, verify: bool, dataset: IDXDataset) -> None:
    import torch
    from torchvision.datasets.mnist import read_image_file, read_label_file

    raw = raw_folder(root, dataset)
    data = {}
    for split in SPLITS:
        images_file = raw / f"{_PREFIX[split]}-images-idx3-ubyte"
        labels_file = raw / f"{_PREFIX[split]}-labels-idx1-ubyte"
        for path in (images_file, labels_file):
            _check_file(path, verify, dataset)
        try:
            images, labels = read_image_file(str(images_file)), read_label_file(str(labels_file))
        except Exception as err:  # torchvision's reader asserts on a bad header or a short file
            raise DataError(
                f"cannot read the IDX files in {raw} ({type(err).__name__}: {err}); delete them to fetch the data again"
            ) from None
        data[f"{split}_images"], data[f"{split}_labels"] = images.contiguous(), labels.to(torch.int64)
    problem = shape_problem(data, len(dataset.classes))
    if problem is None and verify and tuple(data["train_images"].shape[1:]) != dataset.image_shape:
        problem = f"images of {tuple(data['train_images'].shape[1:])} pixels, not {dataset.image_shape}"
    if problem is not None:
        raise DataError(
            f"the IDX files in {raw} are not a dataset of grey images with labels "
            f"0..{len(dataset.classes) - 1}: {problem}"
        )
    digests = {name: _digest(tensor) for name, tensor in data.items()}
    with atomic_file(cache_path(root, dataset)) as f:
        torch.save({"format": CACHE_FORMAT, **data, "digests": digests}, f)


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m fmnist_scaling.data.sources",
        description="Find, check and cache Fashion-MNIST: the data folder, then the Debian copy "
        f"({DEBIAN_COPY}), then torchvision's download; say where it came from.",
    )
    parser.add_argument("root", nargs="?", default="data", help="the data folder (default: data)")
    root = parser.parse_args(argv).root
    try:
        log.info(f"Fashion-MNIST ready in {root} (from {prepare(root)})")
    except (DataError, DataFault) as err:
        log.error(f"error: {err}")
        return err.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
