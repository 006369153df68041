"""The Segment dock's review panel: objects by confidence, focus, reviewed flags.

The panel is tested on hand-made labels and probabilities (known
confidence order), then end to end in the dock with a tiny model.
"""

import weakref

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from napari.utils.colormaps import DirectLabelColormap  # noqa: E402

from napari_unet import ModelInfo, object_confidence  # noqa: E402
from napari_unet._widgets import _notify, _review_data  # noqa: E402
from napari_unet._widgets._edits import EditTracker  # noqa: E402
from napari_unet._widgets._results import Result  # noqa: E402
from napari_unet._widgets._review import ReviewPanel, confidence_colour  # noqa: E402
from napari_unet.scope import Scope, whole_scope  # noqa: E402

INFO = ModelInfo(outputs=["foreground"])
INSTANCE = {"mode": "instance"}
TIMEOUT = 120_000


def scene_2d():
    labels = np.zeros((64, 64), np.int32)
    probs = np.full((1, 64, 64), 0.02, np.float32)
    for label, (y, x), p in ((1, (5, 5), 0.95), (2, (30, 30), 0.5), (3, (45, 10), 0.8)):
        labels[y:y + 10, x:x + 12] = label
        probs[0, y:y + 10, x:x + 12] = p
    return labels, probs


def reviewed_result(viewer, labels, probs, region=None, **kwargs):
    image = viewer.add_image(np.zeros(labels.shape, np.float32), **kwargs)
    layer = viewer.add_labels(labels, **kwargs)
    result = Result(weakref.ref(image), layer, EditTracker(layer), geometry=kwargs)
    region = region or whole_scope(labels.shape)
    _review_data.update(result, _review_data.measure(labels[region.target], probs, INFO, region),
                        INSTANCE)
    return result


def world_centre(layer, box):
    lo = np.array([b[0] for b in box], float)
    hi = np.array([b[1] for b in box], float) - 1
    return np.asarray(layer.data_to_world((lo + hi) / 2))


def test_objects_sorted_by_confidence_and_clicks_focus_them(make_napari_viewer):
    viewer = make_napari_viewer()
    labels, probs = scene_2d()
    result = reviewed_result(viewer, labels, probs, scale=(0.5, 0.5), translate=(3, 4))
    layer = result.layer
    panel = ReviewPanel(viewer)
    panel.show(result)

    expected = object_confidence(labels, probs)
    assert [r[0] for r in panel.rows] == sorted(expected, key=expected.get) == [2, 3, 1]
    assert all(abs(c - expected[i]) < 1e-9 and not r for i, c, r in panel.rows)
    # The layer's features: what napari shows on hover, and Export reads.
    assert list(layer.features.columns) == ["index", "confidence", "reviewed"]
    assert list(layer.features["index"]) == [1, 2, 3]
    assert layer.features["reviewed"].dtype == bool
    status = layer.get_status((35, 36), world=False)
    assert "confidence: " in str(status), status
    assert panel.summary.value == "3 objects, 0 reviewed"

    viewer.reset_view()
    fit_zoom = viewer.camera.zoom
    panel.objects.value = [3]  # a click on the entry
    assert layer.selected_label == 3 and viewer.layers.selection.active is layer
    np.testing.assert_allclose(viewer.camera.center[-2:], world_centre(layer, result.boxes[3]))
    np.testing.assert_allclose(world_centre(layer, result.boxes[3]),
                               (3 + 0.5 * 49.5, 4 + 0.5 * 15.5))
    # The 6-unit-wide object spans a quarter of the scene (31.5 units) that filled the view.
    assert viewer.camera.zoom == pytest.approx(fit_zoom * 31.5 * 0.25 / 6)

    # Mark reviewed, then "next unreviewed" goes down the list, lowest first.
    panel.mark_reviewed()
    assert dict(zip(layer.features["index"], layer.features["reviewed"], strict=True)) == {
        1: False, 2: False, 3: True}
    assert panel.next_unreviewed() == 2 and layer.selected_label == 2
    assert panel.objects.value == [2]
    panel.mark_reviewed()
    assert panel.next_unreviewed() == 1
    panel.mark_reviewed([1])
    assert panel.next_unreviewed() is None and panel.summary.value == "3 objects, 3 reviewed"
    assert [r[2] for r in panel.rows] == [True, True, True]

    # Colour by confidence, and back.
    original = layer.colormap
    panel.colour.value = True
    assert isinstance(layer.colormap, DirectLabelColormap)
    low, high = layer.colormap.color_dict[2], layer.colormap.color_dict[1]
    assert low[0] - low[1] > high[0] - high[1]  # redder: doubtful, greener: trusted
    np.testing.assert_allclose(low, confidence_colour(expected[2]))
    panel.colour.value = False
    assert layer.colormap is original
    panel.show(None)
    assert panel.rows == [] and not panel.next_button.enabled


