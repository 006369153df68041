"""The Export training data widget, in a real napari viewer (run under Xvfb)."""

import json

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

import tifffile  # noqa: E402

from napari_unet._widgets import _edits, export_widget  # noqa: E402
from napari_unet._widgets._edits import EditTracker, tracker_for  # noqa: E402
from napari_unet._widgets.export_widget import ExportWidget  # noqa: E402
from napari_unet.training import read_dataset  # noqa: E402

TIMEOUT = 30_000


@pytest.fixture
def notes(monkeypatch):
    """Notifications shown by the widget, as (kind, message)."""
    shown = []
    for kind in ("error", "info"):
        monkeypatch.setattr(export_widget, f"show_{kind}",
                            lambda msg, kind=kind: shown.append((kind, str(msg))))
    return shown


def scene(shape, seed=0):
    """An image and instance labels (a few squares per plane)."""
    rng = np.random.default_rng(seed)
    labels = np.zeros(shape, np.int32)
    for k, plane in enumerate(np.ndindex(*shape[:-2])):
        for j in range(3):
            y, x = rng.integers(0, shape[-2] - 12), rng.integers(0, shape[-1] - 12)
            labels[plane + (slice(y, y + 10), slice(x, x + 10))] = 3 * k + j + 1
    image = ((labels > 0) * 800 + rng.integers(100, 200, shape)).astype(np.uint16)
    return image, labels


def open_widget(viewer, folder) -> ExportWidget:
    _, widget = viewer.window.add_plugin_dock_widget("napari-tiled-unet", "Export training data")
    widget.folder.value = str(folder)
    return widget


def manifest(folder):
    return json.loads((folder / "dataset.json").read_text())["pairs"]


def test_whole_layer_layout_manifest_and_no_clobber(make_napari_viewer, tmp_path, notes):
    viewer = make_napari_viewer()
    image, truth = scene((3, 64, 64))
    viewer.add_image(image, name="stack", scale=(2, 0.5, 0.5), units="um")
    labels = viewer.add_labels(truth.copy(), name="stack labels", scale=(2, 0.5, 0.5),
                               units="um", metadata={"napari_unet": {"model": "tiny"}})
    widget = open_widget(viewer, tmp_path / "ds")
    assert isinstance(widget, ExportWidget)
    assert widget.image.value.name == "stack" and widget.label_layer.value is labels
    assert widget.base_name.value == "stack"
    widget.scope.value = "whole"
    assert len(widget.export()) == 3
    ds = tmp_path / "ds"
    assert sorted(p.name for p in (ds / "images").iterdir()) == [
        "stack_0000.tif", "stack_0001.tif", "stack_0002.tif"]
    assert sorted(p.name for p in (ds / "masks").iterdir()) == [
        "stack_0000.tif", "stack_0001.tif", "stack_0002.tif"]
    pairs = manifest(ds)
    assert [p["slice"] for p in pairs] == [[0], [1], [2]]
    assert {(p["source_layer"], p["labels_layer"], p["model"], p["unit"]) for p in pairs} == {
        ("stack", "stack labels", "tiny", "um")}
    assert all(p["scale"] == [0.5, 0.5] and p["hand_corrected"] is False for p in pairs)
    np.testing.assert_array_equal(tifffile.imread(ds / "images" / "stack_0001.tif"), image[1])
    np.testing.assert_array_equal(tifffile.imread(ds / "masks" / "stack_0002.tif"), truth[2])
    first = (ds / "masks" / "stack_0001.tif").read_bytes()

    # An edit on plane 1, then a second export: new indices, nothing overwritten.
    viewer.dims.set_current_step(0, 1)
    labels.brush_size = 5
    labels.paint((1, 30, 30), 77)
    widget.export()
    pairs = manifest(ds)
    assert [p["image"] for p in pairs[3:]] == [f"images/stack_000{i}.tif" for i in (3, 4, 5)]
    assert [p["hand_corrected"] for p in pairs[3:]] == [False, True, False]
    assert (ds / "masks" / "stack_0001.tif").read_bytes() == first
    assert (tifffile.imread(ds / "masks" / "stack_0004.tif") == 77).any()
    assert len(read_dataset(ds).images) == 6
    assert not [n for n in notes if n[0] == "error"], notes


