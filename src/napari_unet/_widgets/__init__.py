"""napari dock widgets of napari-unet (Qt/napari only; the core never imports this)."""

from .segment_widget import SegmentWidget

__all__ = ["SegmentWidget"]