def test_stack_objects_open_on_their_plane_and_partial_updates_keep_flags(make_napari_viewer):
    viewer = make_napari_viewer()
    labels = np.zeros((5, 48, 48), np.int32)
    probs = np.full((1, 5, 48, 48), 0.02, np.float32)
    labels[3, 30:40, 20:28], probs[0, 3, 30:40, 20:28] = 7, 0.6
    labels[0:2, 5:15, 5:15], probs[0, 0:2, 5:15, 5:15] = 8, 0.9
    result = reviewed_result(viewer, labels, probs, scale=(2, 1, 1))
    panel = ReviewPanel(viewer)
    panel.show(result)
    assert result.boxes[7] == ((3, 4), (30, 40), (20, 28))
    panel.objects.value = [7]
    assert viewer.dims.current_step[0] == 3 and result.layer.selected_label == 7
    np.testing.assert_allclose(viewer.camera.center[-2:], (34.5, 23.5))
    panel.objects.value = [8]
    assert viewer.dims.current_step[0] in (0, 1)

    # A re-run of plane 3 replaces its objects; object 8 elsewhere keeps its flag.
    panel.mark_reviewed([8, 7])
    plane = labels[3].copy()
    plane[plane == 7] = 9
    region = Scope((3,), (slice(0, 48), slice(0, 48)), (slice(0, 48), slice(0, 48)), 3)
    result.layer.data[3] = plane
    _review_data.update(result, _review_data.measure(plane, probs[:, 3], INFO, region), INSTANCE)
    panel.show(result)
    assert {r[0]: r[2] for r in panel.rows} == {8: True, 9: False}
    assert 7 not in result.boxes and result.boxes[9][0] == (3, 4)
    # A semantic result has no objects to review.
    _review_data.update(result, None, {"mode": "semantic"})
    panel.show(result)
    assert panel.rows == [] and panel.summary.value == "no objects with a confidence"


def test_dock_fills_the_review_after_runs_and_relabels(make_napari_viewer, qtbot, model_files,
                                                       worker_control, tmp_path, monkeypatch):
    monkeypatch.setenv("NAPARI_UNET_CONFIG_DIR", str(tmp_path / "config"))
    errors = []
    monkeypatch.setattr(_notify, "show_error", errors.append)
    from scipy import ndimage as ndi

    viewer = make_napari_viewer()
    rng = np.random.default_rng(0)
    viewer.add_image(ndi.gaussian_filter(rng.random((96, 128)).astype(np.float32), 2),
                     name="nuclei")
    _, widget = viewer.window.add_plugin_dock_widget("napari-tiled-unet", "Segment")
    assert len(widget.review.widget) == 0  # built with the first result, not when opening
    assert widget.load_model_file(model_files["tiny"])
    widget.tile_size.value, widget.overlap.value, widget.threshold.value = 64, 16, 0.55
    widget.run()
    qtbot.waitUntil(lambda: not widget.busy, timeout=TIMEOUT)
    assert not errors, errors
    layer = viewer.layers["nuclei labels"]
    ids = set(np.unique(layer.data)) - {0}
    assert ids and set(layer.features["index"]) == ids
    qtbot.waitUntil(lambda: widget.review.result is not None, timeout=TIMEOUT)
    assert widget.review.result.layer is layer and len(widget.review.rows) == len(ids)
    confidences = [r[1] for r in widget.review.rows]
    assert confidences == sorted(confidences) and 0 <= min(confidences) <= max(confidences) <= 1

    # New settings re-label: the review follows the new objects.
    widget.threshold.value = 0.6
    qtbot.waitUntil(lambda: layer.features is not None and set(layer.features["index"])
                    == set(np.unique(layer.data)) - {0} and not widget.busy, timeout=TIMEOUT)
    qtbot.waitUntil(lambda: len(widget.review.rows) == len(layer.features), timeout=TIMEOUT)
    label = widget.review.next_unreviewed()
    assert label is not None and layer.selected_label == label
    box = widget.review.result.boxes[label]
    assert (layer.data[tuple(slice(a, b) for a, b in box)] == label).any()

    # Reviewed marks are the user's work: new settings no longer re-label the
    # layer (a warning says so), and Run writes a new layer instead.
    warnings = []
    monkeypatch.setattr(_notify, "show_warning", warnings.append)
    widget.review.mark_reviewed()
    before = layer.data.copy()
    assert layer.features["reviewed"].sum() == 1
    widget.threshold.value = 0.5
    qtbot.waitUntil(lambda: bool(warnings), timeout=TIMEOUT)
    assert "reviewed" in warnings[-1] and np.array_equal(layer.data, before)
    widget.run()
    qtbot.waitUntil(lambda: not widget.busy and "nuclei labels [2]" in viewer.layers,
                    timeout=TIMEOUT)
    assert np.array_equal(layer.data, before) and layer.features["reviewed"].sum() == 1
