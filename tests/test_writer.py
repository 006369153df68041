"""Labels writer (npe2) and the atomic TIFF helpers in napari_unet.tiff."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tifffile

from napari_unet import tiff as nio
from napari_unet._writer import write_labels
from napari_unet.tiff import read_tiff, read_tiff_metadata, smallest_int_dtype, write_tiff_atomic


def _labels(shape, n, dtype, rng):
    data = rng.integers(0, n + 1, size=shape).astype(dtype)
    data.flat[0] = n  # make sure the largest id is present
    return data


def _only_files(folder):
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize(
    ("dtype", "n", "shape", "scale"),
    [
        (np.uint8, 200, (40, 50), (0.645, 0.645)),  # ImageJ
        (np.uint16, 60000, (6, 30, 40), (0.29, 0.26, 0.26)),  # ImageJ, Z spacing
        (np.uint32, 70000, (5, 20, 30), (2.0, 0.1234567, 0.5)),  # OME-TIFF
    ],
)
def test_labels_round_trip_keeps_data_dtype_and_scale(tmp_path, rng, dtype, n, shape, scale):
    data = _labels(shape, n, dtype, rng)
    meta = {"name": "gt", "scale": scale, "units": ("micrometer",) * len(shape)}

    [written] = write_labels(str(tmp_path / "labels.tif"), data, meta)

    back = tifffile.imread(written)
    assert back.dtype == dtype
    np.testing.assert_array_equal(back, data)
    back2, scale2 = read_tiff(written)
    np.testing.assert_array_equal(back2, data)
    assert scale2 == pytest.approx(scale, rel=1e-7)
    assert read_tiff_metadata(written).unit == "um"
    assert _only_files(tmp_path) == ["labels.tif"]  # no temp file left behind


def test_imagej_metadata_is_what_fiji_reads(tmp_path, rng):
    data = _labels((4, 16, 16), 9, np.uint8, rng)
    [written] = write_labels(str(tmp_path / "z.tif"), data,
                             {"scale": (0.29, 0.26, 0.26), "units": ("micrometer",) * 3})
    with tifffile.TiffFile(written) as tif:
        assert tif.is_imagej
        assert tif.imagej_metadata["spacing"] == pytest.approx(0.29)
        assert tif.imagej_metadata["unit"] == "micron"
        num, den = tif.pages.first.tags["XResolution"].value
        assert den / num == pytest.approx(0.26)


def test_ome_metadata_for_32bit_labels(tmp_path, rng):
    data = _labels((3, 8, 8), 100_000, np.uint32, rng)
    [written] = write_labels(str(tmp_path / "big.tiff"), data, {"scale": (1.0, 0.5, 0.25)})
    with tifffile.TiffFile(written) as tif:
        assert tif.is_ome
        assert 'PhysicalSizeX="0.25"' in tif.ome_metadata


@pytest.mark.parametrize(
    ("dtype", "values", "expected"),
    [
        (np.int32, [0, 1, 300], np.uint16),  # napari's default Labels dtype
        (np.int64, [0, 70_000], np.uint32),
        (np.int32, [0, 5], np.uint8),
        (np.int32, [-1, 0, 5], np.int8),
        (np.int64, [-40_000, 3], np.int32),
        (bool, [False, True], np.uint8),
    ],
)
def test_smallest_safe_integer_dtype(tmp_path, dtype, values, expected):
    data = np.array(values, dtype=dtype).reshape(1, -1).repeat(3, axis=0)
    assert smallest_int_dtype(data) == expected

    [written] = write_labels(str(tmp_path / "l.tif"), data, {"scale": (1.0, 1.0)})
    back = tifffile.imread(written)
    assert back.dtype == expected
    np.testing.assert_array_equal(back, data.astype(expected))


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64])
def test_refuses_non_integer_labels(tmp_path, dtype):
    data = np.zeros((8, 8), dtype=dtype)
    with pytest.raises(TypeError, match=f"integer.*dtype {np.dtype(dtype)}"):
        write_labels(str(tmp_path / "p.tif"), data, {"name": "probabilities"})
    assert _only_files(tmp_path) == []


def test_uncalibrated_layer_writes_no_calibration(tmp_path):
    data = np.ones((8, 8), np.uint8)
    [written] = write_labels(str(tmp_path / "l.tif"), data,
                             {"scale": (1.0, 1.0), "units": ("pixel", "pixel")})
    assert read_tiff(written)[1] is None


def test_extension_is_added(tmp_path):
    [written] = write_labels(str(tmp_path / "labels"), np.ones((4, 4), np.uint8), {})
    assert written.endswith("labels.tif") and os.path.isfile(written)


def test_write_labels_replaces_existing_file(tmp_path):
    target = tmp_path / "l.tif"
    target.write_bytes(b"old")
    write_labels(str(target), np.full((4, 4), 7, np.uint8), {})
    assert tifffile.imread(target).max() == 7
    assert _only_files(tmp_path) == ["l.tif"]


def test_atomic_no_clobber(tmp_path):
    target = tmp_path / "x.tif"
    target.write_bytes(b"precious")
    with pytest.raises(FileExistsError):
        write_tiff_atomic(target, np.zeros((4, 4), np.uint8))
    assert target.read_bytes() == b"precious"
    assert _only_files(tmp_path) == ["x.tif"]

    write_tiff_atomic(target, np.ones((4, 4), np.uint8), overwrite=True)
    assert tifffile.imread(target).max() == 1


def test_atomic_no_clobber_when_file_appears_during_write(tmp_path, monkeypatch):
    target = tmp_path / "x.tif"
    real_write = nio._write

    def write_then_race(fh, *args):
        real_write(fh, *args)
        target.write_bytes(b"written by someone else meanwhile")

    monkeypatch.setattr(nio, "_write", write_then_race)
    with pytest.raises(FileExistsError):
        write_tiff_atomic(target, np.zeros((4, 4), np.uint8))
    assert target.read_bytes() == b"written by someone else meanwhile"
    assert _only_files(tmp_path) == ["x.tif"]


def test_failed_write_keeps_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "x.tif"
    write_tiff_atomic(target, np.full((4, 4), 3, np.uint8))
    before = target.read_bytes()

    def crash(fh, *args):
        fh.write(b"partial data")
        raise OSError("disk full")

    monkeypatch.setattr(nio, "_write", crash)
    with pytest.raises(OSError, match="disk full"):
        write_labels(str(target), np.zeros((4, 4), np.uint8), {})
    assert target.read_bytes() == before
    assert _only_files(tmp_path) == ["x.tif"]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_permissions_follow_umask(tmp_path):
    old = os.umask(0o022)
    try:
        path = write_tiff_atomic(tmp_path / "x.tif", np.zeros((4, 4), np.uint8))
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644  # not mkstemp's 0600


def test_io_rejects_mismatched_scale_and_axes(tmp_path):
    data = np.zeros((2, 4, 4), np.uint8)
    with pytest.raises(ValueError, match="scale"):
        write_tiff_atomic(tmp_path / "a.tif", data, scale=(1.0, 1.0))
    with pytest.raises(ValueError, match="axes"):
        write_tiff_atomic(tmp_path / "a.tif", data, axes="YX")
    assert _only_files(tmp_path) == []


def test_save_selected_labels_layer_from_viewer(make_napari_viewer, tmp_path, rng):
    """What File > Save Selected Layer does once our writer is chosen."""
    from npe2 import PluginManager

    viewer = make_napari_viewer()
    # Offered by the save dialog for a single Labels layer:
    writers = PluginManager.instance().iter_compatible_writers(["labels"])
    assert "napari-tiled-unet.write_labels" in [w.command for w in writers]

    data = _labels((3, 20, 20), 40, np.int32, rng)
    layer = viewer.add_labels(data, scale=(0.29, 0.26, 0.26), units="um", name="gt")
    viewer.layers.selection = {layer}

    [written] = viewer.layers.save(str(tmp_path / "gt.tif"), selected=True,
                                   plugin="napari-tiled-unet")

    back, scale = read_tiff(written)
    assert back.dtype == np.uint8
    np.testing.assert_array_equal(back, data)
    assert scale == pytest.approx((0.29, 0.26, 0.26))


def test_io_writer_and_samples_stay_headless():
    """The writer, the sample loaders and io import neither napari nor Qt."""
    code = (
        "import sys, numpy as np\n"
        "import napari_unet.tiff, napari_unet._writer, napari_unet._sample_data as s\n"
        "s.nuclei_2d(); s.nuclei_3d()\n"
        "heavy = {'napari', 'qtpy', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6', 'vispy',\n"
        "         'tensorflow', 'keras'}\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120).stdout
    assert out.strip() == "[]"
