"""The shipped reference labels of the 3D sample (nuclei3d_reference_labels.tif).

They stand in for hand-corrected 3D labels (one id per nucleus through Z) in
``benchmarks/bench_3d.py`` and, plane by plane, ``benchmarks/bench_finetune.py
--part 3d`` (made by ``scripts/make_nuclei3d_reference.py``); these checks
catch a wrong, shifted, truncated or mislabelled file.
"""

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_unet.tiff import read_tiff

SAMPLES = Path(__file__).resolve().parents[1] / "sample_data"
MIDDLE = slice(5, 25)  # planes away from the blurred top and bottom of the stack


@pytest.fixture(scope="module")
def stack():
    image, image_scale = read_tiff(SAMPLES / "nuclei3d.tif")
    labels, labels_scale = read_tiff(SAMPLES / "nuclei3d_reference_labels.tif")
    return image, labels, image_scale, labels_scale


def test_reference_matches_the_stack(stack):
    image, labels, image_scale, labels_scale = stack
    assert labels.shape == image.shape == (30, 256, 256)
    assert labels.dtype.kind in "iu"
    assert labels_scale == pytest.approx(image_scale)
    assert (SAMPLES / "nuclei3d_reference_labels.tif").stat().st_size < 2**20


def test_every_plane_has_a_plausible_number_of_nuclei(stack):
    _, labels, _, _ = stack
    counts = np.array([len(np.unique(p)) - 1 for p in labels])
    assert np.all(counts > 0), counts
    # ~20 nuclei (some cut by the border) are in focus in the middle planes.
    assert np.all((counts[MIDDLE] >= 15) & (counts[MIDDLE] <= 35)), counts


def test_ids_are_3d_nuclei(stack):
    """One id per nucleus through Z: ~21 ids, each in many consecutive
    planes, each section >= 50 px."""
    _, labels, _, _ = stack
    ids = np.unique(labels[labels > 0])
    assert 15 <= len(ids) <= 30 and ids.tolist() == list(range(1, len(ids) + 1))
    for i, box in enumerate(ndi.find_objects(labels), start=1):
        planes = [z for z in range(box[0].start, box[0].stop) if (labels[z] == i).any()]
        assert planes == list(range(planes[0], planes[-1] + 1)), i  # no gap in Z
        assert len(planes) >= 10, i
        areas = [(labels[z] == i).sum() for z in planes]
        assert min(areas) >= 50, i
    # A nucleus is one 3D piece (26-connected).
    for i in ids:
        assert ndi.label(labels == i, structure=np.ones((3, 3, 3)))[1] == 1, i


def test_labels_sit_on_the_bright_nuclei(stack):
    image, labels, _, _ = stack
    image = image.astype(np.float64)
    fg = labels > 0
    assert image[fg].mean() > 2 * image[~fg].mean()
    for z in range(labels.shape[0]):
        assert image[z][fg[z]].mean() > 1.4 * image[z][~fg[z]].mean(), z


def test_outlines_follow_the_nuclear_edges(stack):
    """Outline pixels sit about halfway between background and nucleus
    brightness: 2 px too wide or 3 px too narrow fails."""
    image, labels, _, _ = stack
    image, labels = image[MIDDLE].astype(np.float64), labels[MIDDLE]
    fg = labels > 0
    rim = np.zeros(labels.shape, bool)  # pixels with a 4-neighbour of another id
    step = labels[:, 1:] != labels[:, :-1]
    rim[:, 1:] |= step
    rim[:, :-1] |= step
    step = labels[:, :, 1:] != labels[:, :, :-1]
    rim[:, :, 1:] |= step
    rim[:, :, :-1] |= step
    rim &= fg
    background = image[~ndi.binary_dilation(fg, np.ones((1, 15, 15), bool))].mean()
    inside = image[fg & ~rim].mean()
    fraction = (image[rim].mean() - background) / (inside - background)
    assert 0.3 < fraction < 0.75, fraction


def test_touching_nuclei_are_separated(stack):
    """Touching nuclei keep their own ids (no merged blobs)."""
    _, labels, _, _ = stack
    n_touching = []
    for plane in labels:
        pairs = set()
        for a, b in ((plane[:, 1:], plane[:, :-1]), (plane[1:], plane[:-1])):
            edge = (a != b) & (a > 0) & (b > 0)
            pairs |= set(map(tuple, np.sort(np.stack([a[edge], b[edge]], axis=1), axis=1)))
        n_touching.append(len(pairs))
    # Nuclei press against each other around the middle of their height
    # (planes 8-23 have 2-7 touching pairs each).
    assert min(n_touching[10:21]) >= 3, n_touching
