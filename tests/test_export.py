"""Exporting training pairs: layout, manifest, no-clobber, atomicity."""

import json

import numpy as np
import pytest
import tifffile

from napari_unet.export import Region, export_pairs, read_manifest


@pytest.fixture
def stack(rng):
    image = rng.integers(0, 4000, (3, 40, 50), dtype=np.uint16)
    labels = np.zeros((3, 40, 50), np.int32)
    labels[:, 5:15, 5:15] = 1
    labels[1, 20:30, 20:40] = 7
    return image, labels


def test_layout_manifest_and_round_trip(tmp_path, stack):
    image, labels = stack
    entries = export_pairs(image, labels, tmp_path / "ds", name="nuclei", scale=(2.0, 0.5, 0.25),
                           source_layer="nuclei", labels_layer="nuclei labels",
                           model="nuclei_default")
    assert [e["image"] for e in entries] == [f"images/nuclei_{i:04d}.tif" for i in range(3)]
    manifest = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    assert manifest["format"] == "napari-unet-dataset"
    first = manifest["pairs"][1]
    assert first["slice"] == [1] and first["scale"] == [0.5, 0.25]
    assert first["source_layer"] == "nuclei" and first["labels_layer"] == "nuclei labels"
    assert first["model"] == "nuclei_default" and first["hand_corrected"] is True
    assert first["n_objects"] == 2
    for z, entry in enumerate(entries):
        img = tifffile.imread(tmp_path / "ds" / entry["image"])
        lab = tifffile.imread(tmp_path / "ds" / entry["mask"])
        np.testing.assert_array_equal(img, image[z])
        np.testing.assert_array_equal(lab, labels[z])
        assert img.dtype == np.uint16 and lab.dtype.kind in "iu"


def test_appending_never_overwrites(tmp_path, stack):
    image, labels = stack
    export_pairs(image[0], labels[0], tmp_path, name="a")
    before = (tmp_path / "masks" / "a_0000.tif").read_bytes()
    export_pairs(image[1], labels[1], tmp_path, name="a")
    assert sorted(p.name for p in (tmp_path / "masks").iterdir()) == ["a_0000.tif", "a_0001.tif"]
    assert (tmp_path / "masks" / "a_0000.tif").read_bytes() == before
    assert len(read_manifest(tmp_path)["pairs"]) == 2
    # A stray file with the next name (e.g. copied by hand) is skipped too.
    (tmp_path / "images" / "a_0002.tif").write_bytes(b"not mine")
    entry = export_pairs(image[2], labels[2], tmp_path, name="a")[0]
    assert entry["image"] == "images/a_0003.tif"
    assert (tmp_path / "images" / "a_0002.tif").read_bytes() == b"not mine"


def test_selected_regions_only(tmp_path, stack):
    image, labels = stack
    entries = export_pairs(image, labels, tmp_path, name="x", regions=[
        Region(index=(1,), bbox=(20, 30, 20, 40), hand_corrected=True),
        Region(index=(2,), hand_corrected=False)])
    assert [e["slice"] for e in entries] == [[1], [2]]
    assert entries[0]["region"] == [20, 30, 20, 40] and entries[0]["shape"] == [10, 20]
    assert entries[1]["hand_corrected"] is False
    crop = tifffile.imread(tmp_path / entries[0]["mask"])
    assert (crop == 7).all()


def test_interrupted_export_leaves_no_half_pair(tmp_path, stack, monkeypatch):
    image, labels = stack
    import napari_unet.export as export

    real = export.write_tiff_atomic
    calls = []

    def failing(path, data, **kw):
        calls.append(path)
        if "images" in str(path):
            raise KeyboardInterrupt  # e.g. the user killed the process mid-pair
        return real(path, data, **kw)

    monkeypatch.setattr(export, "write_tiff_atomic", failing)
    with pytest.raises(KeyboardInterrupt):
        export_pairs(image[0], labels[0], tmp_path, name="a")
    leftovers = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert leftovers == [] and len(calls) == 2


def test_foreign_manifest_is_not_touched(tmp_path, stack):
    (tmp_path / "dataset.json").write_text('{"something": "else"}')
    with pytest.raises(ValueError, match="not a napari-unet dataset"):
        export_pairs(stack[0][0], stack[1][0], tmp_path, name="a")
    assert (tmp_path / "dataset.json").read_text() == '{"something": "else"}'
    assert not (tmp_path / "images").exists()


def test_bad_input(tmp_path, stack):
    image, labels = stack
    with pytest.raises(ValueError, match="differ"):
        export_pairs(image, labels[:2], tmp_path, name="a")
    with pytest.raises(ValueError, match="integers"):
        export_pairs(image, labels.astype(float), tmp_path, name="a")


def test_multichannel_images_are_stored_channels_first(tmp_path, rng):
    image = rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)  # RGB
    labels = np.ones((30, 40), np.uint8)
    entry = export_pairs(image, labels, tmp_path, name="rgb", channel_axis=-1)[0]
    assert entry["image_axes"] == "CYX"
    np.testing.assert_array_equal(tifffile.imread(tmp_path / entry["image"]),
                                  np.moveaxis(image, -1, 0))


def test_3d_labels_export_as_2d_training_planes(tmp_path):
    """3D labels (one id per nucleus through Z) export plane by plane and
    read back as 2D training pairs: training stays 2D."""
    from pathlib import Path

    from napari_unet.tiff import read_tiff
    from napari_unet.training.data import read_dataset

    samples = Path(__file__).resolve().parents[1] / "sample_data"
    image, scale = read_tiff(samples / "nuclei3d.tif")
    labels, _ = read_tiff(samples / "nuclei3d_reference_labels.tif")
    planes = [(10,), (11,)]
    entries = export_pairs(image, labels, tmp_path / "ds", name="n3d", scale=scale,
                           regions=[Region(p, None, True) for p in planes])
    assert [e["slice"] for e in entries] == [[10], [11]]
    shared = set(np.unique(labels[10])) & set(np.unique(labels[11])) - {0}
    assert len(shared) >= 15  # the same nuclei, same ids, in both planes
    data = read_dataset(tmp_path / "ds")
    assert [m.shape for m in data.labels] == [(256, 256)] * 2
    for z, mask in zip((10, 11), data.labels, strict=True):
        np.testing.assert_array_equal(mask, labels[z])
    assert entries[0]["n_objects"] == len(np.unique(labels[10])) - 1
