"""The datasets: one class each, and one yaml in ``conf/data/`` that chooses it (``data=<name>``).

A dataset says where its images come from, how they are checked, and the facts the rest of the
project reads from it: the image shape (the networks' input), the classes (the confusion matrix,
per-class accuracy), the official train/test sizes (the split, the progress bar) and the largest
value a pixel can take (``scaling=max`` divides by it). The facts are class attributes, readable
without torch (the config check and the config's ``${dataset:...}`` resolver read them before a
run starts); loading imports torch.

- :class:`FashionMNIST` (the default), :class:`MNIST`, :class:`KMNIST`: the four IDX files of the
  MNIST family, found in the data folder, in a local copy, or downloaded by torchvision; checked
  and decoded once into a cache (:mod:`fmnist_scaling.data.sources`).
- :class:`Digits`: scikit-learn's bundled 8 x 8 handwritten digits (1,797 images, values 0..16),
  offline everywhere scikit-learn is installed (``pip install -e '.[digits]'``), split by a
  fixed seeded permutation into 1,437 training and 360 test images.

A dataset of your own: subclass :class:`IDXDataset` (IDX files) or :class:`ImageDataset` (anything:
``prepare`` and ``load``), and point a yaml's ``dataset._target_`` at it (docs/extending.md).
"""

from __future__ import annotations

import importlib
import math
from typing import TYPE_CHECKING, Any, ClassVar

from fmnist_scaling.utils.errors import ConfigError

if TYPE_CHECKING:
    from torch import Tensor

#: Decoded tensors every dataset hands over: uint8 images (N, H, W), int64 labels (N,).
TENSORS = ("train_images", "train_labels", "test_images", "test_labels")


class ImageDataset:
    """A dataset of grey images with integer labels, its official train and test splits."""

    #: As printed ("Fashion-MNIST").
    name: ClassVar[str]
    #: The folder under ``data.root`` that holds it (torchvision's name, where it has one).
    folder: ClassVar[str]
    #: Height and width of one image.
    image_shape: ClassVar[tuple[int, int]]
    #: The class names, by label.
    classes: ClassVar[tuple[str, ...]]
    #: Images in the official training split (the validation split is taken from it) and test split.
    train_size: ClassVar[int]
    test_size: ClassVar[int]
    #: The largest value a pixel can take: what ``scaling=max`` divides by.
    max_value: ClassVar[float]

    @classmethod
    def pixels(cls) -> int:
        return math.prod(cls.image_shape)

    def prepare(self, root: str, local_copy: str | None, download: bool, verify: bool) -> str:
        """Make the data ready to load under ``root``; return where it came from. Raises
        :class:`~fmnist_scaling.data.sources.DataError` with what to do when it cannot."""
        raise NotImplementedError

    def load(self, root: str, verify: bool) -> dict[str, Tensor]:
        """The checked tensors of :data:`TENSORS`."""
        raise NotImplementedError

    def check_ahead(self, root: str, verify: bool) -> None:
        """Optional: start checking data already under ``root`` in the background, for the next
        ``prepare`` to wait for instead of doing (a run calls it before importing Lightning, seconds
        on one core). Nothing here: a dataset without it is checked by ``prepare`` alone."""

    def describe(self) -> dict[str, Any]:
        """What a run's record says about its data."""
        return {
            "name": self.name,
            "class": f"{type(self).__module__}.{type(self).__qualname__}",
            "image_shape": list(self.image_shape),
            "train_size": self.train_size,
            "test_size": self.test_size,
            "max_value": self.max_value,
        }


class IDXDataset(ImageDataset):
    """A dataset of the MNIST family: four IDX files (``train-``/``t10k-`` images and labels),
    uint8 images, checked and cached by :mod:`fmnist_scaling.data.sources`."""

    image_shape = (28, 28)
    train_size, test_size = 60_000, 10_000
    max_value = 255.0
    #: The four files: name -> (bytes uncompressed, md5 of the uncompressed file, or None: not pinned).
    files: ClassVar[dict[str, tuple[int, str | None]]] = {
        "train-images-idx3-ubyte": (47040016, None),
        "train-labels-idx1-ubyte": (60008, None),
        "t10k-images-idx3-ubyte": (7840016, None),
        "t10k-labels-idx1-ubyte": (10008, None),
    }
    #: md5 of each decoded tensor of the real dataset (None: not pinned; the cache's own are kept).
    digests: ClassVar[dict[str, str] | None] = None
    #: The torchvision dataset class that downloads it (``torchvision.datasets.<name>``).
    torchvision_class: ClassVar[str]
    #: The cache file, in ``<root>/<folder>/``.
    cache_name: ClassVar[str]
    #: A folder where a system package puts the original ``.gz`` files (tried before downloading).
    system_copy: ClassVar[str | None] = None
    #: How to get the files when neither the folder nor a download has them.
    install_hint: ClassVar[str] = ""

    def prepare(self, root: str, local_copy: str | None, download: bool, verify: bool) -> str:
        from fmnist_scaling.data import sources

        return sources.prepare(root, local_copy, download, verify, dataset=self)

    def load(self, root: str, verify: bool) -> dict[str, Tensor]:
        from fmnist_scaling.data import sources

        return sources.load(root, verify, dataset=self)

    def check_ahead(self, root: str, verify: bool) -> None:
        from fmnist_scaling.data import sources

        sources.check_ahead(root, verify, dataset=self)


