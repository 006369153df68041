"""The Train widget, in a real napari viewer (run under Xvfb).

Runs are tiny (a base-4, depth-2 U-Net, 64-px patches, a few steps): the
tests check the plumbing (data, worker process, progress, cancel, files,
model lists), not what the network learns. Training runs in the dock's
worker process; tests steer it through files (see worker_hooks).
"""

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from napari_unet import read_model_info  # noqa: E402
from napari_unet._widgets import _models, _train_options, train_widget  # noqa: E402
from napari_unet._widgets._models import ModelRegistry  # noqa: E402
from napari_unet._widgets.train_widget import TrainWidget, default_output_path  # noqa: E402
from napari_unet.export import export_pairs  # noqa: E402

TIMEOUT = 180_000  # ms; the machine may be busy (and a fresh worker imports TensorFlow)


@pytest.fixture(autouse=True)
def _user_dirs(tmp_path, monkeypatch, worker_control):
    monkeypatch.setenv("NAPARI_UNET_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("NAPARI_UNET_MODELS_DIR", str(tmp_path / "models"))


@pytest.fixture
def start_file(model_files):
    return model_files["start"]


@pytest.fixture
def hold(worker_control):
    """``hold(when)``: the training worker waits after the progress event ``when``
    ('step' or 'epoch <n>') until ``hold(None)`` releases it."""
    folder = worker_control[0]

    def set_hold(when):
        if when is None:
            (folder / "hold").unlink(missing_ok=True)
        else:
            (folder / "held").unlink(missing_ok=True)
            (folder / "hold").write_text(when)

    set_hold(None)
    yield set_hold
    set_hold(None)


@pytest.fixture
def notes(monkeypatch):
    shown = []
    for kind in ("error", "info"):
        monkeypatch.setattr(train_widget, f"show_{kind}",
                            lambda msg, kind=kind: shown.append((kind, str(msg))))
    return shown


def scene(size=96, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.zeros((size, size), np.int32)
    for k in range(6):
        y, x = rng.integers(0, size - 14, 2)
        labels[y:y + 12, x:x + 12] = k + 1
    image = ((labels > 0) * 900 + rng.integers(100, 300, labels.shape)).astype(np.uint16)
    return image, labels


def open_widget(viewer, start_file, epochs=2) -> TrainWidget:
    _, widget = viewer.window.add_plugin_dock_widget("napari-tiled-unet", "Train")
    assert widget.load_model_file(start_file)
    assert widget.patch_size.value == 64  # the model's tile size
    widget.epochs.value, widget.steps.value, widget.batch_size.value = epochs, 3, 2
    widget.val_fraction.value = 0.25
    return widget


def test_short_run_adds_a_model_the_segment_widget_lists(make_napari_viewer, qtbot, tmp_path,
                                                         start_file, notes, monkeypatch):
    viewer = make_napari_viewer()
    image, labels = scene()
    export_pairs(image, labels, tmp_path / "ds", name="exported")
    viewer.add_image(image[::-1].copy(), name="img")
    viewer.add_labels(labels[::-1].copy(), name="img labels")
    _, segment = viewer.window.add_plugin_dock_widget("napari-tiled-unet", "Segment")
    widget = open_widget(viewer, start_file)
    assert widget.add_dataset(tmp_path / "ds")
    assert not widget.add_dataset(tmp_path)  # not a dataset: refused, notified
    [pair] = widget.layer_pairs.choices  # the one image/labels pair of equal shape
    widget.layer_pairs.value = [pair]
    out = widget.output.value
    assert out.parent == tmp_path / "models" and out.name.startswith("start_ft_")
    added = []
    _models.model_added.connect(added.append)
    # Before any training the plot says so, instead of showing empty axes.
    assert "No training yet" in widget.plot.note and not widget.plot.ax.get_visible()
    # The clock moves on (names carry a timestamp): the name shown is still the one used.
    monkeypatch.setattr(_train_options, "default_output_path",
                        lambda *a, **k: tmp_path / "models" / "later.keras")

    widget.start()
    assert widget.busy and not widget.start_button.enabled
    qtbot.waitUntil(lambda: not widget.busy, timeout=TIMEOUT)
    result = widget.last_result
    assert result.stopped == "completed" and result.path == out and out.is_file()
    info = read_model_info(out)
    assert info.parent == "start" and info.training["n_train_planes"] == 1
    assert "ds (1 pairs)" in info.training["data"] and "img + img labels" in info.training["data"]
    assert notes[-1][0] == "info" and "best validation score" in notes[-1][1], notes

    # Announced, remembered, and listed by the Segment widget's model box.
    assert added == [str(out.resolve())]
    assert str(out.resolve()) in [v for _, v in ModelRegistry().choices()]
    assert str(out.resolve()) in segment.model.choices  # at once, no reset needed
    # The proposed name moved on: the next run never targets the same file.
    assert widget.output.value == tmp_path / "models" / "later.keras"
    assert not widget.output.value.exists()
    # The curve got every step and epoch.
    assert len(widget.plot.steps) == 6 and [e[0] for e in widget.plot.epochs] == [1, 2]
    assert all(e[2] is not None for e in widget.plot.epochs) and widget.plot.draws > 0
    assert widget.plot.note is None and widget.plot.ax.get_visible()
    _models.model_added.disconnect(added.append)


def test_cancel_keeps_best_so_far_or_writes_nothing(make_napari_viewer, qtbot, start_file,
                                                    notes, hold):
    viewer = make_napari_viewer()
    image, labels = scene()
    viewer.add_image(image, name="img")
    viewer.add_labels(labels, name="img labels")
    widget = open_widget(viewer, start_file, epochs=4)
    widget.layer_pairs.value = list(widget.layer_pairs.choices)

    # Cancel right after the first epoch is scored (and saved).
    hold("epoch 1")
    out = widget.output.value
    widget.start()
    qtbot.waitUntil(lambda: len(widget.plot.epochs) == 1, timeout=TIMEOUT)
    widget.cancel()
    assert not widget.cancel_button.enabled and "cancelling" in widget.status.value
    hold(None)
    qtbot.waitUntil(lambda: not widget.busy, timeout=TIMEOUT)
    result = widget.last_result
    assert result.stopped == "cancelled" and len(result.history) == 1
    assert result.path == out and out.is_file()
    assert read_model_info(out).training["stopped"] == "cancelled"
    assert "kept the best model so far" in notes[-1][1]

    # Cancel during the first epoch: no model file at all.
    hold("step")
    widget.plot.clear()
    out = widget.output.value
    widget.start()
    qtbot.waitUntil(lambda: len(widget.plot.steps) >= 1, timeout=TIMEOUT)
    widget.cancel()
    hold(None)
    qtbot.waitUntil(lambda: not widget.busy, timeout=TIMEOUT)
    assert widget.last_result.path is None and not out.exists()
    assert notes[-1] == ("info", "Training cancelled before the first epoch ended; no model "
                                 "was saved.")
    assert len(widget.plot.steps) == 1 and not widget.plot.epochs


def test_bad_settings_are_notified(make_napari_viewer, start_file, notes, tmp_path):
    viewer = make_napari_viewer()
    widget = open_widget(viewer, start_file)
    assert widget.start() is None and "no training data" in notes[-1][1]
    image, labels = scene()
    viewer.add_image(image, name="img")
    viewer.add_labels(labels, name="img labels")
    widget.layer_pairs.value = list(widget.layer_pairs.choices)
    taken = tmp_path / "taken.keras"
    taken.write_bytes(b"")
    widget.output.value = taken
    assert widget.start() is None and "never overwritten" in notes[-1][1]
    assert widget.base_filters.native.isHidden()  # only shown for new U-Nets
    widget.start_model.value = train_widget.SCRATCH
    assert not widget.base_filters.native.isHidden()
    assert widget.output.value == taken  # the user's choice is kept
    assert not widget.busy and all(kind == "error" for kind, _ in notes)


def test_default_output_names(tmp_path, monkeypatch):
    from datetime import datetime

    monkeypatch.setenv("NAPARI_UNET_MODELS_DIR", str(tmp_path))
    now = datetime(2026, 1, 2, 3, 4, 5)
    path = default_output_path("/x/nuclei_default.keras", now=now)
    assert path == tmp_path / "nuclei_default_ft_20260102-030405.keras"
    path.write_bytes(b"")
    assert default_output_path("/x/nuclei_default.keras", now=now).name == (
        "nuclei_default_ft_20260102-030405_v2.keras")
    # Generations do not pile up suffixes.
    assert default_output_path(str(path), now=datetime(2026, 2, 1)).name == (
        "nuclei_default_ft_20260201-000000.keras")
    assert default_output_path(None, 32, now=now).name == "unet_b32_20260102-030405.keras"


def test_quick_preset_fills_in_the_settings(make_napari_viewer, start_file, tmp_path):
    from napari_unet.settings import TRAINING_PRESETS

    viewer = make_napari_viewer()
    widget = open_widget(viewer, start_file)
    image, labels = scene()
    viewer.add_image(image, name="img")
    viewer.add_labels(labels, name="img labels")
    widget.layer_pairs.value = list(widget.layer_pairs.choices)
    assert widget.preset.value is None and widget._make_request().settings["time_limit"] is None
    widget.preset.value = "quick"
    quick = TRAINING_PRESETS["quick"]
    settings = widget._make_request().settings
    assert settings["preset"] == "quick" and settings["time_limit"] == quick["time_limit"]
    assert (settings["epochs"], settings["steps_per_epoch"]) == (quick["epochs"],
                                                                 quick["steps_per_epoch"])
    assert settings["patch_size"] == 64  # still the model's tile
    widget.epochs.value = 3  # the user may still change a field
    assert widget._make_request().settings["epochs"] == 3
