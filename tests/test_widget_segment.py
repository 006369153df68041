"""The Segment dock widget, in a real napari viewer (run under Xvfb).

Tiny models built in a subprocess keep the file fast; their random weights
do not segment anything meaningful, so tests check geometry, bookkeeping
and that nothing the user did is lost, not segmentation quality. The
network runs in the dock's worker process: tests steer it through files
(see worker_hooks), and this process never imports TensorFlow.
"""

import json
import os
import signal
import sys

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from napari.layers import Labels  # noqa: E402
from worker_hooks import network_calls  # noqa: E402

from napari_unet import probabilities_to_labels  # noqa: E402
from napari_unet._widgets import SegmentWidget, _notify  # noqa: E402
from napari_unet._widgets._models import LOAD_ENTRY, ModelRegistry  # noqa: E402

TIMEOUT = 120_000  # ms; the machine may be busy (and a fresh worker imports TensorFlow)


@pytest.fixture(autouse=True)
def _config_dir(tmp_path, monkeypatch, worker_control):
    monkeypatch.setenv("NAPARI_UNET_CONFIG_DIR", str(tmp_path / "config"))


@pytest.fixture
def control(worker_control):
    """``(folder, segment worker client)``; no control file is left from another test."""
    folder, clients = worker_control
    for name in ("hold", "memory"):
        (folder / name).unlink(missing_ok=True)
    yield folder, clients["segment"]
    (folder / "hold").unlink(missing_ok=True)


@pytest.fixture
def model_file(model_files):
    return model_files["tiny"]


@pytest.fixture
def notes(monkeypatch):
    """Notifications shown by the widget, as (kind, message)."""
    shown = []
    for kind in ("error", "warning", "info"):
        monkeypatch.setattr(_notify, f"show_{kind}",
                            lambda msg, kind=kind: shown.append((kind, str(msg))))
    return shown


def blobs(shape, seed=0):
    rng = np.random.default_rng(seed)
    from scipy import ndimage as ndi

    return ndi.gaussian_filter(rng.random(shape).astype(np.float32), 2)


def open_widget(viewer, model_file) -> SegmentWidget:
    _, widget = viewer.window.add_plugin_dock_widget("napari-tiled-unet", "Segment")
    assert widget.load_model_file(model_file)
    widget.tile_size.value, widget.overlap.value = 64, 16
    widget.threshold.value = 0.55
    return widget


def run(qtbot, widget):
    widget.run()
    qtbot.waitUntil(lambda: not widget.busy, timeout=TIMEOUT)


def hold_network(qtbot, folder, client):
    """The next run's first network call waits until :func:`release`.

    Waits for the worker to finish what it was doing (e.g. loading a model
    that was just chosen), so the held call is the run's.
    """
    qtbot.waitUntil(lambda: not client.busy, timeout=TIMEOUT)
    (folder / "held").unlink(missing_ok=True)  # left by a killed worker
    (folder / "hold").write_text("network")


def release(folder):
    (folder / "hold").unlink(missing_ok=True)


def shared_memory_left(client) -> list[str]:
    return [name for name in os.listdir("/dev/shm") if name.startswith(client.shm_prefix)]


def test_docks_from_manifest_and_follows_active_layer(make_napari_viewer, model_file):
    viewer = make_napari_viewer()
    first = viewer.add_image(blobs((32, 32)), name="first")
    viewer.add_image(blobs((32, 32)), name="second")
    widget = open_widget(viewer, model_file)
    assert isinstance(widget, SegmentWidget)
    assert widget.image.value.name == "second"
    viewer.layers.selection.active = first
    assert widget.image.value is first
    combo = widget.model.native
    labels = [combo.itemText(i) for i in range(combo.count())]
    assert labels[0].startswith("nuclei (default") and labels[-1] == "Load model file…"
    # The loaded file is remembered for the next session.
    recent = json.loads((ModelRegistry().recent_path).read_text())["recent"]
    assert recent == [str(model_file.resolve())]
    assert str(model_file.resolve()) in [v for _, v in ModelRegistry().choices()]