def test_edited_slices_and_regions(make_napari_viewer, tmp_path, notes, monkeypatch):
    viewer = make_napari_viewer()
    image, truth = scene((3, 128, 128))
    viewer.add_image(image, name="nuclei")
    labels = viewer.add_labels(truth.copy(), name="corrected")
    widget = open_widget(viewer, tmp_path / "ds")

    widget.scope.value = "edited slices"
    assert widget.export() is None  # nothing edited yet
    assert "was edited" in notes[-1][1] and not (tmp_path / "ds").exists()

    viewer.dims.set_current_step(0, 2)
    labels.brush_size = 3
    labels.paint((2, 10, 10), 50)
    written = widget.export()
    assert [(p["slice"], p["hand_corrected"]) for p in written] == [([2], True)]

    widget.scope.value = "edited regions"
    monkeypatch.setattr(export_widget, "MIN_CROP", 48)
    written = widget.export()
    # The edited 32-px tile, one tile of margin (clipped at 0), grown to 48 px.
    assert [(p["slice"], p["region"]) for p in written] == [([2], [0, 64, 0, 64])]
    mask = tifffile.imread(tmp_path / "ds" / written[0]["mask"])
    np.testing.assert_array_equal(mask, labels.data[2, :64, :64])
    assert [kind for kind, _ in notes] == ["error", "info", "info"], notes


def test_current_slice_of_lazy_stack_in_worker(make_napari_viewer, qtbot, tmp_path, notes,
                                               monkeypatch):
    da = pytest.importorskip("dask.array")
    viewer = make_napari_viewer()
    image, truth = scene((4, 2, 48, 64))  # (Z, C, Y, X): a channel axis to drop
    viewer.add_image(da.from_array(image, chunks=(1, 2, 48, 64)), name="multi",
                     axis_labels=("z", "c", "y", "x"))
    viewer.add_labels(truth[:, 0], name="multi labels")
    widget = open_widget(viewer, tmp_path / "ds")
    monkeypatch.setattr(export_widget, "WORKER_PIXELS", 0)
    viewer.dims.set_current_step(0, 3)
    widget.scope.value = "current"
    worker = widget.export()
    qtbot.waitUntil(lambda: bool(notes), timeout=TIMEOUT)
    assert notes[-1][0] == "info", notes
    [pair] = manifest(tmp_path / "ds")
    assert pair["slice"] == [3] and pair["image_axes"] == "CYX"
    assert pair["hand_corrected"] is False and pair["model"] is None
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "ds" / pair["image"]), image[3])
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "ds" / pair["mask"]), truth[3, 0])
    qtbot.waitUntil(lambda: not worker.is_running, timeout=TIMEOUT)


def test_errors_are_notified_and_nothing_is_written(make_napari_viewer, tmp_path, notes):
    viewer = make_napari_viewer()
    widget = open_widget(viewer, tmp_path / "ds")
    assert widget.export() is None and "choose an image layer" in notes[-1][1]

    image, truth = scene((64, 64))
    viewer.add_image(image, name="img")
    viewer.add_labels(truth[:60], name="short")
    widget.scope.value = "whole"
    assert widget.export() is None
    assert notes[-1][0] == "error" and "do not have the same shape" in notes[-1][1]

    viewer.add_labels(truth, name="good")
    (tmp_path / "file").write_text("x")
    widget.folder.value = str(tmp_path / "file")
    assert widget.export() is None and "is a file" in notes[-1][1]

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "dataset.json").write_text('{"something": "else"}')
    widget.folder.value = str(foreign)
    assert widget.export() is None and "not a napari-unet dataset" in notes[-1][1]
    assert sorted(p.name for p in foreign.iterdir()) == ["dataset.json"]
    assert not (tmp_path / "ds").exists()
    assert all(kind == "error" for kind, _ in notes)


