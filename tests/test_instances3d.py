"""3D instances along Z from per-plane probabilities; T frames stay independent."""

from pathlib import Path

import numpy as np
import pytest

import napari_unet as nu
from napari_unet.instances3d import stitch_planes
from napari_unet.settings import LabelSettings

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"


def touching_spheres(shape=(24, 64, 96), voxel=(2.0, 1.0, 1.0), radius=11.0):
    """Labels of a row of touching balls (radius in physical units) in an
    anisotropic volume, plus an isolated one: 4 objects."""
    zz, yy, xx = np.indices(shape).astype(np.float64)
    zz, yy, xx = zz * voxel[0], yy * voxel[1], xx * voxel[2]
    centres = [(24, 32, 14), (24, 32, 34), (24, 30, 54), (20, 32, 80)]  # 3 touch
    labels = np.zeros(shape, np.int32)
    best = np.full(shape, np.inf)
    for i, (cz, cy, cx) in enumerate(centres, start=1):
        d = np.sqrt((zz - cz) ** 2 + (yy - cy) ** 2 + (xx - cx) ** 2)
        inside = (d <= radius) & (d < best)
        labels[inside] = i
        best = np.where(inside, d, best)
    return labels


def probabilities(labels, boundary=True):
    """What a good 2D network gives: foreground, and the per-plane outline
    of each object as boundary."""
    from skimage.segmentation import find_boundaries

    fg = (labels > 0).astype(np.float32) * 0.95
    if not boundary:
        return fg[None]
    bnd = np.stack([find_boundaries(p, mode="inner") for p in labels]).astype(np.float32)
    return np.stack([fg, bnd * 0.9])


@pytest.mark.parametrize("boundary", [True, False])
def test_touching_spheres_become_one_object_each(boundary):
    truth = touching_spheres()
    probs = probabilities(truth, boundary)
    labels = nu.probabilities_to_labels(probs, axes="ZYX", voxel_size=(2.0, 1.0, 1.0),
                                        min_size=4)
    assert labels.dtype == np.int32 and labels.shape == truth.shape
    assert labels.max() == 4 and len(np.unique(labels)) == 5
    scores = nu.evaluate(labels, truth, per_plane=False)
    assert scores["f1"] == 1.0 and scores["mean_matched_iou"] > 0.85, scores


def test_per_plane_labels_stay_available():
    truth = touching_spheres()
    probs = probabilities(truth)
    labels = nu.probabilities_to_labels(probs, axes="ZYX", instances="2d", min_size=4)
    per_plane = sum(len(np.unique(p)) - 1 for p in labels)
    assert labels.max() == per_plane > 40  # ids unique over the stack, one per section


def test_stitching_links_planes_by_iou():
    truth = touching_spheres()
    labels = nu.probabilities_to_labels(probabilities(truth), axes="ZYX", instances="stitch",
                                        min_size=4, min_volume=50)
    assert labels.max() == 4
    assert nu.evaluate(labels, truth, per_plane=False)["f1"] == 1.0


def test_stitch_planes_is_one_to_one():
    planes = np.zeros((3, 10, 10), np.int32)
    planes[0, 2:8, 2:8] = 1
    planes[1, 2:8, 2:5], planes[1, 2:8, 5:8] = 1, 2  # the object splits: one continues
    planes[2, 2:8, 2:5] = 7
    out = stitch_planes(planes, 0.3)
    assert out[0, 3, 3] == out[1, 3, 3] == out[2, 3, 3] == 1
    assert out[1, 3, 6] == 2
    strict = stitch_planes(planes, 0.9)  # plane 1 no longer continues plane 0 (IoU 0.5)
    assert strict.max() == 3 and strict[0, 3, 3] != strict[1, 3, 3] == strict[2, 3, 3]


def test_time_frames_are_never_linked():
    truth = touching_spheres()
    probs = probabilities(truth)
    two = np.stack([probs, probs], axis=1)  # (C, T, Z, Y, X)
    labels = nu.probabilities_to_labels(two, axes="TZYX", min_size=4)
    assert labels.max() == 8
    assert not set(np.unique(labels[0])) - {0} & set(np.unique(labels[1]))
    # TYX: a plane per frame, objects never followed through time
    planes = probs[:, 12:14]
    t_labels = nu.probabilities_to_labels(planes, axes="TYX", min_size=4)
    one_by_one = [nu.probabilities_to_labels(planes[:, t], min_size=4).max() for t in (0, 1)]
    assert t_labels.max() == sum(one_by_one) == 8


def test_default_axes_of_a_volume_are_zyx():
    probs = probabilities(touching_spheres())
    assert nu.probabilities_to_labels(probs, min_size=4).max() == 4


def test_bad_3d_settings():
    with pytest.raises(ValueError, match="instances"):
        LabelSettings(instances="4d")
    for bad in ((1, 1), (0, 1, 1), (1, -1, 1), ("a", 1, 1), (np.nan, 1, 1), 5):
        with pytest.raises(ValueError, match="voxel_size"):
            LabelSettings(voxel_size=bad)
    with pytest.raises(ValueError, match="stitch_threshold"):
        LabelSettings(stitch_threshold=0)
    with pytest.raises(ValueError, match="min_volume"):
        LabelSettings(min_volume=-1)
    with pytest.raises(ValueError, match="channel"):
        nu.probabilities_to_labels(np.zeros((1, 2, 8, 8)), axes="CYX")


def test_shipped_3d_sample_meets_the_targets():
    """3D F1 at IoU 0.5 >= 0.8 and a count within 20% of the 3D reference;
    a 2-frame time-lapse gives as many objects as its frames one by one."""
    from napari_unet.tiff import read_tiff

    image, scale = read_tiff(SAMPLE / "nuclei3d.tif")
    reference, _ = read_tiff(SAMPLE / "nuclei3d_reference_labels.tif")
    probs = nu.predict_probabilities(image, axes="ZYX")
    _, info = nu.load_model(with_info=True)
    labels = nu.probabilities_to_labels(probs, axes="ZYX", info=info, voxel_size=scale)
    n_ref = len(np.unique(reference)) - 1
    assert abs(int(labels.max()) - n_ref) <= 0.2 * n_ref, (labels.max(), n_ref)
    scores = nu.evaluate(labels, reference, per_plane=False)
    assert scores["f1"] >= 0.8, scores
    frames = image[[8, 20], :128, :128]
    together = nu.segment(frames, axes="TYX")
    assert together.max() == nu.segment(frames[0]).max() + nu.segment(frames[1]).max() > 4