def test_run_2d_overlays_image(make_napari_viewer, qtbot, model_file, notes):
    viewer = make_napari_viewer()
    image = viewer.add_image(blobs((96, 128)), name="nuclei", scale=(0.5, 0.25),
                             translate=(10, 20), rotate=30, units=("um", "um"))
    widget = open_widget(viewer, model_file)
    widget.add_probs.value = True
    run(qtbot, widget)
    assert not [n for n in notes if n[0] == "error"], notes
    labels = viewer.layers["nuclei labels"]
    assert isinstance(labels, Labels) and labels.data.shape == (96, 128)
    assert labels.data.max() > 0
    np.testing.assert_allclose(labels.scale, image.scale)
    np.testing.assert_allclose(labels.translate, image.translate)
    np.testing.assert_allclose(labels.affine.affine_matrix, image.affine.affine_matrix)
    np.testing.assert_allclose(labels.rotate, image.rotate)
    assert labels.units == image.units
    # Provenance for the export manifest.
    assert labels.metadata["napari_unet"]["model_path"] == str(model_file)
    probs = viewer.layers["nuclei probabilities"]
    assert probs.data.shape == (96, 128) and probs.data.dtype == np.float32
    # A second run on an unedited result updates it in place.
    run(qtbot, widget)
    assert [layer.name for layer in viewer.layers] == [
        "nuclei", "nuclei probabilities", "nuclei labels"]


def test_stack_current_slice_and_channels(make_napari_viewer, qtbot, model_file, notes):
    viewer = make_napari_viewer()
    stack = viewer.add_image(blobs((3, 64, 64)), name="stack", scale=(2, 0.5, 0.5),
                             translate=(0, 5, 5))
    widget = open_widget(viewer, model_file)
    widget.instances.value = "2d"  # tiny blobs in 3 planes: per-plane objects
    viewer.dims.set_current_step(0, 1)
    widget.scope.value = "current slice"
    run(qtbot, widget)
    labels = viewer.layers["stack labels"]
    assert labels.data.shape == (3, 64, 64)
    np.testing.assert_allclose(labels.scale, stack.scale)
    np.testing.assert_allclose(labels.translate, stack.translate)
    assert labels.data[1].max() > 0 and not labels.data[[0, 2]].any()
    widget.scope.value = "whole layer"
    run(qtbot, widget)
    assert viewer.layers["stack labels"] is labels and all(p.max() > 0 for p in labels.data)
    assert not [n for n in notes if n[0] == "error"], notes

    # Multichannel (C, Y, X): pick the channel axis and one channel.
    multi = viewer.add_image(blobs((2, 48, 64)), name="multi", scale=(1, 0.3, 0.4),
                             axis_labels=("c", "y", "x"))
    assert widget.image.value is multi and widget.channel_axis.value == 0
    widget.channels.value = [1]
    run(qtbot, widget)
    out = viewer.layers["multi labels"]
    assert out.data.shape == (48, 64)
    np.testing.assert_allclose(out.scale, (0.3, 0.4))
    assert tuple(out.axis_labels) == ("y", "x")

    # RGB: channel axis -1, averaged for the 1-channel model.
    rgb = viewer.add_image((np.random.default_rng(0).random((40, 56, 3)) * 255).astype(np.uint8),
                           name="rgb", rgb=True)
    assert widget.image.value is rgb and widget.channels.value == "mean"
    run(qtbot, widget)
    assert viewer.layers["rgb labels"].data.shape == (40, 56)
    assert not [n for n in notes if n[0] == "error"], notes


def test_visible_region_scope(make_napari_viewer, qtbot, model_file, notes):
    viewer = make_napari_viewer(show=True)  # corner_pixels follow the drawn canvas
    image = viewer.add_image(blobs((200, 240)), name="wide")
    widget = open_widget(viewer, model_file)
    widget.threshold.value = 0.5
    viewer.camera.zoom *= 4
    viewer.camera.center = (0, 60, 80)
    qtbot.waitUntil(lambda: image.corner_pixels[1, 0] < 150, timeout=5000)
    (y0, x0), (y1, x1) = image.corner_pixels
    widget.scope.value = "visible region"
    run(qtbot, widget)
    assert not [n for n in notes if n[0] == "error"], notes
    data = viewer.layers["wide labels"].data
    assert data.shape == (200, 240) and data[y0:y1 + 1, x0:x1 + 1].any()
    outside = data.copy()
    outside[y0:y1 + 1, x0:x1 + 1] = 0
    assert not outside.any()


