"""The few-slices workflow in napari: paint classes on a few planes of a
stack, export the painted planes (class names from the layer's features),
train a semantic U-Net from scratch on them in the Train dock, predict every
plane in the Segment dock as class labels with names and colours.

Runs are tiny (one short epoch): the test checks the plumbing (task, class
names from the Labels layer's features, class layer), not what is learnt.
"""

import json

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from napari_unet import read_model_info  # noqa: E402
from napari_unet._widgets import _notify, export_widget, train_widget  # noqa: E402
from napari_unet.phantom import tissue_phantom  # noqa: E402
from napari_unet.settings import SEMANTIC_DEFAULTS  # noqa: E402

TIMEOUT = 240_000  # ms; a busy machine, and fresh workers import TensorFlow


@pytest.fixture(autouse=True)
def _user_dirs(tmp_path, monkeypatch, worker_control):
    monkeypatch.setenv("NAPARI_UNET_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("NAPARI_UNET_MODELS_DIR", str(tmp_path / "models"))


@pytest.fixture
def notes(monkeypatch):
    shown = []
    for kind in ("error", "info"):
        for module in (train_widget, export_widget):
            monkeypatch.setattr(module, f"show_{kind}",
                                lambda msg, kind=kind: shown.append((kind, str(msg))))
    for kind in ("error", "warning", "info"):
        monkeypatch.setattr(_notify, f"show_{kind}",
                            lambda msg, kind=kind: shown.append((kind, str(msg))))
    return shown


def test_paint_few_planes_train_semantic_predict_class_layer(make_napari_viewer, qtbot,
                                                             tmp_path, notes):
    viewer = make_napari_viewer()
    image, truth = tissue_phantom((8, 64, 64), n_classes=2, seed=3)
    viewer.add_image(image, name="tissue")
    painted = viewer.add_labels(
        np.zeros(truth.shape, np.uint8), name="tissue classes",
        features={"index": [0, 1, 2], "class": ["background", "organ", "vessel"]})
    _, exporter = viewer.window.add_plugin_dock_widget("napari-tiled-unet",
                                                       "Export training data")
    exporter.folder.value = str(tmp_path / "painted")
    exporter.label_layer.value = painted
    for z in (1, 4, 6):  # paint classes on three planes
        viewer.dims.set_current_step(0, z)
        painted.brush_size = 20
        painted.paint((z, 30, 30), 1)
        painted.brush_size = 6
        painted.paint((z, 48, 20), 2)
    exporter.scope.value = "edited slices"
    written = exporter.export()
    assert [p["slice"] for p in written] == [[1], [4], [6]]
    manifest = json.loads((tmp_path / "painted" / "dataset.json").read_text())
    assert manifest["classes"] == ["organ", "vessel"]

    _, trainer = viewer.window.add_plugin_dock_widget("napari-tiled-unet", "Train")
    assert trainer.add_dataset(tmp_path / "painted")
    trainer.start_model.value = train_widget.SCRATCH
    assert trainer.class_names.native.isHidden()
    trainer.task.value = "semantic"
    assert not trainer.class_names.native.isHidden()
    # From scratch, the dock shows the semantic settings train() would use.
    assert (trainer.batch_size.value, trainer.patch_size.value, trainer.steps.value,
            trainer.epochs.value) == (
        SEMANTIC_DEFAULTS["batch_size"], SEMANTIC_DEFAULTS["patch_size"],
        SEMANTIC_DEFAULTS["steps_per_epoch"], SEMANTIC_DEFAULTS["epochs"])
    assert trainer.learning_rate.value == pytest.approx(SEMANTIC_DEFAULTS["learning_rate"])
    trainer.epochs.value, trainer.steps.value, trainer.batch_size.value = 1, 2, 2
    trainer.patch_size.value = 64
    trainer.output.value = tmp_path / "models" / "tissue.keras"
    trainer.start()
    qtbot.waitUntil(lambda: not trainer.busy, timeout=TIMEOUT)
    assert not [n for n in notes if n[0] == "error"], notes
    info = read_model_info(tmp_path / "models" / "tissue.keras")
    assert info.task == "semantic" and info.classes == ["organ", "vessel"]

    _, seg = viewer.window.add_plugin_dock_widget("napari-tiled-unet", "Segment")
    assert seg.load_model_file(tmp_path / "models" / "tissue.keras")
    assert seg.output.value == "semantic" and "organ, vessel" in seg.model_info.value
    seg.tile_size.value, seg.overlap.value = 64, 16
    seg.scope.value = "whole layer"
    seg.run()
    qtbot.waitUntil(lambda: not seg.busy, timeout=TIMEOUT)
    assert not [n for n in notes if n[0] == "error"], notes
    layer = viewer.layers["tissue labels"]
    assert layer.data.shape == truth.shape and int(layer.data.max()) <= 2
    assert list(layer.features["class"]) == ["background", "organ", "vessel"]
    colors = info.label_colors()
    for value in (1, 2):
        np.testing.assert_allclose(layer.colormap.map(value)[:3],
                                   _rgb(colors[value]), atol=1e-3)
    assert "class labels" in seg.status.value


def _rgb(hex_color: str) -> list:
    return [int(hex_color[i:i + 2], 16) / 255 for i in (1, 3, 5)]
