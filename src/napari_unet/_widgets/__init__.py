"""napari dock widgets of napari-unet (Qt/napari only; the core never imports this).

The manifest names the docks as attributes of this package. Each dock's
module is imported on first access, with automatic garbage collection held
off (see ``_gc_pause``): the imports allocate enough to start a full
collection of napari's heap, which otherwise fell inside the dock's opening.
"""

from __future__ import annotations

import importlib

__all__ = ["ExportWidget", "SegmentWidget", "TrainWidget"]

_MODULES = {"SegmentWidget": "segment_widget", "ExportWidget": "export_widget",
            "TrainWidget": "train_widget"}


def __getattr__(name: str):
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from . import _gc_pause

    with _gc_pause.held():
        dock = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = dock
    return dock