def test_visible_region_is_normalized_like_the_whole_plane(make_napari_viewer, qtbot,
                                                           model_file):
    from napari_unet.normalize import percentile_range

    viewer = make_napari_viewer(show=True)
    # Brighter to the right: the top-left crop alone has a much lower range.
    pixels = blobs((160, 320)) * np.linspace(1, 6, 320, dtype=np.float32)
    image = viewer.add_image(pixels, name="ramp")
    widget = open_widget(viewer, model_file)
    viewer.camera.zoom *= 4
    viewer.camera.center = (0, 50, 60)
    qtbot.waitUntil(lambda: image.corner_pixels[1, 1] < 200, timeout=5000)
    (y0, x0), (y1, x1) = image.corner_pixels
    assert percentile_range(pixels[y0:y1, x0:x1])[1] < 0.6 * percentile_range(pixels)[1]
    widget.scope.value = "visible region"
    run(qtbot, widget)
    crop = widget.last_result
    widget.scope.value = "whole layer"
    run(qtbot, widget)
    whole = widget.last_result
    assert crop.probs.shape[-1] < 320 and whole.probs.shape[-2:] == (160, 320)
    # The crop is mapped with the whole plane's range (the whole-layer run's own).
    lo, hi = percentile_range(pixels)
    crop_range = crop.stats["intensity_range"]
    assert np.allclose(np.ravel(crop_range[0]), lo) and np.allclose(np.ravel(crop_range[1]), hi)
    assert whole.stats["intensity_range"] is None  # computed per plane by the core


def test_default_window_is_fitted_by_the_core(make_napari_viewer, qtbot, model_file):
    """While the dock shows the model's default window, a run sends none: the
    core fits it to the image, as ``segment`` does; a chosen one is sent
    with its batch."""
    from napari_unet.settings import PredictionSettings, default_batch

    viewer = make_napari_viewer()
    viewer.add_image(blobs((160, 160)), name="img")
    _, widget = viewer.window.add_plugin_dock_widget("napari-tiled-unet", "Segment")
    assert widget.load_model_file(model_file)
    info = widget.registry.info(str(model_file))  # read from the file, no TensorFlow here
    assert widget.tile_size.value == PredictionSettings().resolved(info).tile_size
    job, _, _ = widget._make_job()
    assert (job.request.tile_size, job.request.batch_size) == (None, None)
    run(qtbot, widget)
    assert viewer.layers[-1].data.max() > 0
    widget.tile_size.value = 64
    job, _, _ = widget._make_job()
    assert (job.request.tile_size, job.request.batch_size) == (64, default_batch(64))


def test_cancel_leaves_nothing_and_the_worker_stays_usable(make_napari_viewer, qtbot,
                                                           model_file, control, notes):
    folder, client = control
    viewer = make_napari_viewer()
    viewer.add_image(blobs((160, 160)), name="big")
    widget = open_widget(viewer, model_file)
    widget.tile_size.value, widget.overlap.value = 32, 0  # 25 tiles: 2 batches of 16
    before = list(viewer.layers)
    hold_network(qtbot, folder, client)
    widget.run()
    qtbot.waitUntil((folder / "held").exists, timeout=TIMEOUT)  # In the first batch.
    calls, pid = network_calls(folder), client.pid
    assert list(viewer.layers) == before  # No placeholder layer during the run.
    job = widget._run.handle
    widget.cancel()
    assert not widget.busy and widget.run_button.enabled  # The GUI is free at once.
    release(folder)
    qtbot.waitUntil(job.done.is_set, timeout=TIMEOUT)
    # The worker stopped after the held batch and said so; it was not terminated.
    assert job.outcome.cancelled and not job.outcome.killed
    assert network_calls(folder) == calls + 1
    qtbot.wait(50)
    assert list(viewer.layers) == before
    assert shared_memory_left(client) == []
    assert notes == [("info", "Segmentation cancelled; no layer was changed.")]

    # The same worker runs the next job.
    widget.tile_size.value, widget.overlap.value = 64, 16
    run(qtbot, widget)
    assert client.pid == pid
    assert viewer.layers["big labels"].data.max() > 0
    assert shared_memory_left(client) == []


