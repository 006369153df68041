"""Tiled prediction: shapes, seamlessness, N-D input, progress, cancellation."""

import threading

import numpy as np
import pytest
from scipy import ndimage as ndi

import napari_unet as nu
from napari_unet.engine import run_model
from napari_unet.prediction import plane_range
from napari_unet.tiling import mirror_index, predict_whole_plane, taper, window_starts


def blobs(shape, seed=0, n=30):
    """Smooth blobs on a dim background: a nuclei-like test image."""
    rng = np.random.default_rng(seed)
    img = np.zeros(shape, np.float32)
    idx = tuple(rng.integers(0, s, n) for s in shape)
    img[idx] = 1
    img = ndi.gaussian_filter(img, 6) * 500 + rng.normal(0, 0.01, shape)
    return (img * 1000).astype(np.uint16)


@pytest.mark.parametrize(
    "shape", [(2, 2), (5, 300), (127, 129), (128, 128), (1000, 37), (3, 40, 50), (2, 3, 20, 30)]
)
def test_output_shape_equals_input_shape(tiny_model, shape, rng):
    image = rng.random(shape, dtype=np.float32)
    probs = nu.predict_probabilities(image, tiny_model, tile_size=64, overlap=16)
    assert probs.shape == (1,) + shape
    assert probs.dtype == np.float32
    assert np.isfinite(probs).all() and probs.min() >= 0 and probs.max() <= 1


def test_default_tile_is_128_and_windows_sit_on_pooling_grid():
    starts = window_starts(1000, 128, 96)
    assert starts[0] == 0 and starts[-1] + 128 >= 1000
    assert np.all(starts % 16 == 0)
    assert list(window_starts(100, 128, 96)) == [0]


def test_mirror_index_handles_tiny_axes():
    assert list(mirror_index(np.arange(5), 1)) == [0] * 5
    assert list(mirror_index(np.arange(7), 3)) == [0, 1, 2, 2, 1, 0, 0]


def test_blending_weights_partition_unity():
    tile, overlap = 128, 32
    a = taper(tile, overlap, first=True)
    b = taper(tile, overlap, last=True)
    stride = tile - overlap
    total = np.zeros(stride + tile)
    total[:tile] += a
    total[stride:] += b
    np.testing.assert_allclose(total, 1, atol=1e-6)
    assert a[0] == 1 and b[-1] == 1  # image borders are not tapered


def test_tiled_matches_whole_image_pass(tiny_model):
    image = blobs((400, 360))
    plane = image[..., None]
    lo, hi = plane_range(plane, 1, 99.8)
    whole = predict_whole_plane(plane, tiny_model, lo=lo, hi=hi, multiple=4)
    tiled = nu.predict_probabilities(image, tiny_model, tile_size=128, overlap=32)
    t = np.median(whole)
    fg_w, fg_t = whole[0] > t, tiled[0] > t
    dice = 2 * (fg_w & fg_t).sum() / (fg_w.sum() + fg_t.sum())
    assert dice >= 0.995
    assert np.abs(whole - tiled).mean() < 1e-3


def test_no_tile_grid_in_probabilities(tiny_model_2out):
    # A random depth-4 net "sees" far: errors remain, but must not line up
    # on the window borders (every 96 px), i.e. no visible grid.
    image = blobs((400, 360), seed=5)
    plane = image[..., None]
    lo, hi = plane_range(plane, 1, 99.8)
    whole = predict_whole_plane(plane, tiny_model_2out, lo=lo, hi=hi)
    tiled = nu.predict_probabilities(image, tiny_model_2out, tile_size=128, overlap=32)
    err = np.abs(whole - tiled).max(axis=0)[:300, :300]  # away from the mirrored edge
    rows = err.mean(axis=1)
    seams = [96 + k for k in range(-4, 4)] + [192 + k for k in range(-4, 4)]
    # Measured: ~1.4 with overlap 32; ~3.8 (and 0.15 std) with no overlap.
    assert rows[seams].mean() < 2.5 * rows.mean()
    assert err.mean() < 0.1 * whole[0].std()


