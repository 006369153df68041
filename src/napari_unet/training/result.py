"""What a training run produces: its :class:`TrainingResult`, and the
provenance (package versions, date) stored in the saved model's metadata.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ..model_io import ModelInfo


@dataclass
class TrainingResult:
    """Outcome of :func:`~napari_unet.training.train`.

    Attributes
    ----------
    model : keras.Model
        The trained model (uncompiled), holding the best epoch's weights.
    info : ModelInfo
        Its metadata (also stored in ``path``).
    history : list of dict
        One record per completed epoch (loss, val_loss, val_score, ...).
    best_score : float or None
        Best validation score (mean Dice over outputs), or best training
        loss without validation data; None if no epoch completed.
    best_epoch : int or None
        1-based epoch of ``best_score``.
    path : Path or None
        Saved model file; None if nothing was saved.
    stopped : str
        'completed', 'early_stopping', 'time_limit' or 'cancelled'.
    """

    model: object
    info: ModelInfo
    history: list[dict] = field(default_factory=list)
    best_score: float | None = None
    best_epoch: int | None = None
    path: Path | None = None
    stopped: str = "completed"

    @property
    def cancelled(self) -> bool:
        return self.stopped == "cancelled"


def _versions() -> dict:
    import keras

    from .. import __version__

    try:
        import tensorflow as tf

        tf_version = tf.__version__
    except ImportError:  # pragma: no cover - another Keras backend
        tf_version = None
    return {"versions": {"napari_unet": __version__, "keras": keras.__version__,
                         "tensorflow": tf_version},
            "date": datetime.now(UTC).isoformat(timespec="seconds")}
