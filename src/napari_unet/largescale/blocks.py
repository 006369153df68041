"""Block tasks of :mod:`napari_unet.largescale`: model loading in workers,
reading, predicting and labelling one block, and merging labels across
chunk faces. Everything here is picklable for dask.distributed workers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..model_io import ModelInfo, load_model_cached
from ..normalize import MAX_SAMPLES, percentile_range
from ..settings import BlockSettings, LabelSettings, PredictionSettings


class ModelRef:
    """The model as tasks see it: a file (or the default model) that each
    worker process loads once, plus the driver's loaded object for local runs."""

    def __init__(self, path=None, model=None, in_memory=False):
        self.path, self.model, self.in_memory = path and str(path), model, in_memory

    def get(self):
        return self.model if self.model is not None else load_model_cached(self.path)[0]

    def __reduce__(self):  # only the path travels to other processes
        if self.in_memory:
            raise TypeError("an in-memory Keras model cannot be sent to dask.distributed "
                            "workers; pass the path of its .keras file")
        return (ModelRef, (self.path,))

    def __dask_tokenize__(self):
        return ("napari-unet-model", self.path, id(self.model))


class Source:
    """The prepared lazy image ``(..., Y, X, C)``; tasks read only what they need."""

    def __init__(self, array):
        self.array = array

    def read(self, index, y0, y1, x0, x1) -> np.ndarray:
        part = self.array[tuple(index) + (slice(y0, y1), slice(x0, x1))]
        # Synchronous: this already runs inside a task (threads or a worker).
        return np.asarray(part.compute(scheduler="sync"))

    def __dask_tokenize__(self):
        return ("napari-unet-source", self.array.name)


