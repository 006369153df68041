"""End to end: segment() and its input validation."""

import numpy as np
import pytest

import napari_unet as nu


def test_segment_returns_labels_with_spatial_shape(tiny_model, rng):
    image = rng.random((2, 3, 50, 70)).astype(np.float32)  # T, Z, Y, X
    labels, probs = nu.segment(image, tiny_model, return_probabilities=True, min_size=1)
    assert labels.shape == image.shape and labels.dtype == np.int32
    assert probs.shape == (1,) + image.shape
    # Post-processing the returned probabilities again gives the same labels.
    np.testing.assert_array_equal(labels, nu.probabilities_to_labels(probs, min_size=1))
    semantic = nu.segment(image[0, 0], tiny_model, mode="semantic")
    assert semantic.dtype == np.uint8 and semantic.shape == (50, 70)


def test_segment_from_a_model_file(tmp_path, tiny_model, rng):
    path = nu.save_model(tiny_model, tmp_path / "m.keras")
    image = rng.random((40, 40)).astype(np.float32)
    np.testing.assert_array_equal(nu.segment(image, str(path)), nu.segment(image, tiny_model))


@pytest.mark.parametrize(
    "image,kwargs,message",
    [
        (np.zeros((0, 10)), {}, "empty"),
        (np.zeros((10, 0, 5)), {}, "empty"),
        (np.zeros(10), {}, "at least a 2D image"),
        (np.zeros((10, 3)), {"channel_axis": -1}, "at least a 2D image"),
        (np.zeros((8, 8), np.complex64), {}, "Complex"),
        (np.zeros((8, 8), object), {}, "dtype"),
        (np.zeros((8, 8, 3)), {"channel_axis": -1}, "3 channels but the model reads 1"),
        (np.zeros((8, 8, 3)), {"channel_axis": -1, "channels": [0, 1]}, "2 channels"),
        (np.zeros((8, 8, 3)), {"channel_axis": -1, "channels": [5]}, "out of range"),
        (np.zeros((8, 8, 3)), {"channel_axis": 4}, "out of range"),
        (np.zeros((8, 8)), {"channels": [1]}, "channel_axis"),
        (np.zeros((8, 8)), {"tile_size": 102}, "multiple of 4"),
        (np.zeros((8, 8)), {"overlap": 256}, "overlap"),
        (np.zeros((8, 8)), {"overlap": 30}, "multiple of 4"),
        (np.zeros((8, 8)), {"batch_size": 0}, "batch_size"),
    ],
)
def test_bad_input_raises_clear_value_error(tiny_model, image, kwargs, message):
    with pytest.raises(ValueError, match=message):
        nu.segment(image, tiny_model, **kwargs)


def test_wrong_channel_count_for_a_multichannel_model(rng):
    model3 = nu.build_unet(in_channels=3, base_filters=4, depth=2)
    with pytest.raises(ValueError, match="1 channels but the model reads 3"):
        nu.segment(rng.random((16, 16)), model3)