def test_no_overlap_is_worse_than_overlap(tiny_model_2out):
    # Guards the blending itself: overlap must reduce the seam error.
    image = blobs((256, 256), seed=3)
    plane = image[..., None]
    lo, hi = plane_range(plane, 1, 99.8)
    whole = predict_whole_plane(plane, tiny_model_2out, lo=lo, hi=hi)
    err = {ov: np.abs(whole - nu.predict_probabilities(image, tiny_model_2out, tile_size=128,
                                                      overlap=ov)).mean()
           for ov in (0, 32)}
    assert err[32] < err[0]


def test_progress_reaches_total_once_per_batch(tiny_model):
    calls = []
    nu.predict_probabilities(np.zeros((3, 200, 200)), tiny_model, tile_size=64, overlap=16,
                             batch_size=4, progress=lambda d, t: calls.append((d, t)))
    total = calls[0][1]
    assert calls[0] == (0, total) and calls[-1] == (total, total)
    assert total == 3 * 16  # 4x4 windows of stride 48 cover 200 px, per plane
    assert len(calls) == 1 + 3 * 4  # start + one per batch
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_cancellation_stops_early_and_returns_nothing(tiny_model):
    event = threading.Event()
    calls = []

    def progress(done, total):
        calls.append(done)
        if done >= 8:
            event.set()

    with pytest.raises(nu.Cancelled):
        nu.predict_probabilities(np.zeros((4, 256, 256)), tiny_model, tile_size=64, overlap=0,
                                 batch_size=4, progress=progress, cancel=event)
    assert calls[-1] == 8  # stopped at the next batch boundary

    with pytest.raises(nu.Cancelled):  # a plain callable works too
        nu.predict_probabilities(np.zeros((64, 64)), tiny_model, cancel=lambda: True)


def test_dask_input_is_computed_plane_by_plane(tiny_model):
    da = pytest.importorskip("dask.array")
    stack = np.random.default_rng(1).random((4, 70, 90)).astype(np.float32)
    lazy = da.from_array(stack, chunks=(1, 70, 90))
    np.testing.assert_allclose(nu.predict_probabilities(lazy, tiny_model),
                               nu.predict_probabilities(stack, tiny_model), atol=1e-6)


def test_channel_axis_and_selection(rng):
    import keras

    keras.utils.set_random_seed(2)
    model3 = nu.build_unet(in_channels=3, base_filters=4, depth=2)
    rgb = rng.random((40, 50, 3)).astype(np.float32)
    probs = nu.predict_probabilities(rgb, model3, channel_axis=-1)
    assert probs.shape == (1, 40, 50)
    # Channel-first data gives the same result as channel-last.
    cfirst = nu.predict_probabilities(np.moveaxis(rgb, -1, 0), model3, channel_axis=0)
    np.testing.assert_allclose(probs, cfirst, atol=1e-6)
    # Reordering channels explicitly changes what the model sees.
    swapped = nu.predict_probabilities(rgb, model3, channel_axis=-1, channels=[2, 1, 0])
    assert not np.allclose(probs, swapped)


def test_single_channel_model_on_multichannel_needs_explicit_choice(tiny_model, rng):
    stack = rng.random((2, 30, 40, 3)).astype(np.float32)  # T, Y, X, C
    with pytest.raises(ValueError, match="3 channels but the model reads 1"):
        nu.predict_probabilities(stack, tiny_model, channel_axis=-1)
    one = nu.predict_probabilities(stack, tiny_model, channel_axis=-1, channels=[1])
    np.testing.assert_allclose(one, nu.predict_probabilities(stack[..., 1], tiny_model),
                               atol=1e-6)
    mean = nu.predict_probabilities(stack, tiny_model, channel_axis=-1, channels="mean")
    assert mean.shape == (1, 2, 30, 40)


