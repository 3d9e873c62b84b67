"""Finding the data: data folder, local copy of the .gz files, download; and clear failures."""

import pytest

from fmnist_scaling.data import sources
from tests.conftest import make_tiny, write_idx


def test_local_copy_of_gz_files_is_unpacked_and_cached(tmp_path):
    copy = tmp_path / "debian"
    make_tiny(copy, gz=True)
    root = tmp_path / "data"
    assert sources.prepare(str(root), local_copy=str(copy), download=False, verify=False) == f"local copy {copy}"
    assert sources.cache_path(root).is_file()
    assert sources.load(str(root), verify=False)["train_images"].shape == (600, 28, 28)
    assert sources.prepare(str(root), local_copy=None, download=False, verify=False).startswith("cache")


def test_nothing_anywhere_says_what_was_tried_and_how_to_fix(tmp_path):
    with pytest.raises(sources.DataError) as err:
        sources.prepare(str(tmp_path / "data"), local_copy=str(tmp_path / "nowhere"), download=False)
    message = str(err.value)
    assert "nowhere (not there)" in message and "data.download=false" in message
    assert "apt-get install -y dataset-fashion-mnist" in message and "data.local_copy=" in message


def test_files_that_are_not_fashion_mnist_are_rejected_by_checksum(tmp_path):
    root = tmp_path / "data"
    make_tiny(sources.raw_folder(root))
    with pytest.raises(
        sources.DataError, match=r"train-images-idx3-ubyte is not the Fashion-MNIST file .*data.verify=false"
    ):
        sources.prepare(str(root), local_copy=None, download=False, verify=True)


def test_truncated_idx_file_is_reported(tmp_path):
    raw = sources.raw_folder(tmp_path)
    make_tiny(raw)
    path = raw / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(sources.DataError, match="cannot read the IDX files"):
        sources.prepare(str(tmp_path), local_copy=None, download=False, verify=False)


def test_images_and_labels_that_do_not_match(tmp_path):
    import torch

    raw = sources.raw_folder(tmp_path)
    make_tiny(raw)
    write_idx(raw, "t10k", torch.zeros(5, 28, 28, dtype=torch.uint8), torch.zeros(5, dtype=torch.uint8))
    (raw / "t10k-labels-idx1-ubyte").write_bytes((raw / "train-labels-idx1-ubyte").read_bytes())
    with pytest.raises(sources.DataError, match="must match one to one"):
        sources.prepare(str(tmp_path), local_copy=None, download=False, verify=False)


def test_damaged_gz_in_local_copy(tmp_path):
    copy = tmp_path / "copy"
    make_tiny(copy, gz=True)
    (copy / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(sources.DataError, match="local copy is damaged"):
        sources.prepare(str(tmp_path / "d"), local_copy=str(copy), download=False, verify=False)
    assert not list(sources.raw_folder(tmp_path / "d").glob("*.partial"))


def test_unreadable_cache_is_reported(tmp_path):
    sources.cache_path(tmp_path).parent.mkdir(parents=True)
    sources.cache_path(tmp_path).write_bytes(b"not a torch file")
    with pytest.raises(sources.DataError, match="unreadable.*; delete .* to fetch the data again$"):
        sources.load(str(tmp_path))


def test_the_debian_copy_checksums(real_root):
    # the real files pass verification (prepared by the fixture with verify=True)
    assert sources.load(str(real_root))["test_labels"].shape == (10_000,)


def test_a_cache_built_without_checksums_is_checked_before_verified_use(tmp_path):
    root = tmp_path / "data"
    make_tiny(sources.raw_folder(root))
    sources.prepare(str(root), local_copy=None, download=False, verify=False)
    with pytest.raises(sources.DataError, match="is not the Fashion-MNIST file"):
        sources.prepare(str(root), local_copy=None, download=False, verify=True)
