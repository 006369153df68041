"""Classical nuclei segmentation baseline: Otsu threshold + watershed.

The reference point every learned model must beat: smooth, threshold with
Otsu's method, fill holes, then split touching nuclei with a watershed on
the distance transform seeded by its h-maxima. The splitting is the same
code the U-Net's single-output post-processing uses
(:func:`~napari_unet.probabilities_to_labels`), so a comparison isolates
what the network adds.
"""

from __future__ import annotations

import numpy as np

from .normalize import DEFAULT_PERCENTILES


def otsu_watershed(
    image,
    *,
    sigma: float = 1.0,
    min_size: int = 16,
    split_h: float = 2.0,
    normalize_percentiles: tuple[float, float] = DEFAULT_PERCENTILES,
) -> np.ndarray:
    """Segment bright nuclei with Otsu thresholding and a watershed.

    Parameters
    ----------
    image : array-like
        2D image or stack ``(..., Y, X)``; every 2D plane is segmented on
        its own (threshold computed per plane).
    sigma : float
        Gaussian smoothing (pixels) before thresholding; 0 disables it.
    min_size : int
        Objects smaller than this many pixels are removed.
    split_h : float
        Minimum depth (pixels) of the distance-transform saddle between two
        nucleus centres for them to be split.
    normalize_percentiles : (float, float)
        Intensities are clipped to these percentiles first, so a few hot
        pixels cannot drag the Otsu threshold.

    Returns
    -------
    ndarray of int32
        Instance labels with the image's shape, unique over the stack.
    """
    from scipy import ndimage as ndi
    from skimage.filters import threshold_otsu

    from .normalize import normalize_percentile
    from .postprocess import offset_ids, probabilities_to_labels

    image = np.asarray(image)
    if image.ndim < 2:
        raise ValueError(f"Expected a 2D image or a stack, got shape {image.shape}")
    out = np.zeros(image.shape, dtype=np.int32)
    offset = 0
    for index in np.ndindex(*image.shape[:-2]):
        plane = np.clip(normalize_percentile(image[index], *normalize_percentiles), 0, 1)
        if sigma > 0:
            plane = ndi.gaussian_filter(plane, sigma)
        if plane.max() <= plane.min():
            continue
        mask = (plane > threshold_otsu(plane)).astype(np.float32)
        labels = probabilities_to_labels(mask, outputs=["foreground"], threshold=0.5,
                                         min_size=min_size, split_h=split_h)
        offset = offset_ids(labels, offset)
        out[index] = labels
    return out
