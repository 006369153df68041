"""Which part of a label array a run computes: a whole stack, a plane, a window.

A napari dock's scope ("whole layer", "current slice", "visible region") is a
:class:`Scope` over the *label* axes (the image's axes without channels);
the core's edit merging (:func:`napari_unet.edits.compose`) writes into it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Scope:
    """Part of the label array to compute.

    Attributes
    ----------
    lead : tuple of int or None
        Index over the leading (Z, T...) label axes; None for all planes.
    yx : (slice, slice)
        Target window in the plane, written to the labels.
    yx_read : (slice, slice)
        Window read from the image: ``yx`` plus context, so objects at the
        window's edge are predicted as in the whole image.
    """

    lead: tuple[int, ...] | None
    yx: tuple[slice, slice]
    yx_read: tuple[slice, slice]
    ndim: int

    @property
    def target(self) -> tuple:
        """Index of the region in the label array."""
        lead = (slice(None),) * (self.ndim - 2) if self.lead is None else self.lead
        return lead + self.yx

    @property
    def read(self) -> tuple:
        """Index of the image (label axes) to feed the core."""
        lead = (slice(None),) * (self.ndim - 2) if self.lead is None else self.lead
        return lead + self.yx_read

    @property
    def crop(self) -> tuple:
        """Index taking the target out of the predicted (read) window."""
        y, x = self.yx
        ry, rx = self.yx_read
        return (Ellipsis, slice(y.start - ry.start, y.stop - ry.start),
                slice(x.start - rx.start, x.stop - rx.start))

    @property
    def is_whole(self) -> bool:
        return self.lead is None and self.yx == self.yx_read


def whole_scope(shape: tuple[int, ...]) -> Scope:
    """The scope covering a whole label array of ``shape``."""
    yx = (slice(0, shape[-2]), slice(0, shape[-1]))
    return Scope(None, yx, yx, len(shape))