class FashionMNIST(IDXDataset):
    """Zalando's Fashion-MNIST: 70,000 28 x 28 photos of clothing in 10 balanced classes."""

    name, folder = "Fashion-MNIST", "FashionMNIST"
    classes = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
    # The md5 of the data, not of the .gz: Debian recompressed the archives, so their bytes differ
    # from torchvision's.
    files = {
        "train-images-idx3-ubyte": (47040016, "f4a8712d7a061bf5bd6d2ca38dc4d50a"),
        "train-labels-idx1-ubyte": (60008, "9018921c3c673c538a1fc5bad174d6f9"),
        "t10k-images-idx3-ubyte": (7840016, "8181f5470baa50b63fa0f6fddb340f0a"),
        "t10k-labels-idx1-ubyte": (10008, "15d484375f8d13e6eb1aabb0c3f46965"),
    }
    digests = {
        "train_images": "f209073e486d5113ebe2cc431d4df862",
        "train_labels": "7f04740598b02edfb94aa0e6fa814fe4",
        "test_images": "b7656a891b218fc13e45205c48a92cae",
        "test_labels": "13513839c730787e1e9b9aa9b84d6f53",
    }
    torchvision_class, cache_name = "FashionMNIST", "fmnist_uint8.pt"
    system_copy = "/usr/share/datasets/fashion-mnist"
    install_hint = "install the Debian package: `sudo apt-get install -y dataset-fashion-mnist`"


class MNIST(IDXDataset):
    """LeCun's handwritten digits: 70,000 28 x 28 images, 10 classes. The decoded tensors' md5s
    are not pinned here: torchvision checks its download against its own md5s, and the cache
    keeps and rechecks the digests it was built with."""

    name, folder = "MNIST", "MNIST"
    classes = tuple(str(d) for d in range(10))
    torchvision_class, cache_name = "MNIST", "mnist_uint8.pt"


class KMNIST(IDXDataset):
    """Kuzushiji-MNIST: 70,000 28 x 28 images of 10 cursive Japanese (hiragana) characters."""

    name, folder = "KMNIST", "KMNIST"
    classes = ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo")
    torchvision_class, cache_name = "KMNIST", "kmnist_uint8.pt"


class Digits(ImageDataset):
    """scikit-learn's copy of the UCI optical handwritten digits: 1,797 8 x 8 images whose pixels
    count the set bits of a 4 x 4 block (0..16), 10 classes. No official split: a permutation of
    seed 0 puts 360 images (20%) in the test split, the other 1,437 in the training split."""

    name, folder = "Digits (scikit-learn)", "Digits"
    image_shape = (8, 8)
    classes = tuple(str(d) for d in range(10))
    train_size, test_size = 1437, 360
    max_value = 16.0
    #: md5 of the bundled data, decoded (uint8 images, int64 labels), before the split.
    digests = {"images": "fa70cba135d4cdd4cde65da70dbffde2", "labels": "1041ea9b393a866c07fc3ca1c2bb06cd"}
    SPLIT_SEED = 0

    def prepare(self, root: str, local_copy: str | None, download: bool, verify: bool) -> str:
        self._bundled()
        return "scikit-learn's bundled copy"

    def load(self, root: str, verify: bool) -> dict[str, Tensor]:
        import hashlib

        import torch

        from fmnist_scaling.data.sources import DataError

        images, labels = self._bundled()
        found = {
            name: hashlib.md5(t.contiguous().numpy().data).hexdigest()
            for name, t in (("images", images), ("labels", labels))
        }
        if verify and found != self.digests:
            raise DataError(
                f"scikit-learn's digits differ from the ones this project pinned (md5 {found}); "
                "set data.verify=false to use them anyway"
            )
        order = torch.randperm(len(images), generator=torch.Generator().manual_seed(self.SPLIT_SEED))
        test, train = order[: self.test_size], order[self.test_size :]
        return {
            "train_images": images[train],
            "train_labels": labels[train],
            "test_images": images[test],
            "test_labels": labels[test],
        }

    @staticmethod
    def _bundled() -> tuple[Tensor, Tensor]:
        try:
            from sklearn.datasets import load_digits
        except ImportError:
            from fmnist_scaling.data.sources import DataError

            raise DataError(
                "data=digits needs scikit-learn, which is not installed: pip install -e '.[digits]' "
                "(or pip install scikit-learn)"
            ) from None
        import torch

        bunch = load_digits()
        images = torch.from_numpy(bunch.images.astype("uint8")).contiguous()
        return images, torch.from_numpy(bunch.target.astype("int64"))


#: The dataset of configs and checkpoints that name none (everything before datasets were a choice).
DEFAULT = FashionMNIST


def check_data_ahead(data: Any) -> None:
    """Start checking the data of the config ``data`` (its ``dataset``, ``root``, ``verify``) in
    the background: :meth:`ImageDataset.check_ahead`. A dataset that cannot be built here is left
    for the data module to build and, if it fails, to say why, as it would without this."""
    from hydra.utils import instantiate

    try:
        dataset = instantiate(data.dataset)
    except Exception:  # noqa: BLE001 - said where the run builds its data
        return
    if isinstance(dataset, ImageDataset):
        dataset.check_ahead(data.root, data.verify)


def dataset_class(target: str | None) -> type[ImageDataset]:
    """The dataset class at the dotted path ``target`` (None: :data:`DEFAULT`), imported without
    instantiating it; a path that is not one is a bad input, named."""
    if not target:
        return DEFAULT
    module, _, name = str(target).rpartition(".")
    try:
        found = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as err:
        raise ConfigError(
            f"data.dataset._target_={target} cannot be imported ({type(err).__name__}: {err}); "
            "a dataset of your own must be importable: run from the folder that holds it, or add it to PYTHONPATH"
        ) from None
    if not (isinstance(found, type) and issubclass(found, ImageDataset)):
        raise ConfigError(
            f"data.dataset._target_={target} is not a dataset (a subclass of {ImageDataset.__qualname__})"
        )
    return found
