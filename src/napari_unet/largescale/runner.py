"""Running the dask tasks of :mod:`napari_unet.largescale`.

Connecting to a dask.distributed scheduler (with a clear error when the
optional ``distributed`` package is missing) and computing a list of delayed
tasks, on a cluster or a local scheduler, with a progress bar, a progress
callback and cancellation between tasks.
"""

from __future__ import annotations


def connect(scheduler: str):
    """A ``distributed.Client`` for a scheduler address, with a clear error
    when the optional ``distributed`` package is missing."""
    try:
        from distributed import Client
    except ImportError:
        raise RuntimeError(
            "running on a dask cluster needs the 'distributed' package: "
            "pip install 'napari-tiled-unet[distributed]'") from None
    try:
        return Client(scheduler, timeout="10s")
    except OSError as err:
        raise OSError(f"cannot reach the dask scheduler at {scheduler}: {err}") from None


def _compute(tasks, desc, *, unit, client, num_workers, quiet, progress=None, cancel=None):
    """Compute delayed tasks (results in order), with a tqdm bar counting them.

    ``progress(done, total)`` is called as tasks finish; a set ``cancel``
    event stops the computation with :class:`~napari_unet.tiling.Cancelled`.
    """
    import dask
    from tqdm import tqdm

    from ..cancel import Cancelled, is_cancelled

    done = [0]  # not bar.n: a disabled (quiet) tqdm bar does not count

    def step(bar):
        bar.update(1)
        done[0] += 1
        if progress is not None:
            progress(done[0], len(tasks))
        if is_cancelled(cancel):
            raise Cancelled(f"{desc}: cancelled")

    if progress is not None:
        progress(0, len(tasks))
    with tqdm(total=len(tasks), desc=desc, unit=unit, disable=quiet, leave=False) as bar:
        if client is not None:
            from distributed import as_completed

            futures = client.compute(tasks)
            try:
                for _ in as_completed(futures):
                    step(bar)
            except Cancelled:
                client.cancel(futures)
                raise
            return client.gather(futures)
        from dask.callbacks import Callback

        keys = {t.key for t in tasks}

        class Progress(Callback):
            def _posttask(self, key, result, dsk, state, worker_id):
                if key in keys:
                    step(bar)

        with Progress():
            return list(dask.compute(*tasks, num_workers=num_workers,
                                     scheduler="sync" if num_workers == 1 else "threads"))
