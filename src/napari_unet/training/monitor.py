"""The Keras callback that drives :func:`napari_unet.training.train`.

Kept apart from ``training.py`` because subclassing ``keras.callbacks.Callback``
needs Keras at import time; ``training`` imports this module only when a
run starts.
"""

from __future__ import annotations

import time

import keras
import numpy as np

from ..cancel import is_cancelled
from ..engine import compiled_predictor
from ..model_io import save_model


def _dice(t: np.ndarray, p: np.ndarray) -> float:
    denom = int(t.sum()) + int(p.sum())
    return 1.0 if denom == 0 else float(2 * np.logical_and(t, p).sum() / denom)


class TrainingMonitor(keras.callbacks.Callback):
    """Progress, cancellation, time limit, validation, early stopping, saving.

    Parameters
    ----------
    net : keras.Model
        The model being trained.
    export : keras.Model
        An uncompiled clone of ``net`` that receives the best weights for
        saving and is returned: files without optimizer state are a third
        of the size and load without the custom loss.
    val : (x, y) arrays or None
        Validation patches and targets (:func:`~napari_unet.data.grid_patches`).
    loss_fn : callable
        The training loss, also reported on the validation patches.
    outputs : sequence of str
        Output names, for per-output validation Dice.
    epochs, steps : int
        Planned epochs and steps per epoch (reported in progress events).
    learning_rate : float
        Initial learning rate, decayed here (cosine, to 10 %) along the
        fraction of the run done: steps done over planned steps, or time
        spent over ``time_limit``, whichever is larger. A time-limited run
        thus still ends with a small learning rate.
    patience : int or None
        Epochs without improvement before stopping.
    patience_after : float
        Fraction of the run (as for the learning rate) before which early
        stopping does not fire: the low-learning-rate end of the schedule
        is where a model trained from scratch gains most.
    time_limit : float or None
        Seconds from the monitor's creation.
    cancel : callable, Event or None
        Checked after every step.
    progress : callable or None
        Receives one dict per step and per epoch.
    output_path : Path or None
        Where the best weights are saved (atomically).
    overwrite : bool
        Whether the first save may replace an existing file; later saves
        replace this run's own file.
    make_info : callable
        ``make_info(extra_training_dict) -> ModelInfo`` for the saved file.
    scores : callable, optional
        ``scores(y, preds) -> dict`` with ``val_score``, replacing the
        per-output Dice at 0.5 (semantic runs).
    """

    def __init__(self, *, net, export, val, loss_fn, outputs, epochs, steps, learning_rate,
                 patience, time_limit,
                 cancel, progress, output_path, overwrite, make_info, scores=None,
                 patience_after=0.0):
        super().__init__()
        self.net, self.val, self.loss_fn, self.outputs = net, val, loss_fn, list(outputs)
        self.epochs, self.steps, self.patience = epochs, steps, patience
        self.patience_after = patience_after
        self.learning_rate = learning_rate
        self.steps_done = 0
        self.time_limit, self.cancel, self.progress = time_limit, cancel, progress
        self.output_path, self.overwrite, self.make_info = output_path, overwrite, make_info
        self.export, self.scores = export, scores
        self.history: list[dict] = []
        self.best_key = self.best_score = self.best_epoch = self.best_weights = None
        self.wait = 0
        self.stopped = "completed"
        self.saved_path = None
        self.epoch = 0
        self.t0 = time.monotonic()

    # -- helpers -----------------------------------------------------------
    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def _emit(self, **event) -> None:
        if self.progress is not None:
            self.progress({"epochs": self.epochs, "steps": self.steps,
                           "best_score": self.best_score, "best_epoch": self.best_epoch,
                           "elapsed": self.elapsed(), **event})

    def _validate(self) -> dict:
        x, y = self.val
        predict = compiled_predictor(self.net)
        preds = np.concatenate([predict(x[i:i + 16]).numpy() for i in range(0, len(x), 16)])
        record = {"val_loss": float(self.loss_fn(y, preds))}
        if self.scores is not None:  # semantic runs: per-class Dice of the argmax
            return {**record, **self.scores(y, preds)}
        n = len(self.outputs)
        # Sparse annotation: the channel after the outputs says which pixels
        # count (a separation weight map there is >= 1 everywhere: all count).
        keep = y[..., n] > 0 if y.shape[-1] > n else np.ones(y.shape[:-1], bool)
        dices = [_dice(y[..., c][keep] > 0.5, preds[..., c][keep] > 0.5) for c in range(n)]
        for name, d in zip(self.outputs, dices, strict=True):
            record[f"val_dice_{name}"] = d
        record["val_score"] = float(np.mean(dices))
        return record

    def _training_record(self) -> dict:
        best = self.history[self.best_epoch - 1] if self.best_epoch else {}
        return {"epochs": len(self.history), "best_epoch": self.best_epoch,
                "best_scores": best, "stopped": self.stopped,
                "wall_time_s": round(self.elapsed(), 1),
                "history": [{k: (round(v, 5) if isinstance(v, float) else v)
                             for k, v in h.items()} for h in self.history]}

    def _save(self) -> None:
        if self.output_path is None or self.best_weights is None:
            return
        self.export.set_weights(self.best_weights)
        self.saved_path = save_model(
            self.export, self.output_path, self.make_info(self._training_record()),
            overwrite=self.overwrite or self.saved_path is not None)

    # -- Keras hooks -------------------------------------------------------
    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def done(self) -> float:
        """Fraction of the run done: steps, or time over the time limit."""
        done = self.steps_done / (self.epochs * self.steps)
        if self.time_limit:
            done = max(done, self.elapsed() / self.time_limit)
        return min(done, 1.0)

    def on_train_batch_begin(self, batch, logs=None):
        factor = 0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * self.done()))
        self.net.optimizer.learning_rate.assign(self.learning_rate * factor)

    def on_train_batch_end(self, batch, logs=None):
        self.steps_done += 1
        loss = float(logs["loss"]) if logs and "loss" in logs else float("nan")
        self._emit(event="step", epoch=self.epoch + 1, step=batch + 1, loss=loss,
                   learning_rate=float(self.net.optimizer.learning_rate.numpy()))
        if is_cancelled(self.cancel):
            self.stopped = "cancelled"
            self.net.stop_training = True
        elif self.time_limit is not None and self.elapsed() > self.time_limit:
            self.stopped = "time_limit"
            self.net.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        if self.stopped == "cancelled":
            return  # a partial epoch after a cancel is not scored or saved
        record = {"epoch": epoch + 1, "loss": float((logs or {}).get("loss", np.nan)),
                  "time_s": round(self.elapsed(), 1)}
        if self.val is not None:
            record.update(self._validate())
            key = record["val_score"]
        else:
            key = -record["loss"]  # no validation data: lowest training loss
        self.history.append(record)
        improved = self.best_key is None or key > self.best_key
        if improved:
            self.best_key, self.best_epoch, self.wait = key, epoch + 1, 0
            self.best_score = record.get("val_score", record["loss"])
            self.best_weights = self.net.get_weights()
            self._save()
        else:
            self.wait += 1
            if (self.patience is not None and self.wait >= self.patience
                    and self.done() >= self.patience_after):
                self.stopped = "early_stopping"
                self.net.stop_training = True
        self._emit(event="epoch", improved=improved, **record)

    def finish(self):
        """Restore the best weights, write the final file, build the result."""
        from .result import TrainingResult

        if self.best_weights is not None:
            self.export.set_weights(self.best_weights)
            self._save()  # final metadata: full history and stop reason
        else:
            self.export.set_weights(self.net.get_weights())
        info = self.make_info(self._training_record())
        return TrainingResult(model=self.export, info=info, history=list(self.history),
                              best_score=self.best_score, best_epoch=self.best_epoch,
                              path=self.saved_path, stopped=self.stopped)
