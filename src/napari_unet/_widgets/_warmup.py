"""One-time start-up costs, paid when the Segment widget opens, not mid-run.

TensorFlow must also be *imported* in a plain Python thread, never first in
one of Qt's pooled worker threads (napari's ``thread_worker``): pybind11
remembers the importing thread's Python state in a thread-local slot, Qt
reuses the OS thread for later workers after Python has freed that state,
and the next TensorFlow error path in that thread (e.g. building a second
model) then crashes or deadlocks on a dangling thread state. Every widget
worker that may touch TensorFlow calls :func:`ensure_tensorflow` first.

The first run of a session would otherwise stall napari's GUI: importing
TensorFlow holds the GIL for ~0.5 s at a time, and napari builds the shaders
and overlays of its first Labels layer (~0.6 s) in the GUI thread when the
result arrives. Both are moved to the moment the dock opens: the first in a
worker thread (see :func:`warm_up_model`), the second in the GUI thread
while the dock is being built anyway (:func:`warm_up_labels_canvas`).
"""

from __future__ import annotations

import gc
import logging
import sys
import threading

import numpy as np

log = logging.getLogger(__name__)
_CANVAS_WARM = False
_IMPORT_LOCK = threading.Lock()
_IMPORT_THREAD: threading.Thread | None = None


def start_tensorflow_import() -> threading.Thread:
    """Start importing TensorFlow in a dedicated Python thread (once per process)."""
    global _IMPORT_THREAD
    with _IMPORT_LOCK:
        if _IMPORT_THREAD is None:
            _IMPORT_THREAD = threading.Thread(target=_import_quietly, daemon=True,
                                              name="napari-unet: import TensorFlow")
            _IMPORT_THREAD.start()
        return _IMPORT_THREAD


def ensure_tensorflow() -> None:
    """Block until TensorFlow is imported (by :func:`start_tensorflow_import`).

    Call at the start of any worker that may import or use TensorFlow; a
    failed import is left for the worker's own import to report.
    """
    thread = start_tensorflow_import()
    if thread is not threading.current_thread():
        thread.join()


def _import_quietly() -> None:
    try:
        _import_tensorflow()
    except Exception:  # noqa: BLE001 - reported by the run that needs it
        log.debug("napari-unet: importing TensorFlow failed", exc_info=True)


def warm_up_model(registry, model_path, tile_size: int, batch_size: int) -> bool:
    """Import TensorFlow, load the model and trace its predictor (worker thread).

    Returns True when the model is ready; failures are left for the run to
    report, with its clear message.
    """
    try:
        ensure_tensorflow()
        from ..engine import run_model

        if model_path is None:
            return False
        model, info = registry.load(model_path)
        cin = info.in_channels if info is not None else int(model.inputs[0].shape[-1])
        run_model(model, np.zeros((batch_size, tile_size, tile_size, cin), np.float32))
        return True
    except Exception:  # noqa: BLE001 - the run reports a bad model or install
        log.debug("napari-unet warm-up failed", exc_info=True)
        return False


def _import_tensorflow() -> None:
    """``import keras`` (and TensorFlow) with as few GIL stalls as possible.

    Three things slow the GUI thread down while it imports: the
    dynamic loader mapping TensorFlow's 1.2 GB of libraries (done GIL-free
    beforehand by :func:`preload_libraries`), and the cyclic garbage
    collector, which runs ~6 full collections of up to ~0.4 s each over the
    million objects the import creates. The collector is paused meanwhile;
    those objects then go straight to the oldest generation (freeze +
    unfreeze), where they would have ended up anyway, so that nothing is
    left frozen and no full collection is due because of the import. And
    the GIL switch interval is shortened meanwhile (see below).
    """
    from .._tf_isolation import preload_libraries

    if "keras" in sys.modules and "skimage.color" in sys.modules:
        return
    preload_libraries()
    enabled = gc.isenabled()
    gc.disable()
    # Each time the GUI thread gives up the GIL (every Qt -> Python call) it
    # may wait one switch interval to get it back from the importing thread.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(min(interval, 0.001))
    try:
        import keras  # noqa: F401 - imports TensorFlow
        import skimage.color  # noqa: F401 - napari's label colormap imports it on first use
    finally:
        sys.setswitchinterval(interval)
        if gc.get_freeze_count() == 0:  # Never thaw what someone else froze.
            gc.freeze()
            gc.unfreeze()
        if enabled:
            gc.enable()


def warm_up_labels_canvas(viewer) -> None:
    """Build one throwaway Labels visual so the first result layer is cheap.

    napari's first Labels layer costs ~0.6 s in the GUI thread (vispy parses
    and links the shaders of the layer and its brush/polygon overlays);
    later ones ~0.2 s. Uses napari's private visual factory, so any failure
    just skips the warm-up. Once per process.
    """
    global _CANVAS_WARM
    if _CANVAS_WARM:
        return
    _CANVAS_WARM = True
    try:
        from napari._vispy.utils.visual import create_vispy_layer, create_vispy_overlay
        from napari.layers import Labels

        canvas = viewer.window._qt_viewer.canvas
        font_info = getattr(canvas, "_font_info", None)
        layer = Labels(np.zeros((2, 2), np.uint8))
        visual = create_vispy_layer(layer, font_info=font_info)
        overlays = [create_vispy_overlay(overlay, layer=layer, font_info=font_info,
                                         viewer=viewer, parent=None)
                    for overlay in layer._overlays.values()]
        for item in [*overlays, visual]:
            if hasattr(item, "close"):
                item.close()
    except Exception:  # noqa: BLE001 - private napari API: an optimisation only
        log.debug("napari-unet: Labels canvas warm-up skipped", exc_info=True)