def test_worker_killed_mid_run_loses_nothing(make_napari_viewer, qtbot, model_file, control,
                                             notes):
    folder, client = control
    viewer = make_napari_viewer()
    viewer.add_image(blobs((96, 96)), name="cells")
    viewer.add_points([[10, 10], [50, 60]], name="marks")
    widget = open_widget(viewer, model_file)
    run(qtbot, widget)
    labels = viewer.layers["cells labels"]
    labels.brush_size = 5
    labels.paint((20, 20), 999)  # A hand edit, made before the crash.
    edited = labels.data.copy()
    names = [layer.name for layer in viewer.layers]
    started, shown = client.processes_started, len(notes)

    hold_network(qtbot, folder, client)
    widget.run()  # Edited and "keep my edits" unticked: would write a new layer.
    qtbot.waitUntil((folder / "held").exists, timeout=TIMEOUT)
    assert [layer.name for layer in viewer.layers] == names  # No placeholder layer.
    pid = client.pid
    os.kill(pid, signal.SIGKILL)
    qtbot.waitUntil(lambda: not widget.busy, timeout=TIMEOUT)
    release(folder)

    assert [layer.name for layer in viewer.layers] == names
    np.testing.assert_array_equal(viewer.layers["cells labels"].data, edited)
    assert viewer.layers["cells labels"] is labels and len(viewer.layers["marks"].data) == 2
    [(kind, message)] = notes[shown:]  # Exactly one notification...
    assert kind == "error" and "worker process stopped unexpectedly" in message
    assert "SIGKILL" in message and "next run starts a fresh worker" in message
    assert widget.status.value == "failed" and widget.run_button.enabled
    assert shared_memory_left(client) == []

    # ... and the next Run starts a fresh worker by itself.
    run(qtbot, widget)
    assert client.processes_started == started + 1 and client.pid not in (None, pid)
    assert viewer.layers["cells labels [2]"].data.max() > 0
    np.testing.assert_array_equal(labels.data, edited)
    assert len(notes) == shown + 1


def test_settings_relabel_from_cache(make_napari_viewer, qtbot, model_file, control):
    folder, client = control
    viewer = make_napari_viewer()
    viewer.add_image(blobs((96, 96)), name="nuclei")
    widget = open_widget(viewer, model_file)
    n_calls = network_calls(folder)
    run(qtbot, widget)
    labels = viewer.layers["nuclei labels"]
    first, n_calls = labels.data.copy(), network_calls(folder)
    assert n_calls > 0
    relabels = client.submitted["relabel"]
    result = widget.results[-1]
    widget.threshold.value = 0.5
    qtbot.waitUntil(lambda: result.params["threshold"] == 0.5 and not widget.busy,
                    timeout=TIMEOUT)
    # Re-labelled from the cache, in the worker, with no network call.
    assert network_calls(folder) == n_calls and client.submitted["relabel"] > relabels
    expected = probabilities_to_labels(result.patches[0][1], threshold=0.5, min_size=16)
    np.testing.assert_array_equal(labels.data, expected)
    assert not np.array_equal(labels.data, first)
    widget.output.value = "semantic"
    qtbot.waitUntil(lambda: result.params["mode"] == "semantic" and not widget.busy,
                    timeout=TIMEOUT)
    assert labels.data.max() == 1 and network_calls(folder) == n_calls


