"""Training losses over the named output channels of a U-Net."""

from __future__ import annotations

from collections.abc import Sequence


def make_loss(outputs: Sequence[str], boundary_weight: float = 3.0):
    """Loss over the output channels: BCE + soft Dice on ``foreground``,
    BCE with boundary pixels weighted ``boundary_weight`` on ``boundary``,
    BCE against the soft target on ``distance``.

    When ``y_true`` has one channel more than ``outputs``, that last channel
    is a per-pixel weight map (the separation-border weights) multiplying the
    BCE of ``foreground`` and ``boundary``.

    Works on Keras tensors and on numpy arrays (returns a scalar tensor).
    """
    from keras import ops

    outputs = list(outputs)

    def unet_loss(y_true, y_pred):
        y_true = ops.cast(y_true, "float32")
        p = ops.clip(ops.cast(y_pred, "float32"), 1e-6, 1 - 1e-6)
        weights = y_true[..., len(outputs)] if y_true.shape[-1] > len(outputs) else None
        total = 0.0
        for c, name in enumerate(outputs):
            t, q = y_true[..., c], p[..., c]
            bce = -(t * ops.log(q) + (1 - t) * ops.log(1 - q))
            if name == "boundary":
                # Rims are thin and rare; under-predicting them merges nuclei.
                bce = bce * (1 + (boundary_weight - 1) * t)
            if weights is not None and name in ("foreground", "boundary"):
                bce = bce * weights
            total = total + ops.mean(bce)
            if name == "foreground":
                inter = ops.sum(t * q)
                total = total + 1 - (2 * inter + 1) / (ops.sum(t) + ops.sum(q) + 1)
        return total

    return unet_loss