def test_tracker_registry_is_shared_and_hands_over(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    _, truth = scene((2, 64, 64))
    early = viewer.add_labels(truth.copy(), name="early")
    assert tracker_for(early, create=False) is None  # nobody tracks it yet
    open_widget(viewer, tmp_path / "ds")
    auto = tracker_for(early, create=False)
    assert auto is not None and tracker_for(early) is auto
    viewer.dims.set_current_step(0, 1)
    early.paint((1, 40, 40), 9)
    assert auto.edited_planes() == {(1,)} and 9 in auto.touched_ids

    # A widget's own tracker (as the Segment widget makes) takes over the record.
    own = EditTracker(early)
    assert tracker_for(early) is own and own.edited_planes() == {(1,)}
    assert 9 in own.touched_ids
    early.paint((0, 5, 5), 4)
    assert own.edited_planes() == {(0,), (1,)}
    assert auto.edited_planes() == {(1,)}  # disconnected
    assert EditTracker(early) is not tracker_for(early)  # the first owner stays

    # Registry-owned trackers do not keep their layer alive.
    import gc
    import weakref

    from napari.layers import Labels

    layer = Labels(np.zeros((8, 8), np.int32))
    ref = weakref.ref(layer)
    assert isinstance(tracker_for(layer), _edits._RegistryTracker)
    del layer
    gc.collect()
    assert ref() is None


def test_what_counts_reviewed_and_corrected_regions(make_napari_viewer, tmp_path, notes):
    import pandas as pd

    from napari_unet.counted import counted_mask

    viewer = make_napari_viewer()
    image, truth = scene((2, 128, 128))
    viewer.add_image(image, name="nuclei")
    labels = viewer.add_labels(truth.copy(), name="corrected")
    widget = open_widget(viewer, tmp_path / "ds")
    assert widget.counts.value == "whole"  # whole-image export stays the default
    widget.counts.value = "reviewed"
    widget.scope.value = "whole"
    assert widget.export() is None  # nothing reviewed or edited yet
    assert "reviewed" in notes[-1][1] and not (tmp_path / "ds").exists()

    # Object 2 of plane 0 is reviewed; plane 1 gets a brush stroke.
    labels.features = pd.DataFrame({"index": [1, 2, 3, 4], "confidence": [0.9, 0.2, 0.5, 0.7],
                                    "reviewed": [False, True, False, False]})
    viewer.dims.set_current_step(0, 1)
    labels.brush_size = 3
    labels.paint((1, 100, 100), 50)
    written = widget.export()
    assert [(p["slice"], p["hand_corrected"]) for p in written] == [([0], False), ([1], True)]
    ds = read_dataset(tmp_path / "ds")
    np.testing.assert_array_equal(ds.counted[0], counted_mask(truth[0], [2]))
    edited = np.zeros((128, 128), bool)
    edited[96:128, 96:128] = True  # the stroke's 32-px tile
    np.testing.assert_array_equal(ds.counted[1], counted_mask(labels.data[1], [2], edited))
    assert ds.counted[0][truth[0] == 2].all() and not ds.counted[0][truth[0] == 1].any()
    assert "reviewed and corrected" in notes[-1][1]

    # The current slice holds nothing that counts: nothing is written.
    with_counted = labels.data.copy()
    labels.features = pd.DataFrame({"index": [1], "reviewed": [True]})  # on plane 0
    fresh = viewer.add_labels(with_counted, name="fresh")  # its edits are not tracked
    fresh.features = labels.features
    widget.label_layer.value = fresh
    widget.scope.value = "current"
    viewer.dims.set_current_step(0, 1)
    assert widget.export() == [] and "nothing reviewed or corrected" in notes[-1][1]
    widget.label_layer.value = labels

    # Crops around what counts only; plain export still writes no counted masks.
    widget.scope.value = "edited regions"
    crops = widget.export()
    assert {tuple(p["slice"]) for p in crops} == {(0,), (1,)}
    assert all(p["counted"] and p["region"] for p in crops)
    widget.counts.value = "whole"
    assert widget.export()[0]["counted"] is None