def test_hand_edits_are_never_lost(make_napari_viewer, qtbot, model_file, notes):
    viewer = make_napari_viewer()
    viewer.add_image(blobs((3, 64, 64)), name="stack")
    widget = open_widget(viewer, model_file)
    widget.instances.value = "2d"  # per-plane objects here; 3D: test_z_stack_...
    run(qtbot, widget)
    labels = viewer.layers["stack labels"]
    tracker = widget.results[-1].tracker
    viewer.dims.set_current_step(0, 1)
    labels.brush_size = 5
    labels.paint((1, 20, 20), 999)  # Emits events.paint, like the brush.
    assert tracker.edited and 999 in tracker.touched_ids
    assert tracker.edited_planes() == {(1,)}
    edited = labels.data.copy()

    # A settings change must not overwrite the edited layer.
    widget.threshold.value = 0.5
    qtbot.wait(400)
    qtbot.waitUntil(lambda: not widget.busy, timeout=TIMEOUT)
    np.testing.assert_array_equal(labels.data, edited)
    assert any(kind == "warning" and "hand edits" in msg for kind, msg in notes)

    # Re-run with "keep my edits": the same layer, edits and edited objects kept,
    # untouched planes re-predicted with the new threshold.
    widget.keep_edits.value = True
    run(qtbot, widget)
    assert [layer.name for layer in viewer.layers] == ["stack", "stack labels"]
    assert (labels.data[1, 18:23, 18:23] == 999).any()
    np.testing.assert_array_equal(labels.data[1] == 999, edited[1] == 999)
    tile = tracker.plane_mask((1,), (64, 64))
    np.testing.assert_array_equal(labels.data[1][tile], edited[1][tile])
    fresh = probabilities_to_labels(widget.results[-1].patches[0][1], threshold=0.5,
                                    min_size=16, instances="2d")
    for z in (0, 2):
        np.testing.assert_array_equal(labels.data[z] > 0, fresh[z] > 0)

    # Without "keep my edits", a re-run writes a new layer and leaves the edited one.
    widget.keep_edits.value = False
    kept = labels.data.copy()
    run(qtbot, widget)
    assert viewer.layers[-1].name == "stack labels [2]"
    np.testing.assert_array_equal(labels.data, kept)


def test_z_stack_gives_3d_objects_and_keeps_3d_edits(make_napari_viewer, qtbot, model_file,
                                                     notes):
    viewer = make_napari_viewer()
    viewer.add_image(blobs((6, 64, 64), seed=2), name="stack", scale=(2.0, 0.5, 0.5))
    widget = open_widget(viewer, model_file)
    # The layer cannot say Z or T: the selector shows, with Z stack first.
    assert not widget.axes.native.isHidden() and widget.axes.value == "ZYX"
    assert not widget.instances.native.isHidden()
    assert widget._params()["voxel_size"] == (2.0, 0.5, 0.5)  # from the layer's scale
    run(qtbot, widget)
    labels = viewer.layers["stack labels"]
    probs = widget.results[-1].patches[0][1]
    expected = probabilities_to_labels(probs, axes="ZYX", voxel_size=(2.0, 0.5, 0.5),
                                       threshold=0.55, min_size=16)
    np.testing.assert_array_equal(labels.data, expected)
    spans = [len({z for z in range(6) if (labels.data[z] == i).any()})
             for i in np.unique(labels.data[labels.data > 0])]
    assert max(spans) > 1  # one id through several planes: one colour in 3D

    # Per plane, from the cached probabilities (no new network run).
    widget.instances.value = "2d"
    qtbot.wait(400)
    qtbot.waitUntil(lambda: not widget.busy, timeout=TIMEOUT)
    per_plane = probabilities_to_labels(probs, axes="ZYX", instances="2d", threshold=0.55,
                                        min_size=16)
    assert labels.data.max() == per_plane.max() > expected.max()
    widget.instances.value = "3d"
    qtbot.wait(400)
    qtbot.waitUntil(lambda: not widget.busy, timeout=TIMEOUT)
    np.testing.assert_array_equal(labels.data, expected)

    # Keep my edits in 3D: the edited nucleus keeps its id in all its planes.
    target = int(np.bincount(labels.data.ravel())[1:].argmax()) + 1
    z, y, x = (int(v[0]) for v in np.nonzero(labels.data == target))
    planes = {k for k in range(6) if (labels.data[k] == target).any()}
    assert len(planes) > 1
    viewer.dims.set_current_step(0, z)
    labels.brush_size = 3
    labels.paint((z, y, x), target)
    widget.keep_edits.value = True
    widget.threshold.value = 0.6
    run(qtbot, widget)
    assert viewer.layers[-1] is labels
    assert {k for k in range(6) if (labels.data[k] == target).any()} >= planes

    # A layer that says it is a time-lapse: no selector, planes never linked.
    movie = viewer.add_image(blobs((2, 64, 64), seed=3), name="movie",
                             axis_labels=("t", "y", "x"))
    widget.image.value = movie
    assert widget.axes.value == "TYX" and widget.axes.native.isHidden()
    assert widget.instances.native.isHidden()
    widget.keep_edits.value = False
    run(qtbot, widget)
    movie_labels = viewer.layers["movie labels"].data
    assert not set(np.unique(movie_labels[0])) - {0} & set(np.unique(movie_labels[1]))
    assert not [n for n in notes if n[0] == "error"], notes


