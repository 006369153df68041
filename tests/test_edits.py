"""Hand-edit bookkeeping and merging (core, no napari)."""

from types import SimpleNamespace

import numpy as np

from napari_unet.edits import EditRecord, compose, edited_boxes, merge_plane
from napari_unet.scope import Scope, whole_scope


def masked_atom(slice_key, mask, old, new):
    """The shape of napari's _MaskedPaintAtom (brush, fill, polygon)."""
    return SimpleNamespace(slice_key=slice_key, mask=mask, old_values=old, new_value=new)


def test_record_marks_tiles_planes_and_touched_ids():
    rec = EditRecord((3, 100, 70), tile=32)
    assert not rec.edited and rec.plane_mask((1,), (100, 70)) is None
    mask = np.zeros((1, 4, 4), bool)
    mask[0, 1, 2] = True
    rec.record_atom(masked_atom((slice(1, 2), slice(40, 44), slice(60, 64)), mask,
                                np.array([7]), 9))
    rec.record_atom(((np.array([2]), np.array([99]), np.array([0])), np.array([0]),
                     np.array([3])))
    assert rec.edited and rec.edited_planes() == {(1,), (2,)}
    assert rec.touched_ids == {7, 9, 3}
    m1 = rec.plane_mask((1,), (100, 70))
    assert m1.shape == (100, 70) and m1[41, 62] and m1[32:64, 32:64].all()
    assert m1.sum() == 32 * 32  # only the tile at rows 32-63, cols 32-63
    assert rec.plane_mask((2,), (100, 70))[96:, :32].all()
    assert rec.plane_mask((0,), (100, 70)) is None


def test_box_atom_and_replacement_and_snapshot_independence():
    rec = EditRecord((64, 64), tile=16)
    rec.record_atom(masked_atom((slice(0, 20), slice(30, 33)), None, np.array([0]), 4))
    assert rec.tile_grid(())[:2, 1:3].all() and rec.tile_grid(()).sum() == 4
    snap = rec.snapshot()
    rec.mark_replaced()
    assert rec.plane_mask((), (64, 64)).all() and not snap.replaced
    other = EditRecord((64, 64), tile=16)
    other.absorb(snap)
    assert other.touched_ids == {4} and other.tile_grid(()).sum() == 4


def test_merge_plane_keeps_edited_objects_and_blocks_overlapping_new_ones():
    old = np.zeros((8, 8), np.int32)
    old[:3, :3] = 1  # edited by the user
    old[5:, 5:] = 2  # untouched
    new = np.zeros((8, 8), np.int32)
    new[1:4, 1:4] = 10  # overlaps the kept object: rejected
    new[5:7, 0:2] = 11  # free space: accepted
    edited = np.zeros((8, 8), bool)
    edited[0, 0] = True
    out = merge_plane(old, new, edited, touched_ids={2}, mode="instance")
    assert (out[:3, :3] == 1).all() and (out[5:, 5:] == 2).all()
    assert not (out == 10).any() and (out[5:7, 0:2] == 11).all()


def test_compose_rewrites_unedited_planes_and_keeps_ids_unique():
    existing = np.zeros((2, 8, 8), np.int32)
    existing[0, :4, :4] = 5
    existing[1, :4, :4] = 6
    rec = EditRecord(existing.shape, tile=4)
    rec.mark_pixels([np.array([0]), np.array([1]), np.array([1])])  # plane 0 edited
    new = np.zeros((2, 8, 8), np.int32)
    new[:, 4:, 4:] = 1
    new[:, :2, :2] = 2
    out = compose(new, existing, whole_scope(existing.shape), rec, "instance")
    assert (out[0, :4, :4] == 5).all()  # the edited object stays whole
    assert set(np.unique(out[0])) == {0, 5, 7}  # new ids shifted past the old max (6)
    assert set(np.unique(out[1])) == {0, 7, 8}  # unedited plane: new result only
    # A partial scope shifts ids without edits too.
    part = Scope((1,), (slice(0, 8), slice(0, 8)), (slice(0, 8), slice(0, 8)), 3)
    out = compose(new[1], existing, part, None, "instance")
    assert out.min() == 0 and out[out > 0].min() == 7


def test_compose_keeps_an_edited_3d_object_through_all_its_planes():
    existing = np.zeros((3, 8, 8), np.int32)
    existing[:, :4, :4] = 5  # one nucleus through Z, edited in plane 1 only
    existing[:, 5:, 5:] = 6  # untouched
    rec = EditRecord(existing.shape, tile=4)
    rec.mark_pixels([np.array([1]), np.array([1]), np.array([1])])
    new = np.zeros((3, 8, 8), np.int32)
    new[:, 1:5, 1:5] = 1  # the new 3D object overlapping the edited one
    new[:, 5:, 5:] = 2
    volume = compose(new, existing, whole_scope(existing.shape), rec, "instance",
                     volume_axis=0)
    assert (volume[:, :4, :4] == 5).all()  # kept in every plane, not only plane 1
    assert not np.isin(volume, [7]).any()  # its overlapping replacement dropped everywhere
    assert (volume[:, 5:, 5:] == 8).all()  # untouched objects re-predicted
    per_plane = compose(new, existing, whole_scope(existing.shape), rec, "instance")
    assert (per_plane[0, 1:5, 1:5] == 7).all()  # planes merged alone: a mix of both


def test_edited_boxes_group_grow_and_merge():
    grid = np.zeros((8, 8), bool)
    grid[0, 0] = grid[7, 7] = True
    assert edited_boxes(grid, 16, (128, 128), min_size=40) == [(0, 40, 0, 40),
                                                               (88, 128, 88, 128)]
    grid[2, 2] = True  # one tile apart from (0, 0): one group
    assert edited_boxes(grid, 16, (128, 128), min_size=16)[0] == (0, 64, 0, 64)
    # Grown boxes that overlap are merged.
    grid = np.zeros((8, 8), bool)
    grid[1, 1] = grid[1, 5] = True
    assert edited_boxes(grid, 16, (128, 128), min_size=64) == [(0, 64, 0, 120)]
