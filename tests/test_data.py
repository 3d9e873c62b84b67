"""The data module and its batches: on tiny IDX files written here, and on the real data."""

import pytest
import torch

from fmnist_scaling.data import sources
from fmnist_scaling.data.datamodule import ImageDataModule, TensorBatches
from fmnist_scaling.data.scaling import MaxScaling, NoScaling, Standardize
from fmnist_scaling.utils.errors import ConfigError
from tests.conftest import write_idx


def module(root, scaling=None, **kwargs):
    kwargs.setdefault("verify", False)
    dm = ImageDataModule(scaling or MaxScaling(), root=str(root), local_copy=None, download=False, **kwargs)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def test_tiny_split_sizes_dtypes_and_scaling(tiny_root):
    dm = module(tiny_root, val_size=100)
    x, y = dm.scaled("train")
    assert x.shape == (500, 784) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert dm.scaled("val")[0].shape == (100, 784) and dm.scaled("test")[0].shape == (200, 784)
    assert x.min() >= 0.0 and x.max() == pytest.approx(250 / 255)
    group = next(iter(dm.train_dataloader()))  # 16 SGD batches, scaled; the split stays uint8
    assert len(group) == 16 and len(dm.train_dataloader()) == 1  # 500 images: 16 batches in one group
    xb, yb = group[0]
    assert xb.shape == (32, 784) and xb.dtype == torch.float32 and xb.max() <= 1.0 and yb.shape == (32,)
    assert group[-1][0].shape == (500 - 15 * 32, 784)
    assert dm.splits["train"][0].dtype == torch.uint8
    assert dm.val_loader_names == ["val", "train_full"]
    assert module(tiny_root, val_size=0).val_loader_names == ["train_full"]


def test_validation_split_is_the_same_for_every_mode_and_seed(tiny_root):
    a = module(tiny_root, NoScaling(), val_size=100, seed=0)
    b = module(tiny_root, MaxScaling(), val_size=100, seed=7)
    assert torch.equal(a.scaled("val")[1], b.scaled("val")[1])
    assert torch.equal(a.scaled("val")[0] / 255, b.scaled("val")[0])
    c = module(tiny_root, NoScaling(), val_size=100, split_seed=1)
    assert not torch.equal(a.scaled("val")[0], c.scaled("val")[0])


def test_statistics_are_fit_on_the_training_part_only(tmp_path):
    n, val_size, labels = 600, 100, torch.arange(600) % 10
    # which images the split holds out: each image writes its index into its first two pixels
    tagged = torch.zeros(n, 28, 28, dtype=torch.uint8)
    tagged[:, 0, 0], tagged[:, 0, 1] = torch.arange(n) // 256, torch.arange(n) % 256
    for prefix in ("train", "t10k"):
        write_idx(sources.raw_folder(tmp_path / "tagged"), prefix, tagged, labels)
    held = module(tmp_path / "tagged", NoScaling(), val_size=val_size).splits["val"][0].long()
    held_out = held[:, 0] * 256 + held[:, 1]
    assert len(set(held_out.tolist())) == val_size
    # images whose two parts differ: the training part half 0, half 100 (mean 50, std 50); the
    # held-out images all 250 (statistics of all 600 together: mean 83.3, std 87.4)
    images = torch.zeros(n, 28, 28, dtype=torch.uint8)
    images[:, 14:] = 100
    images[held_out] = 250
    for prefix in ("train", "t10k"):
        write_idx(sources.raw_folder(tmp_path / "parts"), prefix, images, labels)
    dm = module(tmp_path / "parts", Standardize(), val_size=val_size)
    assert float(dm.scaling.mean) == pytest.approx(50.0, rel=1e-4)
    assert float(dm.scaling.std) == pytest.approx(50.0, rel=1e-4)
    val = dm.scaled("val")[0]  # the held-out images through the training part's statistics
    assert torch.allclose(val, torch.full_like(val, (250 - 50) / 50), rtol=1e-4)


def test_val_size_out_of_range_is_rejected(tiny_root):
    with pytest.raises(ConfigError, match=r"data.val_size=600 is invalid: must be an integer in 0..599 \("):
        module(tiny_root, val_size=600)


def test_batches_cover_every_index_once_per_epoch_in_a_seeded_order():
    x = torch.arange(103).float()[:, None]
    loader = TensorBatches(x, torch.arange(103), batch_size=10, shuffle=True, seed=3)
    assert len(loader) == 11
    orders = []
    for epoch in (0, 1, 0):
        loader.sampler.set_epoch(epoch)
        batches = list(loader)
        assert all(torch.equal(bx[:, 0].long(), by) for bx, by in batches)  # images stay with labels
        orders.append(torch.cat([by for _, by in batches]))
        assert sorted(orders[-1].tolist()) == list(range(103))
    assert not torch.equal(orders[0], orders[1])
    assert torch.equal(orders[0], orders[2])
    same_seed = TensorBatches(x, torch.arange(103), batch_size=10, shuffle=True, seed=3)
    assert torch.equal(torch.cat([by for _, by in same_seed]), orders[0])


def test_grouped_batches_are_the_same_batches():
    x = torch.arange(103).float()[:, None]
    plain = TensorBatches(x, torch.arange(103), batch_size=10, shuffle=True, seed=5)
    grouped = TensorBatches(x, torch.arange(103), batch_size=10, shuffle=True, seed=5, group=4)
    assert len(grouped) == 3
    flat = [batch for group in grouped for batch in group]
    assert len(flat) == len(plain) == 11
    assert all(torch.equal(a[1], b[1]) and torch.equal(a[0], b[0]) for a, b in zip(flat, plain))


def test_eval_batches_are_in_order_and_ranks_split_the_data():
    y = torch.arange(25)
    assert torch.equal(torch.cat([b for _, b in TensorBatches(y[:, None], y, 10)]), y)
    shards = [
        torch.cat([b for _, b in TensorBatches(y[:, None], y, 4, shuffle=True, rank=r, world_size=2)]) for r in (0, 1)
    ]
    assert len(shards[0]) == len(shards[1]) == 13
    assert set(shards[0].tolist()) | set(shards[1].tolist()) == set(range(25))


def test_same_samples_as_torchvision_dataset(real_root):
    from torchvision.datasets import FashionMNIST

    plain = FashionMNIST(str(real_root), train=False)
    dm = module(real_root, NoScaling(), verify=True)
    x, y = dm.scaled("test")
    assert torch.equal(x[123].reshape(28, 28), plain.data[123].float()) and y[123] == plain.targets[123]


@pytest.mark.real_data
def test_real_data_sizes_and_split(real_root):
    data = sources.load(str(real_root))
    assert data["train_images"].shape == (60_000, 28, 28) and data["test_images"].shape == (10_000, 28, 28)
    assert data["train_images"].dtype == torch.uint8
    assert torch.bincount(data["train_labels"]).tolist() == [6000] * 10
    dm = module(real_root, MaxScaling(), verify=True)
    assert len(dm.scaled("train")[0]) == 55_000 and len(dm.scaled("val")[0]) == 5_000
    assert len(dm.scaled("test")[0]) == 10_000