def test_errors_are_notified_and_widget_stays_usable(make_napari_viewer, qtbot, model_files,
                                                     tmp_path, monkeypatch, control, notes):
    folder, _ = control
    model_file = model_files["tiny"]
    viewer = make_napari_viewer()
    widget = open_widget(viewer, model_file)

    def last_error():
        errors = [msg for kind, msg in notes if kind == "error"]
        return errors[-1] if errors else ""

    widget.run()  # No image layer.
    assert "No image layer" in last_error() and not widget.busy

    bad = tmp_path / "broken.keras"
    bad.write_bytes(b"not a zip")
    assert not widget.load_model_file(bad)
    assert "Not a Keras model file" in last_error()
    assert widget.model.value == str(model_file.resolve())

    viewer.add_image(blobs((64, 64)), name="nuclei")
    assert widget.load_model_file(model_files["two_in"])
    run(qtbot, widget)
    assert "has 1 channels but the model reads 2" in last_error()
    widget.model.value = str(model_file.resolve())

    (folder / "memory").write_text("")  # Prediction raises MemoryError in the worker.
    run(qtbot, widget)
    (folder / "memory").unlink()
    assert "Not enough memory" in last_error()

    missing = tmp_path / "nuclei_default.keras"
    monkeypatch.setattr("napari_unet._widgets._models.default_model_path", lambda: missing)
    widget.model.reset_choices()
    widget.model.value = str(missing)
    run(qtbot, widget)
    assert "default nuclei model is not installed" in last_error()

    # "Load model file…" with a cancelled dialog keeps the previous model.
    monkeypatch.setattr(SegmentWidget, "_ask_model_file", lambda self: None)
    widget.model.value = LOAD_ENTRY
    assert widget.model.value == str(missing)

    # Still usable: a good model runs.
    n_errors = len([n for n in notes if n[0] == "error"])
    widget.model.value = str(model_file.resolve())
    run(qtbot, widget)
    assert len([n for n in notes if n[0] == "error"]) == n_errors
    assert viewer.layers["nuclei labels"].data.shape == (64, 64)


def test_dock_starts_its_worker_and_napari_never_imports_tensorflow(make_napari_viewer,
                                                                    qtbot, model_file,
                                                                    control):
    _, client = control
    viewer = make_napari_viewer()
    widget = open_widget(viewer, model_file)
    # Opening the dock started the worker, which loads TensorFlow and the model.
    qtbot.waitUntil(lambda: widget.status.value == "ready", timeout=TIMEOUT)
    assert client.pid not in (None, os.getpid())
    assert "tensorflow" not in sys.modules and "keras" not in sys.modules