@dataclass(frozen=True)
class Plan:
    """Everything a block task needs, resolved once by the caller (picklable).

    The settings are resolved against the model's metadata: no field is None.
    """

    model: ModelRef
    info: ModelInfo
    shape: tuple  # output shape: leading axes + (Y, X)
    block: tuple
    multiple: int  # the model's down-sampling factor
    prediction: PredictionSettings
    labelling: LabelSettings
    blocks: BlockSettings
    axes: str = ""  # spatial letters of ``shape``, e.g. "ZYX"
    out_chunks: tuple | None = None  # output YX chunks when blocks span several

    @property
    def volumes(self) -> bool:
        """Labels are 3D objects along Z (written slab by slab, see volume.py)."""
        return ("Z" in self.axes and self.labelling.mode == "instance"
                and self.labelling.instances != "2d")

    @property
    def dtype(self):
        return np.dtype(np.int32 if self.labelling.mode == "instance" else np.uint8)

    @property
    def grid(self) -> tuple:
        yx = zip(self.shape[-2:], self.block, strict=True)
        return self.shape[:-2] + tuple(-(-n // b) for n, b in yx)

    def keys(self) -> list:
        """Block keys ``plane index + (block row, block column)``, C order."""
        return list(np.ndindex(*self.grid))

    def core(self, key) -> tuple:
        (by, bx), (h, w), (sy, sx) = key[-2:], self.shape[-2:], self.block
        return by * sy, min(h, (by + 1) * sy), bx * sx, min(w, (bx + 1) * sx)

    def slices(self, key) -> tuple:
        y0, y1, x0, x1 = self.core(key)
        return tuple(slice(i, i + 1) for i in key[:-2]) + (slice(y0, y1), slice(x0, x1))


def plane_range(src: Source, plan: Plan, index) -> np.ndarray:
    """``(2, C)`` percentiles of one plane from percentile_range's subsample.

    The subsample (every ``step``-th pixel in raster order) is gathered tile
    by tile (the output chunks): percentiles do not depend on the order of
    the samples, and a tile is far less memory than a band of the plane.
    """
    h, w = plan.shape[-2:]
    step = -(-h * w // MAX_SAMPLES) if h * w > MAX_SAMPLES else 1
    th, tw = plan.out_chunks or plan.block
    parts = []
    for r0 in range(0, h, th):
        for c0 in range(0, w, tw):
            tile = src.read(index, r0, min(h, r0 + th), c0, min(w, c0 + tw))
            parts.append(_strided_samples(tile, r0 * w + c0, w, step))
    samples = np.concatenate(parts)
    return np.array([percentile_range(samples[:, k], *plan.prediction.percentiles)
                     for k in range(samples.shape[-1])]).T


def _strided_samples(tile: np.ndarray, start: int, width: int, step: int) -> np.ndarray:
    """``(n, C)`` pixels of ``tile`` whose raster index in the plane
    (``start`` + row * ``width`` + column) is a multiple of ``step``."""
    if step == 1:
        return tile.reshape(-1, tile.shape[-1]).copy()
    rows, cols = tile.shape[:2]
    first = (-(start + np.arange(rows) * width)) % step  # first sampled column per row
    counts = np.maximum(0, -(-(cols - first) // step))
    row = np.repeat(np.arange(rows), counts)
    k = np.arange(len(row)) - np.repeat(np.cumsum(counts) - counts, counts)
    return tile[row, np.repeat(first, counts) + step * k]


def block_region(plan: Plan, key) -> tuple:
    """``(region, box)``: the block + halo to predict, and the input pixels
    its windows read (see :func:`~napari_unet.window_grid.region_input_box`)."""
    from ..window_grid import region_input_box

    (h, w), d, pred = plan.shape[-2:], plan.blocks.halo, plan.prediction
    y0, y1, x0, x1 = plan.core(key)
    region = (max(0, y0 - d), min(h, y1 + d), max(0, x0 - d), min(w, x1 + d))
    return region, region_input_box(region, (h, w), pred.tile_size, pred.overlap)


def read_block(src: Source, plan: Plan, key) -> np.ndarray:
    """The input pixels a block's windows read."""
    return src.read(key[:-2], *block_region(plan, key)[1])


def label_block(src: Source, plan: Plan, ranges, key, *, data=None, cache=None) -> tuple:
    """Labels of one block (local ids 1..n), from the block + halo, and
    (instance mode) each id's global first pixel, or -1 if incomplete.

    ``data`` is the block's input (:func:`read_block`), read here if None;
    ``cache`` a :class:`~napari_unet.window_cache.WindowCache` of the plane.
    """
    from scipy import ndimage as ndi

    from ..postprocess import probabilities_to_labels
    from ..tiling import predict_region

    index, (h, w) = key[:-2], plan.shape[-2:]
    pred = plan.prediction
    y0, y1, x0, x1 = plan.core(key)
    region, box = block_region(plan, key)
    lo, hi = ranges[index] if pred.normalize else (0.0, 1.0)
    probs = predict_region(
        read_block(src, plan, key) if data is None else data, plan.model.get(), region=region,
        image_shape=(h, w), origin=(box[0], box[2]), lo=lo, hi=hi, tile_size=pred.tile_size,
        overlap=pred.overlap, batch_size=pred.batch_size, multiple=plan.multiple,
        global_batches=plan.blocks.exact, precision=pred.precision, cache=cache)
    labels = probabilities_to_labels(probs, info=plan.info, settings=plan.labelling)
    core = labels[y0 - region[0]:y1 - region[0], x0 - region[2]:x1 - region[2]]
    if plan.labelling.mode == "semantic":
        return core.reshape((1,) * len(index) + core.shape), None
    # Components of the thresholded foreground that reach an edge of the
    # region inside the image may be split differently than in memory.
    # (the thresholded foreground itself: what probabilities_to_labels in
    # semantic mode with min_size 0 and no hole filling gives, for less)
    outputs = list(plan.info.outputs)
    fg = probs[outputs.index("foreground") if len(outputs) == len(probs)
               and "foreground" in outputs else 0]
    mask = fg > plan.labelling.threshold
    del probs, fg  # the block's largest array: gone before the bookkeeping below
    comps = np.empty(mask.shape, np.int32)
    ndi.label(mask, output=comps)
    del mask
    edges = [comps[0] if region[0] > 0 else (), comps[-1] if region[1] < h else (),
             comps[:, 0] if region[2] > 0 else (), comps[:, -1] if region[3] < w else ()]
    cut = np.zeros(int(comps.max(initial=0)) + 1, bool)
    cut[np.concatenate(edges).astype(np.intp)] = True
    # Ids in the core, and each one's first pixel in raster order over the
    # region: the first row of its bounding box, the first match in that row
    # (no sort of the whole block, as np.unique(return_index=True) does).
    ids = np.array([i + 1 for i, box in enumerate(ndi.find_objects(core)) if box is not None],
                   dtype=np.int32)
    boxes = ndi.find_objects(labels)
    first = np.empty((len(ids), 2), np.int64)
    for n, i in enumerate(ids.tolist()):
        rows, cols = boxes[i - 1]
        first[n] = rows.start, cols.start + int(np.argmax(labels[rows.start, cols] == i))
    keys = (first[:, 0] + region[0]) * w + first[:, 1] + region[2]
    complete = (ndi.maximum(cut[comps].view(np.uint8), labels, ids) == 0 if len(ids)
                else np.zeros(0, bool))
    del comps
    # Sequential local ids: objects cut off by the crop leave gaps.
    lut = np.zeros(len(boxes) + 1, dtype=np.int32)
    lut[ids] = np.arange(1, len(ids) + 1, dtype=np.int32)
    core = lut[core]
    keys = np.concatenate([[-1], np.where(complete, keys, -1)]).astype(np.int64)
    return core.reshape((1,) * len(index) + core.shape), keys


def block_meta(result) -> tuple:
    """Label count, first-pixel keys and the edge strips (top, bottom, left, right)."""
    labels, keys = result
    lab = labels.reshape(labels.shape[-2:])
    return (len(keys) - 1, keys, lab[0].copy(), lab[-1].copy(), lab[:, 0].copy(),
            lab[:, -1].copy())


def facing_pairs(a: np.ndarray, b: np.ndarray) -> list:
    """Label pairs across a face that are each other's best partner."""
    m = (a > 0) & (b > 0)
    if not m.any():
        return []
    pairs, counts = np.unique(np.stack([a[m], b[m]], 1), axis=0, return_counts=True)
    best_a, best_b = {}, {}
    for (la, lb), c in zip(pairs.tolist(), counts.tolist(), strict=True):
        if c > best_a.get(la, (0,))[0]:
            best_a[la] = (c, lb)
        if c > best_b.get(lb, (0,))[0]:
            best_b[lb] = (c, la)
    return [(la, lb) for la, (_, lb) in best_a.items() if best_b[lb][1] == la]


def merge_tables(plan: Plan, metas: dict) -> tuple:
    """Union-find over chunk faces: ``(final ids by temporary id, offsets)``."""
    offsets, total = {}, 0
    for key in plan.keys():  # temporary ids: block offset + local id
        offsets[key] = total
        total += metas[key][0]
    parent = np.arange(total + 1)

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    def union(a, b):
        ra, rb = find(a), find(b)
        parent[max(ra, rb)] = min(ra, rb)  # the root is a set's first id

    named = {}
    for key in plan.keys():  # complete objects: the same first pixel is the same object
        for local in np.flatnonzero(metas[key][1] >= 0):
            t, name = offsets[key] + local, (key[:-2], int(metas[key][1][local]))
            union(named.setdefault(name, t), t)
    for key in plan.keys():  # the others: best partners across chunk faces
        *index, by, bx = key
        # (neighbour, my strip, its strip): the face below, the face on the right.
        for nb, mine, theirs in (((*index, by + 1, bx), 3, 2), ((*index, by, bx + 1), 5, 4)):
            if nb not in offsets:
                continue
            for la, lb in facing_pairs(metas[key][mine], metas[nb][theirs]):
                if metas[key][1][la] < 0 or metas[nb][1][lb] < 0:
                    union(offsets[key] + la, offsets[nb] + lb)
    roots = np.array([find(t) for t in range(total + 1)])
    final = np.unique(roots, return_inverse=True)[1].reshape(-1)  # sequential, 0 stays 0
    if final.max(initial=0) > np.iinfo(np.int32).max:
        raise ValueError("more than 2**31 - 1 objects: int32 labels cannot hold them")
    return final.astype(np.int32), offsets


def block_table(merged, key, n) -> np.ndarray:
    """Look-up table from a block's local ids ``0..n`` to final ids."""
    final, offsets = merged
    return np.concatenate([[0], final[offsets[key] + 1:offsets[key] + n + 1]]).astype(np.int32)


def relabel_block(block, merged, block_info=None):
    """``map_blocks`` function: a block's local ids to final ids."""
    key = tuple(block_info[0]["chunk-location"])
    return block_table(merged, key, int(block.max(initial=0)))[block]


def label_and_store(src, plan, ranges, key, path):
    """Label a block, write it to its (whole) chunk of ``path``, return its meta."""
    return store_block(path, plan, key, label_block(src, plan, ranges, key))


def store_block(path, plan, key, result):
    """Write a labelled block to its (whole) chunk of ``path``; return its meta."""
    import zarr

    zarr.open_array(path, mode="r+")[plan.slices(key)] = result[0]
    return block_meta(result) if plan.labelling.mode == "instance" else None


def relabel_stored(path, plan, key, table):
    """Rewrite one stored chunk with final ids (each task owns its chunk)."""
    import zarr

    arr = zarr.open_array(path, mode="r+")
    *lead, ys, xs = plan.slices(key)
    cy, cx = plan.out_chunks or (ys.stop - ys.start, xs.stop - xs.start)
    for y in range(ys.start, ys.stop, cy):  # chunk by chunk: a chunk's memory, not a block's
        for x in range(xs.start, xs.stop, cx):
            sl = (*lead, slice(y, min(ys.stop, y + cy)), slice(x, min(xs.stop, x + cx)))
            arr[sl] = table[arr[sl]]


