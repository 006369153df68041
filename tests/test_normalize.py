"""Percentile normalization on every dtype and on pathological images."""

import numpy as np
import pytest

from napari_unet.normalize import apply_range, normalize_percentile, percentile_range


@pytest.mark.parametrize(
    "dtype", [np.uint8, np.uint16, np.uint32, np.int8, np.int16, np.int32, np.int64,
              np.float16, np.float32, np.float64, bool]
)
def test_every_real_dtype(dtype):
    rng = np.random.default_rng(0)
    data = (rng.random((64, 64)) * 100).astype(dtype)
    out = normalize_percentile(data)
    assert out.dtype == np.float32 and out.shape == data.shape
    assert np.isfinite(out).all()


def test_maps_percentiles_to_zero_and_one():
    data = np.arange(1000, dtype=np.uint16).reshape(10, 100)
    lo, hi = percentile_range(data, 1, 99)
    out = apply_range(data, lo, hi)
    assert np.isclose(np.percentile(out, 1), 0, atol=1e-6)
    assert np.isclose(np.percentile(out, 99), 1, atol=1e-6)
    assert out.max() > 1  # not clipped: bright outliers stay bright


@pytest.mark.parametrize("value", [0, 7, 65535])
def test_constant_image_gives_zeros(value):
    out = normalize_percentile(np.full((20, 30), value, np.uint16))
    assert np.all(out == 0)


def test_nan_and_inf_are_ignored_for_the_range_and_made_finite():
    data = np.linspace(0, 1, 400, dtype=np.float32).reshape(20, 20)
    bad = data.copy()
    bad[0, :5] = np.nan
    bad[1, :5] = np.inf
    bad[2, :5] = -np.inf
    lo, hi = percentile_range(bad, 1, 99)
    assert np.isfinite([lo, hi]).all() and 0 <= lo < hi <= 1
    out = apply_range(bad, lo, hi)
    assert np.isfinite(out).all()
    assert (out[0, :5] == 0).all()


def test_all_nan_image():
    assert percentile_range(np.full((4, 4), np.nan)) == (0.0, 0.0)
    assert np.all(normalize_percentile(np.full((4, 4), np.nan)) == 0)


def test_per_channel_ranges_broadcast():
    data = np.stack([np.arange(100.0), np.arange(100.0) * 10], axis=-1)
    out = apply_range(data, [0, 0], [99, 990])
    np.testing.assert_allclose(out[..., 0], out[..., 1], rtol=1e-6, atol=1e-7)


def test_large_images_are_subsampled_but_accurate():
    rng = np.random.default_rng(1)
    data = rng.integers(0, 60000, size=(3000, 3000), dtype=np.uint16)
    lo, hi = percentile_range(data, 1, 99.8)
    exact = np.percentile(data, [1, 99.8])
    assert abs(lo - exact[0]) < 0.002 * 60000 and abs(hi - exact[1]) < 0.002 * 60000


@pytest.mark.parametrize("dtype", [np.complex64, object, "U3"])
def test_unsupported_dtypes_raise(dtype):
    with pytest.raises(ValueError, match="(?i)complex|dtype"):
        normalize_percentile(np.zeros((4, 4), dtype=dtype))


def test_bad_percentiles():
    with pytest.raises(ValueError, match="low < high"):
        percentile_range(np.zeros(4), 50, 10)
