"""Out-of-core and distributed segmentation of zarr and dask images.

How it works
------------
1. **Normalization**: each plane's percentiles come from exactly the strided
   subsample :func:`~napari_unet.normalize.percentile_range` takes of a
   whole plane, gathered band by band from the lazy array: blocks are scaled
   as the in-memory path scales the plane, never per chunk.
2. **Blocks**: the output is cut into blocks (the input's YX chunks). The
   probabilities of a block plus a ``halo`` of context come from
   :func:`~napari_unet.tiling.predict_region`: the windows of the *whole*
   plane's grid that touch it, reading only the pixels they need
   (mirrored at image borders in global coordinates). They equal the
   in-memory result: bitwise with ``exact=True``; otherwise within ~1e-6,
   because TensorFlow's CPU results depend slightly on a window's place in
   its batch (see ``predict_region``).
3. **Labels**: a block + halo is post-processed like a whole plane,
   cropped, and numbered 1..n. An object whose foreground component does
   not reach the edge of the block + halo is *complete*: it is labelled
   exactly as in memory, in every block that holds a part of it, and named
   by its first pixel in raster order (a global position).
4. **Merge** (union-find): complete objects with the same first pixel are
   one. Others (components larger than the halo) are joined across a
   chunk face when each is the other's best partner (most facing pixel
   pairs). A last pass maps each ``(block, local id)`` to sequential ids,
   chunk by chunk.

**Z stacks** (3D instances, ``instances='3d'``): whole planes are predicted
once each and labelled in 3D slab by slab along Z (the input's Z chunk, at
least as thick as the halo, plus the halo above and below: ``halo`` pixels as
planes at the voxel size), with the same complete-object naming and
face merging across slab faces; see :mod:`napari_unet.largescale.volume`.
Memory holds one slab and its halo, whatever the number of planes.

:func:`segment_zarr` stores the per-block labels in the output zarr and then
rewrites each chunk with the merged ids, so memory stays at a few blocks
whatever the image size. :func:`segment_dask` builds the same graph lazily.
Tasks get the model's *path* and load it once per worker process.

Modules: :mod:`~napari_unet.largescale.blocks` (one block's tasks and the
merge), :mod:`~napari_unet.largescale.volume` (Z stacks, slab by slab),
:mod:`~napari_unet.largescale.local` (the blocks as a pipeline on this
machine) and :mod:`~napari_unet.largescale.runner` (dask clusters and
computing tasks with progress).
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np

from .._atomic import atomic_folder
from ..model_io import ModelInfo, load_model_cached
from ..settings import BlockSettings, LabelSettings, PredictionSettings, split_options
from .blocks import (
    ModelRef,
    Plan,
    Source,
    block_meta,
    block_table,
    label_and_store,
    label_block,
    merge_tables,
    plane_range,
    relabel_block,
    relabel_stored,
)
from .local import _label_local
from .runner import _compute, connect

__all__ = ["segment_dask", "segment_zarr"]

#: Input chunks outside this range give blocks of about 1024 px instead:
#: smaller ones would spend more on the halo (``halo`` + one tile each side)
#: than on the block, larger ones more memory than needed.
MIN_BLOCK, MAX_BLOCK = 256, 4096
#: Blocks run here (not on a cluster) group input chunks up to about this
#: (rows, columns): halos then cost 20 % of a block's pixels instead of 27 %
#: at 1024^2, and the block's own arrays ~45 MB less than at 2048^2. On a
#: 6144^2 zarr of 1024 px chunks (2 cores, Zen 4): 28-33 s and a peak RSS of
#: 978-1004 MB, against 27-37 s and 1027-1046 MB with 2048^2 blocks.
LOCAL_BLOCK = (1024, 2048)


def _plan(image, model, info, *, axes, channel_axis, channels, settings,
          local: bool = False) -> tuple:
    """Resolve the model, the image's axes and every setting once: ``(Plan, Source)``.

    ``local``: the blocks run here one after the other (not as dask tasks),
    so 2D blocks group input chunks into blocks of about :data:`LOCAL_BLOCK`;
    the output keeps the input's chunks.
    """
    from ..model import model_channels, model_depth
    from ..prediction import prepare_image
    from ..window_grid import check_tiling

    if model is None or isinstance(model, (str, bytes)) or hasattr(model, "__fspath__"):
        keras_model, file_info = load_model_cached(model)
        ref = ModelRef(model, keras_model)
    else:
        keras_model, file_info = model, ModelInfo.from_model(model)
        ref = ModelRef(None, model, in_memory=True)
    info = info or file_info
    prep = prepare_image(_as_dask(image), model_channels(keras_model)[0], axes=axes,
                         channel_axis=channel_axis, channels=channels)
    data = prep.data
    multiple = 2 ** model_depth(keras_model)
    prediction = settings["prediction"].resolved(info, prep.spatial_shape[-2:], multiple)
    labelling = settings["labelling"].resolved(info)
    blocks = settings["blocks"]
    check_tiling(prediction.tile_size, prediction.overlap, multiple)
    shape = tuple(int(n) for n in data.shape[:-1])
    if blocks.block_size is None:
        stride = prediction.tile_size - prediction.overlap
        block = tuple(int(c) if MIN_BLOCK <= c <= MAX_BLOCK else round(1024 / stride) * stride
                      for c in data.chunksize[-3:-1])
    else:
        block = blocks.block_size
    block = tuple(min(b, n) for b, n in zip(block, shape[-2:], strict=True))
    plan = Plan(ref, info, shape, block, multiple, prediction, labelling, blocks, prep.axes)
    chunks = tuple(int(c) for c in data.chunksize[-3:-1])
    if (local and not plan.volumes and blocks.block_size is None and block == chunks
            and any(c < edge for c, edge in zip(chunks, LOCAL_BLOCK, strict=True))):
        grouped = tuple(min(n, c * max(1, round(edge / c)))
                        for c, n, edge in zip(chunks, shape[-2:], LOCAL_BLOCK, strict=True))
        plan = replace(plan, block=grouped, out_chunks=chunks)
    if plan.volumes and labelling.instances == "stitch":
        raise ValueError("instances='stitch' is not available out of core; use '3d' "
                         "(3D watershed) or '2d'")
    return plan, Source(data)


def _as_dask(image):
    import dask.array as da

    if isinstance(image, (str, os.PathLike)):
        return da.from_zarr(str(image))
    if hasattr(image, "__dask_graph__"):
        return image
    if type(image).__module__.startswith("zarr"):
        return da.from_zarr(image)
    return da.from_array(np.asarray(image), chunks=-1)  # blocks of ~1024 px, see MIN_BLOCK


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------
def segment_dask(array, model=None, *, info=None, axes=None, channel_axis=None, channels=None,
                 prediction: PredictionSettings | None = None,
                 labelling: LabelSettings | None = None, blocks: BlockSettings | None = None,
                 **options):
    """Lazy segmentation of a dask (or zarr, or numpy) image, block by block.

    Parameters
    ----------
    array : dask array, zarr array, path of a zarr array, or ndarray
        2D image or stack, with a channel axis if any.
    model : str, Path, keras.Model or None
        A ``.keras`` file (needed on a distributed cluster), a Keras model
        (local schedulers only) or None for the shipped default.
    info : ModelInfo, optional
        Metadata for a Keras model passed as an object.
    axes, channel_axis, channels
        Which axis is which and which channels feed the model, as in
        :func:`~napari_unet.segment`.
    prediction, labelling : settings, optional
        As in :func:`~napari_unet.segment`. Percentiles are always per plane.
    blocks : BlockSettings, optional
        Halo, block size and exactness of the block decomposition.
    **options
        Fields of the three settings classes given one by one.

    Returns
    -------
    dask.array.Array
        ``int32`` labels (``uint8`` mask in semantic mode), chunked by
        block, with the image's spatial shape. Computing it in one go keeps
        every block's labels in memory until the merge table is known; for
        images larger than memory use :func:`segment_zarr`.
    """
    import dask
    import dask.array as da

    settings = split_options(options, prediction=prediction, labelling=labelling, blocks=blocks,
                             allowed=("prediction", "labelling", "blocks"),
                             caller="segment_dask()")
    plan, src = _plan(array, model, info, axes=axes, channel_axis=channel_axis,
                      channels=channels, settings=settings)
    if plan.volumes:
        raise ValueError("segment_dask labels planes; 3D instances of a Z stack out of core are "
                         "written by segment_zarr (or pass instances='2d', or axes with T "
                         "instead of Z)")
    normalize, mode = plan.prediction.normalize, plan.labelling.mode
    lead = plan.shape[:-2]
    ranges = dask.delayed(np.reshape)(
        [dask.delayed(plane_range)(src, plan, i) for i in np.ndindex(*lead)],
        lead + (2, -1)) if normalize else None
    blocks = {k: dask.delayed(label_block)(src, plan, ranges, k) for k in plan.keys()}
    meta = np.empty((0,) * len(plan.shape), plan.dtype)

    def nest(prefix):
        if len(prefix) == len(plan.grid):
            shape = tuple(s.stop - s.start for s in plan.slices(prefix))
            return da.from_delayed(blocks[prefix][0], shape, dtype=plan.dtype, meta=meta)
        return [nest(prefix + (i,)) for i in range(plan.grid[len(prefix)])]

    labels = da.block(nest(()))
    if mode == "semantic":
        return labels
    merged = dask.delayed(merge_tables)(
        plan, {k: dask.delayed(block_meta)(v) for k, v in blocks.items()})
    return labels.map_blocks(relabel_block, merged=merged, dtype=plan.dtype, meta=meta)


def segment_zarr(input, output, model=None, *, overwrite=False, scheduler=None, client=None,
                 num_workers=1, quiet=False, progress=None, cancel=None, info=None, axes=None,
                 channel_axis=None, channels=None, prediction: PredictionSettings | None = None,
                 labelling: LabelSettings | None = None, blocks: BlockSettings | None = None,
                 **options):
    """Segment a zarr (or dask) image into a zarr array of labels, out of core.

    Parameters
    ----------
    input : path of a zarr array, zarr array or dask array
        The image (see :func:`segment_dask`).
    output : str or Path
        New zarr array: the image's shape without the channel axis, int32
        labels (uint8 mask in semantic mode), chunked by block. Written to a
        hidden sibling first and moved into place when complete.
    model
        See :func:`segment_dask`.
    overwrite : bool
        Replace an existing ``output``.
    scheduler : str, optional
        Address of a dask.distributed scheduler to run the blocks on.
    client : distributed.Client, optional
        A client to run on (instead of ``scheduler``).
    num_workers : int
        Blocks run at once without a cluster. 1 by default: TensorFlow
        already uses every core for one block.
    quiet : bool
        No progress bars.
    progress : callable, optional
        Called as ``progress(done, total)`` after each finished block
        (``total`` counts the tasks of the current stage).
    cancel : threading.Event or callable, optional
        When set (or returning True), the run stops after the blocks in progress, removes its
        partial output and raises :class:`~napari_unet.tiling.Cancelled`.
    info, axes, channel_axis, channels, prediction, labelling, blocks, **options
        See :func:`segment_dask`.

    Returns
    -------
    zarr.Array
        The output, opened read-only; ``attrs['n_objects']`` counts objects.
    """
    import zarr

    output = Path(output)
    if output.exists() and not overwrite:
        raise FileExistsError(f"{output} already exists (pass overwrite=True to replace it)")
    settings = split_options(options, prediction=prediction, labelling=labelling, blocks=blocks,
                             allowed=("prediction", "labelling", "blocks"),
                             caller="segment_zarr()")
    plan, src = _plan(input, model, info, axes=axes, channel_axis=channel_axis,
                      channels=channels, settings=settings,
                      local=client is None and scheduler is None and num_workers == 1)
    mode = plan.labelling.mode
    if plan.volumes and (client is not None or scheduler is not None):
        raise ValueError("3D instances run slab by slab on this machine, not on a dask "
                         "cluster; drop the scheduler or pass instances='2d'")
    if (client is not None or scheduler is not None) and plan.model.in_memory:
        raise ValueError("a distributed run needs the model as a .keras path, not an object")
    own_client = None
    if scheduler is not None and client is None:
        client = own_client = connect(scheduler)
    run = dict(client=client, num_workers=num_workers, quiet=quiet, progress=progress,
               cancel=cancel)
    try:
        with atomic_folder(output, overwrite=overwrite) as tmp:
            if plan.volumes:
                from .volume import write_volume_labels

                slab = int(src.array.chunksize[plan.axes.index("Z")])
                n = write_volume_labels(plan, src, tmp, slab=slab, progress=progress,
                                        cancel=cancel)
            else:
                n = _write_labels(plan, src, tmp, run)
            zarr.open_array(str(tmp), mode="r+").attrs.update({"napari_unet": {
                "source": str(input) if isinstance(input, (str, os.PathLike)) else None,
                "model": plan.info.name, "mode": mode, "n_objects": n,
                "tile_size": plan.prediction.tile_size, "overlap": plan.prediction.overlap,
                "halo": plan.blocks.halo, "exact": plan.blocks.exact}, "n_objects": n})
    finally:
        if own_client is not None:
            own_client.close()
    return zarr.open_array(str(output), mode="r")


def _write_labels(plan, src, path, run) -> int:
    """Label every block into the zarr array at ``path``; return the object count."""
    import dask
    import zarr

    lead, keys = plan.shape[:-2], plan.keys()
    ranges = None
    if plan.prediction.normalize:
        ranges = np.reshape(_compute([dask.delayed(plane_range)(src, plan, i)
                                      for i in np.ndindex(*lead)], "percentiles",
                                     unit="plane", **run), lead + (2, -1))
    zarr.open_array(str(path), mode="w", shape=plan.shape, dtype=plan.dtype, fill_value=0,
                    chunks=(1,) * len(lead) + (plan.out_chunks or plan.block))
    if run["client"] is None and run["num_workers"] == 1:
        metas = _label_local(plan, src, ranges, keys, str(path), run)
    else:
        metas = _compute([dask.delayed(label_and_store)(src, plan, ranges, k, str(path))
                          for k in keys], "blocks", unit="chunk", **run)
    if plan.labelling.mode != "instance":
        return 0
    merged = merge_tables(plan, dict(zip(keys, metas, strict=True)))
    tables = [block_table(merged, k, m[0]) for k, m in zip(keys, metas, strict=True)]
    # Each task owns its chunk, and zarr's codecs release the GIL: two threads
    # overlap one chunk's reading with another's writing.
    merge_run = run if run["client"] is not None else {
        **run, "num_workers": max(2, run["num_workers"])}
    _compute([dask.delayed(relabel_stored)(str(path), plan, k, t)
              for k, t in zip(keys, tables, strict=True)], "merge", unit="chunk", **merge_run)
    return int(merged[0].max(initial=0))
