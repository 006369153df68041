"""3D instances of a zarr volume, slab by slab along Z (out of core).

The 2D network predicts whole planes (normalized per plane exactly as in
memory, same windows and batches, so the probabilities are bitwise equal).
Planes are labelled in slabs: the input's Z chunk (at least as thick as the
halo) plus a halo of context above and below (``halo`` pixels converted to
planes with the voxel size), labelled in 3D like a whole volume
(:func:`~napari_unet.postprocess.probabilities_to_labels`), then cropped to
the slab. Only the probabilities of one slab and its halo are in memory, and
each plane is predicted once (a rolling cache of planes).

Merging, as the 2D blocks do across Y/X faces:

* an object whose foreground component does not reach a cut face of its
  slab + halo is *complete*: labelled exactly as in memory, in every slab
  that holds part of it; its first voxel (global raster order) names it;
* other pieces (components taller than the halo) are joined across a slab
  face when each is the other's best partner (most facing voxel pairs).

A last pass rewrites each stored slab with the merged, sequential ids. T
frames are separate volumes: never joined.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from ..instances3d import foreground_mask


class _UnionFind:
    def __init__(self):
        self.parent = []

    def add(self, n: int) -> int:
        start = len(self.parent)
        self.parent.extend(range(start, start + n))
        return start

    def find(self, i: int) -> int:
        parent = self.parent
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        a, b = self.find(a), self.find(b)
        if a != b:
            self.parent[max(a, b)] = min(a, b)


class _PlaneCache:
    """Probabilities of single planes of one volume, predicted on demand."""

    def __init__(self, src, plan, index_of):
        self.src, self.plan, self.index_of, self.planes = src, plan, index_of, {}
        self.model = plan.model.get()

    def get(self, z: int) -> np.ndarray:
        if z not in self.planes:
            from ..engine import resolve_precision
            from ..prediction import plane_range
            from ..tiling import predict_plane

            pred = self.plan.prediction
            h, w = self.plan.shape[-2:]
            plane = self.src.read(self.index_of(z), 0, h, 0, w)
            if not pred.normalize:
                lo, hi = 0.0, 1.0
            elif pred.intensity_range is not None:
                lo, hi = pred.intensity_range
            else:
                lo, hi = plane_range(plane, *pred.percentiles)
            self.planes[z] = predict_plane(
                plane, self.model, lo=lo, hi=hi, tile_size=pred.tile_size,
                overlap=pred.overlap, batch_size=pred.batch_size, multiple=self.plan.multiple,
                precision=resolve_precision(pred.precision))  # as predict_probabilities
        return self.planes[z]

    def forget_below(self, z: int) -> None:
        for k in [k for k in self.planes if k < z]:
            del self.planes[k]


def z_halo(halo: int, voxel_size, nz: int) -> int:
    """Planes of context above and below a slab: ``halo`` pixels of the plane
    converted to the same physical distance along Z (at most the stack)."""
    planes = int(halo)
    if voxel_size is not None:
        vz, vy, vx = voxel_size
        planes = int(np.ceil(halo * min(vy, vx) / vz))
    return max(0, min(planes, nz))


def _foreground_components(fg, settings) -> np.ndarray:
    """The components the 3D labelling starts from (see instances3d)."""
    return ndi.label(foreground_mask(fg, settings))[0]


def write_volume_labels(plan, src, path, *, slab: int, progress=None, cancel=None) -> int:
    """3D labels of every Z volume of ``src`` into the zarr array at ``path``.

    Returns the number of objects.
    """
    import zarr

    from ..cancel import Cancelled, is_cancelled
    from ..instances3d import _min_volume, _spacing, label_volume

    letters, shape = plan.axes, plan.shape
    zi = letters.index("Z")
    lead, nz, (h, w) = shape[:-2], shape[zi], shape[-2:]
    halo = z_halo(plan.blocks.halo, plan.labelling.voxel_size, nz)
    # A slab at least as thick as the halo: labelling costs at most 3x the
    # planes, whatever the input's Z chunks (often 1 plane).
    slab = max(1, min(max(int(slab), halo), nz))
    chunks = tuple(slab if i == zi else 1 for i in range(len(lead))) + tuple(plan.block)
    out = zarr.open_array(str(path), mode="w", shape=shape, dtype=np.int32, fill_value=0,
                          chunks=chunks)
    others = [n for i, n in enumerate(lead) if i != zi]
    volumes = list(np.ndindex(*others))
    starts = list(range(0, nz, slab))
    total, done = len(volumes) * nz, 0
    if progress is not None:
        progress(0, total)
    uf = _UnionFind()
    bases, named, sizes_of = {}, {}, {}
    for rest in volumes:
        def index_of(z, rest=rest):
            return rest[:zi] + (z,) + rest[zi:]

        cache = _PlaneCache(src, plan, index_of)
        prev_face = None  # (local ids of the previous slab's last plane, its base)
        for z0 in starts:
            z1 = min(nz, z0 + slab)
            lo, hi = max(0, z0 - halo), min(nz, z1 + halo)
            planes = []
            for z in range(lo, hi):
                if is_cancelled(cancel):
                    raise Cancelled("3D labelling cancelled")
                new = z not in cache.planes
                planes.append(cache.get(z))
                if new:
                    done += 1
                    if progress is not None:
                        progress(done, total)
            probs = np.stack(planes, axis=1)
            del planes
            fg = probs[plan.info.outputs.index("foreground")
                       if "foreground" in plan.info.outputs else 0]
            bnd = (probs[plan.info.outputs.index("boundary")]
                   if "boundary" in plan.info.outputs else None)
            # Objects on a cut face keep their pieces whatever their size here:
            # their whole size is only known after the merge (below).
            labels = label_volume(fg, bnd, plan.labelling,
                                  voxel_size=plan.labelling.voxel_size,
                                  open_faces=(lo > 0, hi < nz))
            comps = _foreground_components(fg, plan.labelling)
            del probs, fg
            cut = np.zeros(int(comps.max()) + 1, bool)
            if lo > 0:
                cut[comps[0]] = True
            if hi < nz:
                cut[comps[-1]] = True
            cut[0] = False
            n = int(labels.max(initial=0))
            base = uf.add(n + 1)  # node base + i for local id i (0 unused)
            complete = np.ones(n + 1, bool)
            if n:
                ids = np.arange(1, n + 1)
                touched = ndi.maximum(cut[comps].view(np.uint8), labels, ids)
                complete[1:] = np.asarray(touched) == 0
                all_ids, first = np.unique(labels, return_index=True)
                for i, f in zip(all_ids, first, strict=True):
                    if i == 0 or not complete[i]:
                        continue
                    zz, rem = divmod(int(f), h * w)
                    key = (rest, (lo + zz) * h * w + rem)
                    if key in named:
                        uf.union(named[key], base + int(i))
                    else:
                        named[key] = base + int(i)
            core = labels[z0 - lo:z1 - lo]
            # Ids seen only in the halo belong to other slabs' cores.
            bases[(rest, z0)] = (base, np.unique(core[core > 0]), n)
            sizes_of[(rest, z0)] = np.bincount(core.ravel(), minlength=n + 1)
            del comps
            if prev_face is not None:
                _join_faces(uf, prev_face, (core[0], base, complete))
            prev_face = (core[-1].copy(), base, complete)
            region = index_of(slice(z0, z1))
            out[region] = core
            del labels, core
            cache.forget_below(z1 - halo)
    if is_cancelled(cancel):
        raise Cancelled("3D labelling cancelled")
    # The size rule for objects that crossed slab faces, on their whole size
    # (objects within one slab were already judged there, as in memory).
    total = {}
    for key, (base, present, _) in bases.items():
        for i in present.tolist():
            root = uf.find(base + i)
            total[root] = total.get(root, 0) + int(sizes_of[key][i])
    min_volume = _min_volume(plan.labelling, _spacing(plan.labelling.voxel_size))
    # Sequential ids, in the order objects first appear.
    lut_of, roots, next_id = {}, {}, 1
    for (rest, z0), (base, present, n) in bases.items():
        lut = np.zeros(n + 1, np.int32)
        for i in present.tolist():
            root = uf.find(base + i)
            if total[root] < min_volume:
                continue
            if root not in roots:
                roots[root] = next_id
                next_id += 1
            lut[i] = roots[root]
        lut_of[(rest, z0)] = lut
    for (rest, z0), lut in lut_of.items():
        region = rest[:zi] + (slice(z0, min(nz, z0 + slab)),) + rest[zi:]
        out[region] = lut[out[region]]
    return next_id - 1


def _join_faces(uf, above, below) -> None:
    """Join pieces facing each other across a slab face when at least one is
    incomplete and each is the other's best partner."""
    (a, base_a, done_a), (b, base_b, done_b) = above, below
    both = (a > 0) & (b > 0)
    if not both.any():
        return
    pairs, counts = np.unique(np.stack([a[both], b[both]]), axis=1, return_counts=True)
    best_a, best_b = {}, {}
    for (i, j), c in zip(pairs.T.tolist(), counts.tolist(), strict=True):
        if c > best_a.get(i, (0, 0))[0]:
            best_a[i] = (c, j)
        if c > best_b.get(j, (0, 0))[0]:
            best_b[j] = (c, i)
    for i, (_, j) in best_a.items():
        if best_b[j][1] == i and not (done_a[i] and done_b[j]):
            uf.union(base_a + i, base_b + j)