def test_stack_normalization_scope(tiny_model):
    # A dimmer second plane: per-plane normalization hides it, stack scope keeps it.
    plane = blobs((64, 64)).astype(np.float32)
    stack = np.stack([plane, plane * 0.25])
    per_plane = nu.predict_probabilities(stack, tiny_model)
    np.testing.assert_allclose(per_plane[:, 0], per_plane[:, 1], atol=1e-5)
    whole = nu.predict_probabilities(stack, tiny_model, normalize_scope="stack")
    assert not np.allclose(whole[:, 0], whole[:, 1], atol=1e-3)


def test_compiled_inference_equals_eager_call(tiny_model, rng):
    x = rng.random((3, 64, 64, 1)).astype(np.float32)
    np.testing.assert_allclose(run_model(tiny_model, x), np.asarray(tiny_model(x)), atol=1e-6)


def test_crop_with_the_whole_images_intensity_range(tiny_model, rng):
    from napari_unet.normalize import apply_range

    image = rng.random((96, 128)).astype(np.float32) * np.linspace(1, 8, 128, dtype=np.float32)
    crop = image[10:70, 5:60]
    lo, hi = nu.prediction.intensity_range(image, tiny_model)
    assert np.allclose(np.ravel(hi), np.percentile(image, 99.8), rtol=0.02)
    got = nu.predict_probabilities(crop, tiny_model, intensity_range=(lo, hi))
    same = nu.predict_probabilities(apply_range(crop, float(lo[0]), float(hi[0])), tiny_model,
                                    normalize=False)
    np.testing.assert_allclose(got, same, atol=1e-6)
    own = nu.predict_probabilities(crop, tiny_model)  # the crop's own, narrower range
    assert np.abs(own - got).max() > 1e-3
    with pytest.raises(ValueError, match="one 2D image"):
        nu.prediction.intensity_range(np.stack([image, image]), tiny_model)


def test_default_window_is_fitted_to_the_plane():
    from napari_unet.settings import PredictionSettings, fit_window
    from napari_unet.tiling import count_windows

    for n in (2, 100, 300, 512, 1000, 1024, 2048):
        tile = fit_window((n, n), 256, 32)
        assert tile % 16 == 0 and 48 <= tile <= 256
        # As few windows as 256 px ones, never more pixels.
        assert count_windows((n, n), tile, 32) == count_windows((n, n), 256, 32)
        assert window_starts(n, tile, tile - 32)[-1] + tile >= n
    assert fit_window((512, 512), 256, 32) == 192  # 3 windows of 192, not of 256
    assert fit_window((2048, 2048), 256, 32) == 256
    assert fit_window((512, 2048), 256, 32) == 256  # the longer axis decides
    info = nu.ModelInfo(tile_size=128)
    assert PredictionSettings().resolved(info, (100, 100)).tile_size == 112  # 1 window, fitted
    assert PredictionSettings(tile_size=256).resolved(info, (512, 512)).tile_size == 256


@pytest.mark.parametrize("amx, window, batch, fitted", [(True, 128, 16, 128),
                                                        (False, 256, 4, 192)])
def test_default_window_follows_the_cpu(monkeypatch, amx, window, batch, fitted):
    """128 px training patches where AMX makes them pay, 256 px elsewhere;
    batches hold the same pixels (16 x 128^2 = 4 x 256^2)."""
    from napari_unet import engine
    from napari_unet.settings import PredictionSettings

    monkeypatch.setattr(engine, "cpu_has_amx", lambda *a: amx)
    info = nu.ModelInfo(tile_size=128)
    settings = PredictionSettings().resolved(info)
    assert (settings.tile_size, settings.batch_size) == (window, batch)
    assert PredictionSettings().resolved(info, (512, 512)).tile_size == fitted
    assert PredictionSettings().resolved(nu.ModelInfo(tile_size=320)).tile_size == 320
    # Explicit values are kept, and the batch follows an explicit window.
    explicit = PredictionSettings(tile_size=64, batch_size=3).resolved(info)
    assert (explicit.tile_size, explicit.batch_size) == (64, 3)
    assert PredictionSettings(tile_size=512).resolved(info).batch_size == 1
    assert PredictionSettings(tile_size=32, overlap=0).resolved(info).batch_size == 16  # not 256
