"""Per-object review data of a result layer: confidence, reviewed flags, boxes.

The Labels layer's ``features`` table is the record, one row per object:

* ``index``: the label value (napari maps rows to labels through it, and
  shows the other columns when the cursor hovers an object);
* ``confidence``: :func:`napari_unet.object_confidence`, in [0, 1];
* ``reviewed``: bool, set in the dock's review panel.

The Export dock reads ``reviewed`` (with the edit record) to export only the
regions a user checked or corrected: keep these column names.

:func:`measure` runs off the GUI thread (in the worker client's thread,
from the probabilities a run or a re-labelling returned); :func:`merge`
writes its answer into the layer, in the GUI thread. Nothing here imports
TensorFlow (``confidence`` is NumPy/SciPy/scikit-image).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..scope import Scope

COLUMNS = ("index", "confidence", "reviewed")


@dataclass
class Measured:
    """Objects of one written region (ids as written into the layer).

    Attributes
    ----------
    region : Scope
    ids : ndarray of int
    confidence : ndarray of float
    boxes : dict
        ``{id: ((start, stop), ...)}`` per axis of the layer, in data
        coordinates (a fixed plane of a stack spans one index).
    """

    region: Scope
    ids: np.ndarray
    confidence: np.ndarray
    boxes: dict


def measure(labels: np.ndarray, probs: np.ndarray, info, region: Scope) -> Measured | None:
    """Confidence and boxes of the objects in ``labels``, written at ``region``.

    Returns None where confidence does not apply (no foreground output,
    mismatching shapes, no probabilities): the review panel then stays empty.
    """
    if probs is None or labels is None:
        return None
    from scipy import ndimage as ndi

    from ..confidence import object_confidence

    labels = np.asarray(labels)
    outputs = list(getattr(info, "outputs", None) or ["foreground"])[: probs.shape[0]]
    try:
        scores = object_confidence(labels, probs, outputs=outputs)
    except ValueError:  # no foreground output, or shapes that do not match
        return None
    ids = np.array(sorted(scores), dtype=np.int64)
    confidence = np.array([scores[i] for i in ids], dtype=np.float64)
    origin = []  # per layer axis: a fixed index (int) or the offset of a labels axis
    for index in region.target:
        origin.append(("offset", index.start or 0) if isinstance(index, slice)
                      else ("fixed", int(index)))
    boxes = {}
    for i, box in enumerate(ndi.find_objects(labels), start=1):
        if box is None or i not in scores:
            continue
        spans, axis = [], 0
        for kind, value in origin:
            if kind == "fixed":
                spans.append((value, value + 1))
            else:
                spans.append((value + box[axis].start, value + box[axis].stop))
                axis += 1
        boxes[i] = tuple(spans)
    return Measured(region, ids, confidence, boxes)


def table(layer) -> dict[str, np.ndarray]:
    """The layer's review columns (empty arrays if it has none)."""
    features = layer.features
    if all(c in features for c in COLUMNS):
        return {"index": np.asarray(features["index"], dtype=np.int64),
                "confidence": np.asarray(features["confidence"], dtype=np.float64),
                "reviewed": np.asarray(features["reviewed"], dtype=bool)}
    return {"index": np.zeros(0, np.int64), "confidence": np.zeros(0),
            "reviewed": np.zeros(0, bool)}


def has_reviewed(layer) -> bool:
    """Whether the user marked any object of the layer reviewed: such a
    layer is never re-labelled or overwritten, like a hand-edited one."""
    return bool(table(layer)["reviewed"].any())


def merge(layer, boxes: dict, measured: Measured) -> None:
    """Write ``measured`` into the layer's features and ``boxes`` (GUI thread).

    Rows of objects inside the written region are replaced (the objects are
    new: not reviewed); rows elsewhere are kept with their reviewed flags.
    """
    old = table(layer)
    region = measured.region
    if region.is_whole:
        keep = np.zeros(len(old["index"]), bool)
    else:
        keep = np.array([not _inside(boxes.get(int(i)), region, layer.data.shape)
                         for i in old["index"]], dtype=bool)
        keep &= ~np.isin(old["index"], measured.ids)
    for i in old["index"][~keep]:
        boxes.pop(int(i), None)
    boxes.update(measured.boxes)
    index = np.concatenate([old["index"][keep], measured.ids])
    order = np.argsort(index, kind="stable")
    layer.features = {
        "index": index[order],
        "confidence": np.concatenate([old["confidence"][keep], measured.confidence])[order],
        "reviewed": np.concatenate([old["reviewed"][keep],
                                    np.zeros(len(measured.ids), bool)])[order],
    }


def set_reviewed(layer, ids, value: bool = True) -> None:
    """Mark objects ``ids`` reviewed (or not) in the layer's features."""
    current = table(layer)
    reviewed = current["reviewed"].copy()
    reviewed[np.isin(current["index"], list(ids))] = value
    layer.features = {**current, "reviewed": reviewed}


def _inside(box, region: Scope, shape) -> bool:
    """Whether an object's box lies within the region (unknown boxes: no)."""
    if box is None:
        return False
    for (start, stop), index, size in zip(box, region.target, shape, strict=True):
        lo, hi = ((index.start or 0, size if index.stop is None else index.stop)
                  if isinstance(index, slice) else (int(index), int(index) + 1))
        if start < lo or stop > hi:
            return False
    return True


def update(result, measured: Measured | None, params: dict) -> None:
    """Bring a result layer's review data up to date after a write (GUI thread).

    Semantic masks have no objects to review: their review table is cleared
    (class names of a class-labels layer stay).
    """
    if measured is not None:
        merge(result.layer, result.boxes, measured)
    elif params.get("mode") != "instance" and "confidence" in result.layer.features.columns:
        result.layer.features = {}
        result.boxes.clear()