def test_zarr_layer_is_segmented_out_of_core(make_napari_viewer, qtbot, model_file, tmp_path,
                                            monkeypatch, control, notes, run_python):
    import dask.array as da
    import zarr

    from napari_unet._widgets import _largescale

    folder, client = control
    results = tmp_path / "results"
    monkeypatch.setenv("NAPARI_UNET_RESULTS_DIR", str(results))
    monkeypatch.setattr(_largescale, "OUT_OF_CORE_PIXELS", 100 * 100)  # "huge" = over 10k px
    monkeypatch.setattr("napari_unet.cache.WARN_BYTES", 1)  # Any store is "a lot".
    image = blobs((192, 160))
    store = zarr.open_array(str(tmp_path / "image.zarr"), mode="w", shape=image.shape,
                            chunks=(64, 64), dtype=image.dtype)
    store[:] = image
    viewer = make_napari_viewer()
    viewer.add_image(da.from_zarr(store), name="big", scale=(0.5, 0.5))
    widget = open_widget(viewer, model_file)
    widget.min_size.value = 0
    in_memory = client.submitted["segment"]

    # A cancelled out-of-core run leaves no store (and no partial one) behind.
    before = list(viewer.layers)
    hold_network(qtbot, folder, client)
    widget.run()
    qtbot.waitUntil((folder / "held").exists, timeout=TIMEOUT)
    job = widget._run.handle
    widget.cancel()
    release(folder)
    qtbot.waitUntil(job.done.is_set, timeout=TIMEOUT)
    assert job.outcome.cancelled and list(viewer.layers) == before
    assert not results.exists() or list(results.iterdir()) == []

    run(qtbot, widget)
    # The whole image never went through the in-memory path.
    assert client.submitted["segment"] == in_memory and client.submitted["store"] == 2
    labels = viewer.layers["big labels"]
    assert type(labels.data).__module__.startswith("zarr")  # Backed by a store on disk...
    (path,) = results.glob("big-labels-*.zarr")
    assert tuple(labels.scale) == (0.5, 0.5) and labels.data.shape == image.shape
    assert any(str(path) in msg for kind, msg in notes if kind == "info")
    assert any("napari-unet cache clean" in msg for kind, msg in notes if kind == "warning")
    # ... with the foreground the in-memory core finds (ids may differ by block).
    np.save(tmp_path / "image.npy", image)
    run_python("""
        import sys, numpy as np, napari_unet
        image = np.load(sys.argv[1])
        labels = napari_unet.segment(image, sys.argv[2], tile_size=64, overlap=16,
                                     threshold=0.55, min_size=0)
        np.save(sys.argv[3], labels)
    """, str(tmp_path / "image.npy"), str(model_file), str(tmp_path / "expected.npy"))
    expected = np.load(tmp_path / "expected.npy")
    assert np.array_equal(np.asarray(labels.data[:]) > 0, expected > 0)
    # Painting writes into the store: the user's edits are on disk at once.
    labels.paint((10, 10), 777, refresh=True)
    assert zarr.open_array(str(path), mode="r")[10, 10] == 777
    # Re-running never overwrites those edits: it writes a new store and layer.
    run(qtbot, widget)
    assert "big labels [2]" in viewer.layers and zarr.open_array(str(path))[10, 10] == 777
    assert len(list(results.glob("big-labels-*.zarr"))) == 2


def test_relabelled_patches_keep_ids_unique_across_the_layer():
    from napari_unet._widgets._job import offset_patches

    existing = np.zeros((40, 40), np.uint16)
    existing[:5, :5] = 300
    a, b = np.zeros((10, 10), np.uint16), np.zeros((10, 10), np.uint16)
    a[:2, :2], a[5:, 5:] = 1, 2
    b[3:6, 3:6] = 1
    params = {"mode": "instance", "threshold": 0.5, "min_size": 0}
    first, second = offset_patches([a.copy(), b.copy()], existing, params, whole=False)
    assert set(np.unique(first)) == {0, 301, 302} and set(np.unique(second)) == {0, 303}
    # A single whole-layer patch, or a semantic mask, keeps its values.
    (same,) = offset_patches([a.copy()], existing, params, whole=True)
    np.testing.assert_array_equal(same, a)
    (mask,) = offset_patches([a > 0], existing, dict(params, mode="semantic"), whole=False)
    np.testing.assert_array_equal(mask, a > 0)


