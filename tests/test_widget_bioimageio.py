"""bioimage.io packages in the docks: export actions, loading packages, refusals.

Packages are written by the docks' worker processes (this process never
imports TensorFlow); tiny models keep each export to seconds.
"""

import zipfile

import numpy as np
import pytest
import yaml

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from napari_unet._widgets import _bioimageio, _models, _notify, train_widget  # noqa: E402
from napari_unet.bioimageio import PACKAGE_FILE_FILTER  # noqa: E402

TIMEOUT = 180_000  # ms; the machine may be busy (and a fresh worker imports TensorFlow)


@pytest.fixture(autouse=True)
def _user_dirs(tmp_path, monkeypatch, worker_control):
    monkeypatch.setenv("NAPARI_UNET_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("NAPARI_UNET_MODELS_DIR", str(tmp_path / "models"))


@pytest.fixture
def notes(monkeypatch):
    """Notifications shown by the docks, as (kind, message)."""
    shown = []
    for module in (_notify, train_widget):
        for kind in ("error", "warning", "info"):
            if hasattr(module, f"show_{kind}"):
                monkeypatch.setattr(module, f"show_{kind}",
                                    lambda msg, kind=kind: shown.append((kind, str(msg))))
    return shown


def read_rdf(package) -> dict:
    with zipfile.ZipFile(package) as zf:
        return yaml.safe_load(zf.read("rdf.yaml"))


def export(qtbot, action, path, **kwargs):
    job = action.export(path, saved_model=False, **kwargs)
    assert job is not None
    qtbot.waitUntil(lambda: not action.busy, timeout=TIMEOUT)
    return action.last_outcome


def test_segment_dock_exports_a_package_and_loads_it_back(make_napari_viewer, qtbot, tmp_path,
                                                          model_files, notes, monkeypatch):
    viewer = make_napari_viewer()
    rng = np.random.default_rng(0)
    viewer.add_image(rng.random((48, 56)).astype(np.float32), name="img")
    _, widget = viewer.window.add_plugin_dock_widget("napari-tiled-unet", "Segment")
    assert widget.load_model_file(model_files["tiny"])
    action = widget.bioimageio
    assert action.button in list(widget)

    package = tmp_path / "out" / "tiny.zip"
    outcome = export(qtbot, action, package, name="tiny gui", authors=["Ada Lovelace"])
    assert outcome.ok and package.is_file(), outcome.error
    rdf = read_rdf(package)
    assert rdf["name"] == "tiny gui" and rdf["authors"][0]["name"] == "Ada Lovelace"
    assert set(rdf["weights"]) == {"keras_v3"}
    assert notes[-1][0] == "info" and str(package) in notes[-1][1]

    # Never clobbered: an existing file, or a name that is not a .zip, is refused up front.
    before = package.read_bytes()
    assert action.export(package) is None and "never overwrites" in notes[-1][1]
    assert action.export(tmp_path / "tiny.keras") is None and ".zip" in notes[-1][1]
    assert package.read_bytes() == before and not action.busy
    # A failure in the worker comes back as one notification; the action stays usable.
    blocker = tmp_path / "a file"
    blocker.write_text("")
    outcome = export(qtbot, action, blocker / "x.zip")
    assert not outcome.ok and notes[-1][0] == "error"
    assert notes[-1][1].startswith("bioimage.io export failed") and action.button.enabled

    # The button asks for a file (the dialogs are stubbed) and exports the chosen model.
    asked = {}
    monkeypatch.setattr(_bioimageio, "ask_package_path",
                        lambda parent, default: asked.setdefault("path", str(tmp_path / "b.zip")))
    monkeypatch.setattr(_bioimageio, "ask_details", lambda parent, name: (name, ["Grace"]))
    action.button.changed.emit(True)
    qtbot.waitUntil(lambda: not action.busy, timeout=TIMEOUT)
    assert read_rdf(tmp_path / "b.zip")["authors"][0]["name"] == "Grace"

    # "Load model file…" offers packages, and a run segments with one.
    filters = []

    def dialog(parent, title, folder, filter_):
        filters.append(filter_)
        return str(package), filter_

    monkeypatch.setattr("qtpy.QtWidgets.QFileDialog.getOpenFileName", dialog)
    widget.model.value = _models.LOAD_ENTRY
    assert filters == [PACKAGE_FILE_FILTER] and "*.zip" in filters[0]
    assert widget.model.value == str(package.resolve())
    assert "1 → 1 channels" in widget.model_info.value
    widget.tile_size.value, widget.overlap.value = 64, 16
    widget.run()
    qtbot.waitUntil(lambda: not widget.busy, timeout=TIMEOUT)
    assert not [n for n in notes if "failed" in n[1] and "bioimage" not in n[1]], notes
    assert viewer.layers[-1].data.shape == (48, 56)


def test_train_dock_exports_and_refuses_saved_model_packages(make_napari_viewer, qtbot,
                                                             tmp_path, model_files, notes):
    viewer = make_napari_viewer()
    image = np.random.default_rng(1).random((64, 64)).astype(np.float32)
    viewer.add_image(image, name="img")
    viewer.add_labels((image > 0.5).astype(np.int32), name="img labels")
    _, widget = viewer.window.add_plugin_dock_widget("napari-tiled-unet", "Train")
    assert widget.load_model_file(model_files["start"])
    package = tmp_path / "start.zip"
    outcome = export(qtbot, widget.bioimageio, package)
    assert outcome.ok, outcome.error
    assert read_rdf(package)["config"]["napari_unet"]["name"] == "start"

    # A package whose network is a frozen SavedModel runs, but cannot be fine-tuned.
    rdf = read_rdf(package)
    rdf["weights"] = {"tensorflow_saved_model_bundle": {"source": "model.keras",
                                                        "tensorflow_version": "2.16"}}
    frozen = tmp_path / "frozen.zip"
    with zipfile.ZipFile(package) as src, zipfile.ZipFile(frozen, "w") as dst:
        for name in src.namelist():
            data = yaml.safe_dump(rdf) if name == "rdf.yaml" else src.read(name)
            dst.writestr(name, data)
    assert widget.load_model_file(frozen)  # chosen: it is a valid model to run
    widget.layer_pairs.value = widget.layer_pairs.choices
    assert widget.start() is None and not widget.busy
    assert notes[-1][0] == "error" and "SavedModel weights, which cannot be fine-tuned" \
        in notes[-1][1], notes
