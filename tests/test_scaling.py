"""Each scaling mode on small inputs with known outputs."""

import math

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from fmnist_scaling.data import scaling as S
from tests.conftest import REPO

PIXELS = torch.tensor([[0, 51, 255], [255, 255, 0]], dtype=torch.uint8)


def test_none_keeps_raw_values_as_float():
    out = S.NoScaling()(PIXELS)
    assert out.dtype == torch.float32
    assert out.tolist() == [[0.0, 51.0, 255.0], [255.0, 255.0, 0.0]]


def test_max_divides_by_255():
    out = S.MaxScaling()(PIXELS)
    assert out[0].tolist() == pytest.approx([0.0, 0.2, 1.0])


def test_centered_maps_onto_minus_one_one():
    out = S.Centered()(PIXELS)
    assert out[0].tolist() == pytest.approx([-1.0, 51 / 127.5 - 1, 1.0])


def test_minmax_per_image_and_blank_image():
    images = torch.tensor([[10, 20, 30], [7, 7, 7]], dtype=torch.uint8)
    out = S.MinMaxScaling()(images)
    assert out[0].tolist() == pytest.approx([0.0, 0.5, 1.0])
    assert out[1].tolist() == [0.0, 0.0, 0.0]  # a constant image maps to zeros, not NaN


def test_standard_has_mean_0_std_1_on_fit_data():
    g = torch.Generator().manual_seed(0)
    train = torch.randint(0, 256, (500, 20), generator=g, dtype=torch.uint8)
    mode = S.Standardize().fit(train)
    out = mode(train)
    assert out.mean().item() == pytest.approx(0.0, abs=1e-5)
    assert out.std(unbiased=False).item() == pytest.approx(1.0, abs=1e-5)
    assert mode.mean.item() == pytest.approx(train.double().mean().item(), rel=1e-6)


def test_statistics_come_from_the_fit_data_only():
    train = torch.tensor([[0, 0], [10, 10]], dtype=torch.uint8)  # mean 5, std 5
    other = torch.tensor([[255, 255]], dtype=torch.uint8)
    mode = S.Standardize().fit(train)
    assert mode(other)[0].tolist() == pytest.approx([50.0, 50.0])  # (255 - 5) / 5: not refit on `other`


def test_per_pixel_zscore_and_eps_guard():
    train = torch.tensor([[0, 10], [0, 30], [0, 20], [1, 40]], dtype=torch.uint8)
    mode = S.PerPixelStandardize(eps=0.01).fit(train)
    # column 1: mean 25, population std sqrt(125)
    assert mode(torch.tensor([[0, 25 + 11]], dtype=torch.uint8))[0, 1].item() == pytest.approx(
        11 / math.sqrt(125), rel=1e-5
    )
    # column 0 is nearly constant (std 0.433 grey levels): the floor of 2.55 grey levels applies
    assert mode.std[0].item() == pytest.approx(2.55)
    assert mode(torch.tensor([[255, 25]], dtype=torch.uint8))[0, 0].item() == pytest.approx(
        (255 - 0.25) / 2.55, rel=1e-5
    )
    unguarded = S.PerPixelStandardize(eps=1e-9).fit(train)
    assert unguarded(torch.tensor([[255, 25]], dtype=torch.uint8))[0, 0].item() > 500  # what the floor prevents


def test_fit_before_use_and_bad_arguments():
    with pytest.raises(RuntimeError, match="must be fit"):
        S.Standardize()(PIXELS)
    with pytest.raises(ValueError, match="eps must be > 0"):
        S.PerPixelStandardize(eps=0)
    for mode in (S.MaxScaling, S.Centered, lambda max_value: S.PerPixelStandardize(max_value=max_value)):
        with pytest.raises(ValueError, match="max_value must be > 0, got -1"):
            mode(max_value=-1)
    with pytest.raises(ValueError, match="constant"):
        S.Standardize().fit(torch.full((3, 4), 9, dtype=torch.uint8))


def test_state_round_trip_restores_statistics():
    train = torch.randint(0, 256, (50, 6), dtype=torch.uint8)
    fitted = S.PerPixelStandardize(eps=0.02).fit(train)
    restored = instantiate(fitted.config())
    restored.load_state_dict(fitted.state_dict())
    assert restored.eps == 0.02
    assert torch.equal(restored(train), fitted(train))


@pytest.mark.parametrize("path", sorted((REPO / "conf" / "scaling").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_scaling_yaml_instantiates_a_scaling(path):
    import fmnist_scaling.run.resolvers  # noqa: F401 - ${dataset:max_value}: alone, the default dataset's

    mode = instantiate(OmegaConf.load(path))
    assert isinstance(mode, S.Scaling)
    out = mode.fit(PIXELS)(PIXELS)
    assert out.shape == PIXELS.shape and torch.isfinite(out).all()


def test_shifted_moves_the_max_inputs_by_a_constant():
    shifted = S.Shifted(offset=1.0)
    assert shifted(torch.tensor([[0, 51, 255]], dtype=torch.uint8)).tolist()[0] == pytest.approx([1.0, 1.2, 2.0])
    assert instantiate(shifted.config()).offset == 1.0  # rebuilt from a checkpoint's config


def test_whitened_inputs_keep_the_size_of_max_and_lose_their_largest_direction():
    from fmnist_scaling.data.scaling import MaxScaling, Whitened

    torch.manual_seed(0)
    mixing = torch.randn(12, 12) * torch.linspace(0.05, 3, 12)  # directions of very different variance
    images = ((torch.randn(4000, 12) @ mixing).clamp(-100, 100) + 120).round().to(torch.uint8)
    white = Whitened(eps=1e-9).fit(images)
    x, m = white(images).double(), MaxScaling()(images).double()
    assert (x * x).sum(1).mean() == pytest.approx(float((m * m).sum(1).mean()), rel=1e-4)  # the same size
    assert x.mean(0).abs().max() < 1e-3 * x.std()  # centred
    cov = x.T @ x / len(x)
    values = torch.linalg.eigvalsh(cov)
    assert values.max() / values.min() < 1.05  # every direction alike (eps negligible; float32 inputs)
    assert values.max() < torch.linalg.eigvalsh(m.T @ m / len(m)).max() / 10
    floored = Whitened(eps=0.01).fit(images)(images).double()  # the faint directions are not blown up
    values = torch.linalg.eigvalsh(floored.T @ floored / len(floored))
    assert values.max() / values.min() > 10
    with pytest.raises(ValueError, match="eps must be > 0"):
        Whitened(eps=0)
