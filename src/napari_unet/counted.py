"""Sparse annotation: which pixels of a label image count for training.

A user who checked 20 objects in one corner and fixed a few others has not
said anything about the rest of the image. Training on the whole image would
teach the network that the unchecked remainder is right. A *counted mask*
marks the pixels the user vouched for; exported with the pair
(:func:`napari_unet.export.export_pairs`, ``counted=``), it makes the
training loss ignore everything else (:func:`napari_unet.train`,
``counted=``).

Counted are the objects marked as reviewed and the regions edited by hand,
each grown by a margin, so that an object's border with the background (or
with its neighbour) counts too: that is where segmentation errors live.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

#: Pixels around each reviewed object / edited region that count too.
DEFAULT_MARGIN = 6


def counted_mask(labels, reviewed_ids: Iterable[int] = (), edited=None, *,
                 margin: int = DEFAULT_MARGIN) -> np.ndarray:
    """Boolean mask of the pixels that count for training.

    Parameters
    ----------
    labels : ndarray of int
        The corrected labels (2D, or N-D: the margin grows in Y and X only).
    reviewed_ids : iterable of int
        Ids of the objects the user marked as reviewed.
    edited : ndarray of bool, optional
        Pixels the user edited (e.g. :meth:`napari_unet.edits.EditRecord.plane_mask`),
        with the labels' shape.
    margin : int
        Pixels by which each reviewed object and edited region is grown.

    Returns
    -------
    ndarray of bool with the labels' shape.
    """
    labels = np.asarray(labels)
    ids = [int(i) for i in reviewed_ids if int(i) != 0]
    mask = np.isin(labels, ids) if ids else np.zeros(labels.shape, bool)
    if edited is not None:
        edited = np.asarray(edited, dtype=bool)
        if edited.shape != labels.shape:
            raise ValueError(f"edited mask {edited.shape} does not match labels "
                             f"{labels.shape}")
        mask |= edited
    if margin > 0 and mask.any():
        from scipy import ndimage as ndi

        # A disk in Y, X only: planes of a stack are separate training pairs.
        yy, xx = np.mgrid[-margin:margin + 1, -margin:margin + 1]
        disk = (yy**2 + xx**2) <= margin**2
        mask = ndi.binary_dilation(mask, structure=disk.reshape((1,) * (mask.ndim - 2)
                                                                + disk.shape))
    return mask


def reviewed_ids_from_features(features) -> list[int]:
    """Ids marked as reviewed in a Labels layer's ``features`` table.

    The table (a pandas DataFrame or a dict of columns) holds the label id
    in ``index`` and a boolean ``reviewed`` column; without them, no object
    is reviewed.
    """
    if features is None:
        return []
    try:
        index, reviewed = features["index"], features["reviewed"]
    except (KeyError, TypeError, IndexError):
        return []
    index, reviewed = np.asarray(index), np.asarray(reviewed)
    if index.shape != reviewed.shape:
        return []
    return [int(i) for i, r in zip(index, reviewed, strict=True) if bool(r) and int(i) != 0]
