"""The shipped default nuclei model: offline loading and accuracy on the sample."""

from pathlib import Path

import numpy as np
import pytest

import napari_unet as nu

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"


def test_default_model_loads_offline_with_metadata():
    path = nu.default_model_path()
    assert path.is_file(), "the default model must ship inside the package"
    assert path.stat().st_size < 20e6
    model, info = nu.load_model(with_info=True)
    assert info.outputs == ["foreground", "boundary", "distance"]
    assert (info.in_channels, info.out_channels) == (1, 3)
    assert info.normalization["low"] == 1.0 and info.normalization["high"] == 99.8
    assert info.tile_size % 2**info.depth == 0
    assert info.training["best_epoch"] >= 1
    assert model.count_params() < 0.25 * nu.REFERENCE_PARAMS


def test_default_model_segments_the_2d_sample():
    import tifffile

    image_path, labels_path = SAMPLE / "nuclei2d.tif", SAMPLE / "nuclei2d_labels.tif"
    if not (image_path.exists() and labels_path.exists()):
        pytest.skip("sample_data/nuclei2d.tif or nuclei2d_labels.tif is absent")
    image = tifffile.imread(image_path)
    truth = tifffile.imread(labels_path)
    labels = nu.segment(image)
    assert labels.shape == truth.shape and labels.dtype == np.int32
    scores = nu.evaluate(labels, truth)
    assert scores["f1"] >= 0.8, scores
    assert scores["dice"] >= 0.85, scores


def test_default_model_out_of_core_equals_in_memory(tmp_path):
    """The three-output model (distance markers, shape prior, merge test)
    labels zarr blocks exactly as a whole image in memory."""
    import tifffile

    zarr = pytest.importorskip("zarr")
    image_path = SAMPLE / "nuclei2d.tif"
    if not image_path.exists():
        pytest.skip("sample_data/nuclei2d.tif is absent")
    image = tifffile.imread(image_path)[:512, :512]
    src = zarr.open_array(str(tmp_path / "in.zarr"), mode="w", shape=image.shape,
                          chunks=(256, 256), dtype=image.dtype)
    src[:] = image
    expected = nu.segment(image)
    out = nu.segment_zarr(tmp_path / "in.zarr", tmp_path / "out.zarr", quiet=True)[:]
    assert np.array_equal(out > 0, expected > 0)
    pairs = np.unique(out.astype(np.int64).ravel() * (int(expected.max()) + 1) + expected.ravel())
    assert len(pairs) == len(np.unique(out)) == len(np.unique(expected)) > 40  # dozens of nuclei


def test_default_tiling_is_seamless_on_the_real_sample():
    """The shipped model's tiled output with the default windows, overlap and
    precision against one whole-image pass on a real image: same objects,
    and no grid (differences do not gather on the window borders)."""
    import tifffile

    from napari_unet import engine
    from napari_unet.prediction import plane_range
    from napari_unet.settings import PredictionSettings
    from napari_unet.tiling import predict_whole_plane

    image_path = SAMPLE / "nuclei2d.tif"
    if not image_path.exists():
        pytest.skip("sample_data/nuclei2d.tif is absent")
    image = tifffile.imread(image_path)[:512, :704]
    model, info = nu.load_model(with_info=True)
    settings = PredictionSettings().resolved(info)
    tiled = nu.predict_probabilities(image, model, info=info)
    lo, hi = plane_range(image[..., None], *info.percentiles)
    whole = predict_whole_plane(image[..., None], model, lo=lo, hi=hi, context=128,
                                precision=engine.resolve_precision(settings.precision))
    a, b = tiled[0] > 0.5, whole[0] > 0.5
    assert 2 * (a & b).sum() / (a.sum() + b.sum()) >= 0.995
    # Measured: 1.4e-5 of the pixels flip with the defaults, 4.2e-4 with no overlap.
    assert (a != b).mean() < 1e-4
    # Window borders fall every `stride` px: no visible grid there. Measured
    # mean error on those rows 2.9e-4 (no overlap: 7.8e-3), max 0.064 (0.99).
    stride = settings.tile_size - settings.overlap
    err = np.abs(tiled - whole).max(axis=0)[:-64, :-64]  # the mirrored border aside
    seams = [k + d for k in range(stride, err.shape[0], stride) for d in range(settings.overlap)]
    assert err[[s for s in seams if s < err.shape[0]]].mean() < 2e-3
    assert err.max() < 0.25
