#!/usr/bin/env python
"""Build the reference ("corrected") nucleus labels of sample_data/nuclei3d.tif.

    python scripts/make_nuclei3d_reference.py [--out PATH] [--png DIR]

``nuclei3d.tif`` (30 x 256 x 256, cells3d nuclei) has no ground truth. This
script makes a stand-in for a hand-corrected segmentation with a classical
3D pipeline that never touches the U-Net, so the reference is independent of
the models it scores (``benchmarks/bench_finetune.py --part 3d``). It uses
what a 2D model cannot see: the nucleus above and below each plane.

1. Percentile-normalize the volume; Gaussian-smooth it with the same width
   in micrometres along every axis (``SIGMA_UM``: anisotropic in voxels).
2. Cores: one Otsu threshold of the whole smoothed volume, holes filled in
   3D and per plane, opened with a small ball (``OPEN_RADIUS_UM``) to cut
   thin bridges.
3. Split touching nuclei: 3D Euclidean distance transform of the cores with
   the voxel size (``sampling=``); seeds are its h-maxima (``SEED_H_UM``),
   merged when closer than ``SEED_MERGE_UM``; 3D watershed of the negated
   distance. Objects under ``MIN_VOLUME_UM3`` are dropped.
4. Outlines: one global threshold cuts bright nuclei wide and dim ones
   narrow, so every nucleus is instead cut at its own half maximum: the
   cores are grown by an intensity watershed into the voxels above the
   dimmest nucleus' half maximum, and each object keeps the voxels where a
   slightly z-smoothed image (``SIGMA_CUT_UM``) exceeds ``background +
   HALF_MAX_FRACTION * (its median - background)``. Holes left in a plane
   (nucleoli, dim chromatin) are given back to the nucleus around them.
5. Clean each plane: holes inside a nucleus' plane section are filled, and
   4-connected pieces under ``MIN_AREA_PX`` pixels (the rims at the top and
   bottom of a nucleus) are dropped, and so are 3D pieces apart from a
   nucleus' largest (rims of nuclei outside the field that the watershed
   gave to a neighbour). Each nucleus keeps **one id through
   all its planes** (3D instances, ids consecutive); per-plane instances,
   where needed, are the 2D pieces of each id in each plane.

Everything is deterministic (no random numbers), and the TIFF is written
with :func:`napari_unet.tiff.write_tiff_atomic` (uint16, zlib, ImageJ
hyperstack ZYX, the stack's voxel size), so a re-run gives the same bytes
with the same tifffile/zlib versions. ``--png DIR`` also writes, for every
plane, the label outlines over the image (2x enlarged) for visual checking.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "sample_data" / "nuclei3d.tif"
OUTPUT = ROOT / "sample_data" / "nuclei3d_reference_labels.tif"

NORMALIZE_PERCENTILES = (0.5, 99.8)  # of the whole volume
SIGMA_UM = 0.5  # Gaussian smoothing, micrometres, every axis
SIGMA_CUT_UM = (1.0, 0.5, 0.5)  # (z, y, x) smoothing of the image cut at half maximum
OPEN_RADIUS_UM = 0.8  # 3D opening: cuts bridges thinner than ~2x this
SEED_H_UM = 1.0  # h-maxima depth of the distance transform
SEED_MERGE_UM = 3.0  # seeds closer than this (after h-maxima) are merged
MIN_VOLUME_UM3 = 30.0  # smallest 3D object kept (a nucleus is ~500-1000 um^3)
MIN_AREA_PX = 50  # smallest 2D piece kept in a plane
BACKGROUND_GAP_UM = 2.0  # background is measured this far from any nucleus
HALF_MAX_FRACTION = 0.5  # a nucleus ends at this fraction of its median above background


def _ellipsoid(radius_um: float, spacing) -> np.ndarray:
    """Boolean ball of ``radius_um`` in a grid of voxel size ``spacing``."""
    half = [int(np.floor(radius_um / s)) for s in spacing]
    grids = np.ogrid[tuple(slice(-h, h + 1) for h in half)]
    return sum((g * s) ** 2 for g, s in zip(grids, spacing, strict=True)) <= radius_um ** 2


def _fill_holes_planes(mask: np.ndarray) -> np.ndarray:
    out = ndi.binary_fill_holes(mask)
    for z in range(out.shape[0]):
        out[z] = ndi.binary_fill_holes(out[z])
    return out


def _seeds(distance: np.ndarray, mask: np.ndarray, spacing) -> np.ndarray:
    """Labelled seed regions: h-maxima of the distance, close ones merged."""
    from skimage.morphology import h_maxima

    # h_maxima works on integers without rounding surprises: 0.01 um steps.
    dist_q = np.round(distance * 100).astype(np.int32)
    peaks = h_maxima(dist_q, int(round(SEED_H_UM * 100))).astype(bool) & mask
    # Merge plateaus/peaks of one nucleus that lie within SEED_MERGE_UM.
    grown = ndi.binary_dilation(peaks, _ellipsoid(SEED_MERGE_UM / 2, spacing)) & mask
    seeds, _ = ndi.label(grown, structure=np.ones((3, 3, 3), bool))
    return seeds


def reference_labels(image: np.ndarray, spacing) -> tuple[np.ndarray, dict]:
    """3D instance labels (uint16, one id per nucleus) of a ZYX nuclei stack, and stats."""
    from skimage.filters import threshold_otsu
    from skimage.segmentation import watershed

    spacing = tuple(float(s) for s in spacing)
    img = image.astype(np.float32)
    lo, hi = np.percentile(img, NORMALIZE_PERCENTILES)
    img = np.clip((img - lo) / (hi - lo), 0, 1)
    smooth = ndi.gaussian_filter(img, [SIGMA_UM / s for s in spacing])
    level = threshold_otsu(smooth)
    mask = _fill_holes_planes(smooth > level)
    mask = ndi.binary_opening(mask, _ellipsoid(OPEN_RADIUS_UM, spacing))
    mask = _fill_holes_planes(mask)

    distance = ndi.distance_transform_edt(mask, sampling=spacing)
    seeds = _seeds(distance, mask, spacing)
    cores = watershed(-distance, seeds, mask=mask)

    voxel = float(np.prod(spacing))
    sizes = np.bincount(cores.ravel())
    small = np.flatnonzero(sizes * voxel < MIN_VOLUME_UM3)
    cores[np.isin(cores, small[small > 0])] = 0

    # Background level: the smoothed image away from every nucleus.
    far = ~ndi.binary_dilation(cores > 0, _ellipsoid(BACKGROUND_GAP_UM, spacing))
    background = float(np.median(smooth[far]))
    # Each nucleus ends at half its own (median) brightness above background:
    # grow the cores by intensity into a generous mask, then cut every
    # object at its own half-maximum level.
    ids = np.arange(1, int(cores.max()) + 1)
    medians = np.asarray(ndi.median(smooth, cores, ids)) if len(ids) else np.zeros(0)
    levels = background + HALF_MAX_FRACTION * (np.nan_to_num(medians) - background)
    low = background + HALF_MAX_FRACTION * (float(np.nanmin(medians)) - background)
    grown = watershed(-smooth, cores, mask=(smooth > low) | (cores > 0))
    lut = np.concatenate([[np.inf], levels])
    # The cut uses a copy smoothed more along z: the dim, noisy top and bottom
    # caps get smooth rims, while the narrow gaps between neighbours (xy
    # smoothing unchanged) survive.
    cut_sigma = [u / s for u, s in zip(SIGMA_CUT_UM, spacing, strict=True)]
    smoother = ndi.gaussian_filter(img, cut_sigma)
    labels3d = np.where(smoother > lut[grown], grown, 0)

    out = np.zeros(labels3d.shape, np.uint16)
    for z in range(labels3d.shape[0]):
        plane = labels3d[z]
        for obj in np.unique(plane[plane > 0]):
            # Holes (nucleoli, dim chromatin) belong to the nucleus around them.
            own = ndi.binary_fill_holes(plane == obj) & ((plane == obj) | (plane == 0))
            pieces, n = ndi.label(own)  # 4-connected
            areas = np.bincount(pieces.ravel())
            for k in range(1, n + 1):
                if areas[k] >= MIN_AREA_PX:
                    out[z][pieces == k] = obj  # the nucleus keeps its 3D id
    # A nucleus is its largest 26-connected 3D piece: stray pieces are rims of
    # nuclei outside the field that the watershed gave to a neighbour.
    for obj, box in enumerate(ndi.find_objects(out), start=1):
        if box is None:
            continue
        pieces, n = ndi.label(out[box] == obj, structure=np.ones((3, 3, 3), bool))
        if n > 1:
            largest = np.bincount(pieces.ravel())[1:].argmax() + 1
            out[box][(pieces > 0) & (pieces != largest)] = 0
    # Consecutive ids 1..n, one per nucleus through the whole stack.
    ids = np.unique(out[out > 0])
    lut = np.zeros(int(out.max()) + 1, np.uint16)
    lut[ids] = np.arange(1, len(ids) + 1, dtype=np.uint16)
    out = lut[out]
    stats = {"otsu_level": level, "background": background, "n_objects_3d": len(ids),
             "objects_per_plane": [len(np.unique(p)) - 1 for p in out]}
    return out, stats


def write_overlays(image: np.ndarray, labels: np.ndarray, folder: Path, planes) -> None:
    """PNG of label outlines over the image, for each of ``planes``."""
    from skimage.io import imsave
    from skimage.segmentation import mark_boundaries

    folder.mkdir(parents=True, exist_ok=True)
    lo, hi = np.percentile(image, (0.5, 99.8))
    for z in planes:
        p = np.clip((image[z].astype(np.float32) - lo) / (hi - lo) * 1.5, 0, 1)
        rgb = mark_boundaries(np.stack([p] * 3, -1), labels[z].astype(int),
                              color=(1, 0.2, 0.2), mode="inner")
        rgb = np.repeat(np.repeat(rgb, 2, 0), 2, 1)
        imsave(folder / f"nuclei3d_reference_z{z:02d}.png", (rgb * 255).astype(np.uint8),
               check_contrast=False)


def main() -> None:
    from napari_unet.tiff import read_tiff, read_tiff_metadata, write_tiff_atomic

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=OUTPUT,
                        help="output TIFF, replaced if it exists (default: %(default)s)")
    parser.add_argument("--png", type=Path, help="also write outline overlays to this folder")
    args = parser.parse_args()

    image, scale = read_tiff(SOURCE)
    meta = read_tiff_metadata(SOURCE)
    if image.ndim != 3 or scale is None:
        raise SystemExit(f"{SOURCE}: expected a calibrated ZYX stack, got {image.shape}")
    labels, stats = reference_labels(image, scale)
    write_tiff_atomic(args.out, labels, scale=scale, axes="ZYX", unit=meta.unit or "um",
                      overwrite=True)
    if args.png:
        write_overlays(image, labels, args.png, range(labels.shape[0]))
    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()
    print(f"{args.out.name}: {labels.shape} {labels.dtype}, {stats['n_objects_3d']} 3D "
          f"nuclei, {sum(stats['objects_per_plane'])} plane sections (normalized, smoothed "
          f"volume: Otsu level {stats['otsu_level']:.4f}, background "
          f"{stats['background']:.4f})")
    print(f"objects per plane: {stats['objects_per_plane']}")
    print(f"{args.out.stat().st_size} bytes  sha256 {digest}")


if __name__ == "__main__":
    main()
