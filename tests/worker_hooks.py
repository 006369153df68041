"""Let a test steer a worker process through files in a folder.

:func:`control` is a worker *initializer* (see
:class:`napari_unet.worker.WorkerClient`): it runs inside the worker, so
tests can hold a run at a known point, make it fail, or count network
calls, without patching anything in the test process. Plain files work
across processes and across worker restarts:

* ``hold``: while it exists, what its text names waits: ``network`` (every
  network call), ``labels`` (every post-processing call), ``step`` or
  ``epoch <n>`` (after that training progress event); the worker writes
  ``held`` when it starts waiting;
* ``memory``: while it exists, prediction raises ``MemoryError``;
* ``calls``: one line is appended per network call.

Imports nothing of napari or Qt (it runs in the worker).
"""

from __future__ import annotations

import time
from pathlib import Path


def control(folder: str) -> None:
    """Install the hooks in this worker (the initializer)."""
    from napari_unet import engine, postprocess, prediction
    from napari_unet.training import loop

    folder = Path(folder)
    run_model, predict, train = engine.run_model, prediction.predict_probabilities, loop.train
    label = postprocess.probabilities_to_labels

    def held_labels(*args, **kwargs):
        _wait(folder, "labels")
        return label(*args, **kwargs)

    def counted_model(model, batch, *args):
        _wait(folder, "network")
        with open(folder / "calls", "a") as f:
            f.write(f"{len(batch)}\n")
        return run_model(model, batch, *args)

    def failing_predict(*args, **kwargs):
        if (folder / "memory").exists():
            raise MemoryError
        return predict(*args, **kwargs)

    def gated_train(*args, progress=None, **kwargs):
        def hold(event):
            progress(event)
            name = event.get("event")
            _wait(folder, "step" if name == "step" else f"epoch {event.get('epoch')}")
        return train(*args, progress=hold, **kwargs)

    engine.run_model = counted_model
    postprocess.probabilities_to_labels = held_labels
    prediction.predict_probabilities = failing_predict
    loop.train = gated_train


def _wait(folder: Path, what: str) -> None:
    hold = folder / "hold"
    try:
        text = hold.read_text().strip()
    except FileNotFoundError:
        return
    if text != what:
        return
    (folder / "held").write_text(what)
    while hold.exists():
        time.sleep(0.01)
    (folder / "held").unlink(missing_ok=True)


def network_calls(folder) -> int:
    """Network calls counted so far (by every worker using ``folder``)."""
    try:
        return len((Path(folder) / "calls").read_text().split())
    except FileNotFoundError:
        return 0
