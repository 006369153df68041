"""Sample data: the shipped files, the npe2 sample commands and napari's menu."""

from importlib.resources import as_file

import numpy as np
import pytest

from napari_unet._sample_data import nuclei_2d, nuclei_3d, sample_path

SAMPLE_FILES = ("nuclei2d.tif", "nuclei2d_labels.tif", "nuclei3d.tif")


def _touching_pairs(labels):
    """Pairs of different nuclei that share a 4-connected edge."""
    pairs = set()
    for a, b in ((labels[:, 1:], labels[:, :-1]), (labels[1:], labels[:-1])):
        edge = (a != b) & (a > 0) & (b > 0)
        pairs |= set(map(tuple, np.sort(np.stack([a[edge], b[edge]], axis=1), axis=1)))
    return pairs


def test_sample_files_ship_in_the_package_and_stay_small():
    sizes = {}
    for name in SAMPLE_FILES:
        with as_file(sample_path(name)) as path:
            assert path.is_file(), name
            sizes[name] = path.stat().st_size
    assert sum(sizes.values()) < 15 * 2**20, sizes


def test_nuclei_2d_returns_image_and_ground_truth():
    (image, image_meta, image_type), (labels, labels_meta, labels_type) = nuclei_2d()

    assert (image_type, labels_type) == ("image", "labels")
    assert image_meta["name"] == "nuclei"
    assert labels_meta["name"] == "nuclei ground truth"
    assert image.shape == labels.shape == (768, 869)
    assert image.dtype == np.uint16  # as acquired, not rescaled
    assert labels.dtype == np.int32
    assert image_meta["scale"] == pytest.approx((0.645, 0.645))
    assert labels_meta["scale"] == pytest.approx((0.645, 0.645))

    ids = np.unique(labels)
    np.testing.assert_array_equal(ids, np.arange(123))  # background + 122 consecutive ids
    # The masks sit on the bright nuclei, and some nuclei touch each other.
    assert image[labels > 0].mean() > 2 * image[labels == 0].mean()
    assert len(_touching_pairs(labels)) >= 10


def test_nuclei_3d_returns_calibrated_stack():
    [(stack, meta, layer_type)] = nuclei_3d()

    assert layer_type == "image"
    assert stack.shape == (30, 256, 256)
    assert stack.dtype == np.uint16
    assert meta["scale"] == pytest.approx((0.29, 0.26, 0.26))
    assert [str(u) for u in meta["units"]] == ["um"] * 3
    # Nuclei are in every plane of the crop: bright foreground over background.
    per_plane = stack.reshape(30, -1)
    assert np.all(np.percentile(per_plane, 99, axis=1) > 1.5 * np.median(per_plane, axis=1))


def test_open_sample_2d_in_viewer(make_napari_viewer):
    from napari.layers import Image, Labels

    viewer = make_napari_viewer(show=True)  # a hidden canvas renders black
    viewer.open_sample("napari-tiled-unet", "nuclei2d")

    assert [layer.name for layer in viewer.layers] == ["nuclei", "nuclei ground truth"]
    image, labels = viewer.layers
    assert isinstance(image, Image) and isinstance(labels, Labels)
    assert labels.data.dtype == np.int32
    np.testing.assert_allclose(labels.scale, (0.645, 0.645))
    assert [str(u) for u in image.units] == ["micrometer"] * 2

    # Really drawn on the (virtual) screen: the canvas is not blank.
    shot = viewer.screenshot(canvas_only=True, flash=False)
    assert shot.ndim == 3 and shot[..., :3].std() > 10


def test_open_sample_3d_in_viewer(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-tiled-unet", "nuclei3d")

    [layer] = viewer.layers
    assert layer.name == "nuclei 3D"
    assert layer.data.shape == (30, 256, 256)
    np.testing.assert_allclose(layer.scale, (0.29, 0.26, 0.26))
    assert viewer.dims.ndim == 3


def test_samples_in_file_open_sample_menu(make_napari_viewer):
    viewer = make_napari_viewer()
    samples_menu = next(
        a.menu() for a in viewer.window.file_menu.actions()
        if a.menu() is not None and "Sample" in a.text()
    )
    plugin_menu = next(
        a.menu() for a in samples_menu.actions()
        if a.menu() is not None and a.text() == "napari-unet"
    )
    actions = {a.text(): a for a in plugin_menu.actions()}
    assert set(actions) == {"Nuclei 2D (mnfinder)", "Nuclei 3D (cells3d)"}

    actions["Nuclei 3D (cells3d)"].trigger()  # what a click does
    assert [layer.name for layer in viewer.layers] == ["nuclei 3D"]
