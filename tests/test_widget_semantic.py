"""The few-slices workflow in napari: paint classes on a few planes of a
stack, train a semantic U-Net from scratch in the Train dock, predict every
plane in the Segment dock as class labels with names and colours.

Runs are tiny (one short epoch): the test checks the plumbing (task, class
names from the Labels layer's features, class layer), not what is learnt.
"""

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from napari_unet import read_model_info  # noqa: E402
from napari_unet._widgets import _notify, train_widget  # noqa: E402
from napari_unet.phantom import tissue_phantom  # noqa: E402

TIMEOUT = 240_000  # ms; a busy machine, and fresh workers import TensorFlow


@pytest.fixture(autouse=True)
def _user_dirs(tmp_path, monkeypatch, worker_control):
    monkeypatch.setenv("NAPARI_UNET_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("NAPARI_UNET_MODELS_DIR", str(tmp_path / "models"))


@pytest.fixture
def notes(monkeypatch):
    shown = []
    for kind in ("error", "info"):
        monkeypatch.setattr(train_widget, f"show_{kind}",
                            lambda msg, kind=kind: shown.append((kind, str(msg))))
    for kind in ("error", "warning", "info"):
        monkeypatch.setattr(_notify, f"show_{kind}",
                            lambda msg, kind=kind: shown.append((kind, str(msg))))
    return shown


def test_paint_few_planes_train_semantic_predict_class_layer(make_napari_viewer, qtbot,
                                                             tmp_path, notes):
    viewer = make_napari_viewer()
    image, truth = tissue_phantom((8, 64, 64), n_classes=2, seed=3)
    painted = np.zeros_like(truth)
    painted[[1, 4, 6]] = truth[[1, 4, 6]]
    viewer.add_image(image, name="tissue")
    viewer.add_labels(painted, name="tissue classes",
                      features={"index": [0, 1, 2], "class": ["background", "organ", "vessel"]})

    _, trainer = viewer.window.add_plugin_dock_widget("napari-tiled-unet", "Train")
    trainer.start_model.value = train_widget.SCRATCH
    assert trainer.class_names.native.isHidden()
    trainer.task.value = "semantic"
    assert not trainer.class_names.native.isHidden()
    trainer.epochs.value, trainer.steps.value, trainer.batch_size.value = 1, 2, 2
    trainer.patch_size.value = 64
    trainer.layer_pairs.value = list(trainer.layer_pairs.choices)
    trainer.output.value = tmp_path / "models" / "tissue.keras"
    trainer.start()
    qtbot.waitUntil(lambda: not trainer.busy, timeout=TIMEOUT)
    assert not [n for n in notes if n[0] == "error"], notes
    info = read_model_info(tmp_path / "models" / "tissue.keras")
    assert info.task == "semantic" and info.classes == ["organ", "vessel"]
    assert info.training["n_unannotated_planes"] == 5  # unpainted planes ignored

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