def test_first_labels_layer_work_is_done_ahead_in_a_thread(monkeypatch, qtbot):
    """Opening the dock starts a thread that does the one-off work napari's
    first Labels layer would do in the GUI thread when the first result
    arrives: vispy's dash patterns (pure Python) and the imports, then a full
    garbage collection, so that the next one does not land in that set-up."""
    import gc
    import threading

    from vispy.visuals.line import dash_atlas

    from napari_unet._widgets import _gc_pause, segment_widget

    qtbot.waitUntil(lambda: _gc_pause._holds == 0, timeout=5000)  # earlier docks' holds
    dash_atlas._make_pattern.cache_clear()
    collected = []
    monkeypatch.setattr(gc, "collect", lambda *a, _c=gc.collect: collected.append(_c(*a)))
    monkeypatch.setattr(segment_widget, "_preloaded", False)
    segment_widget._preload_for_labels()
    assert not gc.isenabled()  # paused through the imports
    for thread in threading.enumerate():
        if thread.name == "napari-unet: preload":
            thread.join(60)
    assert dash_atlas._make_pattern.cache_info().currsize >= 13
    assert "skimage.color.colorconv" in sys.modules and "pandas" in sys.modules
    assert len(collected) >= 1 and gc.isenabled()
    segment_widget._preload_for_labels()  # once per process: no second thread
    assert not any(t.name == "napari-unet: preload" for t in threading.enumerate())


def test_docks_are_built_without_automatic_collections(make_napari_viewer, qtbot, monkeypatch):
    """A full collection of napari's heap takes ~150 ms: none runs while a dock
    is built; one runs a moment later, and automatic collection is back on.
    A collection the user had switched off stays off."""
    import gc

    from napari_unet._widgets import _gc_pause
    from napari_unet._widgets.export_widget import ExportWidget

    viewer = make_napari_viewer()
    qtbot.waitUntil(lambda: _gc_pause._holds == 0, timeout=5000)
    automatic, collected = [], []
    monkeypatch.setattr(gc, "collect", lambda *a, _c=gc.collect: collected.append(_c(*a)))
    watch = lambda phase, info: automatic.append(info["generation"]) if phase == "stop" else None  # noqa: E731
    gc.callbacks.append(watch)
    threshold = gc.get_threshold()
    try:
        gc.set_threshold(1, 1, 1)  # every allocation would trigger one
        widget = ExportWidget(viewer)
        gc.set_threshold(*threshold)
        # Only the few before the hold: building it un-paused makes thousands.
        assert len(automatic) < 10 and not gc.isenabled()
        qtbot.waitUntil(gc.isenabled, timeout=5000)
        assert len(collected) == 1
        gc.disable()  # the user's choice
        ExportWidget(viewer)
        qtbot.waitUntil(lambda: _gc_pause._holds == 0, timeout=5000)
        assert not gc.isenabled()
    finally:
        gc.set_threshold(*threshold)
        gc.callbacks.remove(watch)
        gc.enable()
    assert widget.image is not None


def test_probability_cache_replaces_a_rerun_and_updates_a_part_in_place():
    """A re-run of the same region replaces its cached patch (no copy of the
    probabilities in the GUI thread, and the new run's model info); a run
    of a smaller region is written into the patch that holds it."""
    from napari_unet._widgets._results import Result
    from napari_unet.scope import Scope, whole_scope

    result = Result(image=None, layer=None, tracker=None, geometry={})
    whole = whole_scope((64, 64))
    first, second = np.zeros((2, 64, 64), np.float32), np.ones((2, 64, 64), np.float32)
    result.cache(whole, first, "info 1")
    result.cache(whole, second, "info 2")
    assert len(result.patches) == 1
    assert result.patches[0][1] is second and result.patches[0][2] == "info 2"
    part = Scope(None, (slice(8, 24), slice(8, 24)), (slice(8, 24), slice(8, 24)), 2)
    result.cache(part, np.full((2, 16, 16), 0.5, np.float32), "info 3")
    assert len(result.patches) == 1 and result.patches[0][1] is second
    assert second[0, 8, 8] == 0.5 and second[0, 7, 7] == 1 and second[0, 24, 24] == 1
