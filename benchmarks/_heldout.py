"""Held-out evaluation images for the confidence and annotator benchmarks.

* mnfinder 1.2.3 ``validation-data/`` (never trained on; it chose the
  shipped model's best epoch and its post-processing defaults — distance
  threshold, minimum size — so it is not independent of that selection),
  read from the pinned wheel with
  ``scripts/fit_confidence.py``'s reader;
* a **dense** set synthesized from those validation images: their whole
  nuclei (pixels and masks), randomly rotated and flipped, packed onto a
  background drawn from the image's own background pixels, each allowed to
  overlap earlier ones by up to 10 % of its area (it then hides them there),
  so nuclei touch as in crowded cultures, unlike the mostly separate nuclei
  of the training images.

``test-data/`` is never read.
"""

from __future__ import annotations

import importlib.util

import numpy as np
from _common import REPO
from scipy import ndimage as ndi


def fit_script():
    """``scripts/fit_confidence.py`` as a module (wheel reading, object tables)."""
    spec = importlib.util.spec_from_file_location(
        "fit_confidence", REPO / "scripts" / "fit_confidence.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def validation_split():
    """``(images, labels, names)`` of mnfinder's validation-data."""
    return fit_script().mnfinder_split("validation-data")


def _nuclei(image, labels, min_area=30):
    """``(pixels, mask)`` crops of the nuclei not cut by the image border."""
    out = []
    for i, sl in enumerate(ndi.find_objects(labels), start=1):
        if sl is None or any(s.start == 0 or s.stop == n for s, n in
                             zip(sl, labels.shape, strict=True)):
            continue
        mask = labels[sl] == i
        if mask.sum() >= min_area:
            out.append((image[sl], mask))
    return out


def pack_dense(image, labels, *, shape=(384, 384), seed=0, max_overlap=0.10,
               coverage=0.5, attempts=4000):
    """One dense image ``(image, labels)`` made of the nuclei of ``image``."""
    from napari_unet.training import split_components

    rng = np.random.default_rng(seed)
    nuclei = _nuclei(image, labels)
    background = image[~ndi.binary_dilation(labels > 0, iterations=4)]
    canvas = rng.choice(background, size=shape).astype(image.dtype)
    out = np.zeros(shape, np.int32)
    n = 0
    for _ in range(attempts):
        if (out > 0).mean() >= coverage:
            break
        pix, mask = nuclei[rng.integers(len(nuclei))]
        k = int(rng.integers(4))
        pix, mask = np.rot90(pix, k), np.rot90(mask, k)
        if rng.random() < 0.5:
            pix, mask = pix[:, ::-1], mask[:, ::-1]
        h, w = mask.shape
        if h >= shape[0] or w >= shape[1]:
            continue
        y, x = int(rng.integers(0, shape[0] - h)), int(rng.integers(0, shape[1] - w))
        region = out[y:y + h, x:x + w]
        hidden = np.count_nonzero(region[mask])
        # Touch or overlap a little; never fully inside empty space far from others.
        if hidden > max_overlap * mask.sum():
            continue
        n += 1
        region[mask] = n
        canvas[y:y + h, x:x + w][mask] = pix[mask]
    return canvas, split_components(out, min_size=30)


def dense_set(images, labels, per_image=2, seed=0):
    """``per_image`` dense images from each (image, labels) pair."""
    out = []
    for k, (img, lab) in enumerate(zip(images, labels, strict=True)):
        for j in range(per_image):
            out.append(pack_dense(img, lab, seed=seed + 100 * k + j))
    return out
