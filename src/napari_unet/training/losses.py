"""Training losses over the named output channels of a U-Net."""

from __future__ import annotations

from collections.abc import Sequence


def make_loss(outputs: Sequence[str], boundary_weight: float = 3.0, *,
              separation: bool = False):
    """Loss over the output channels: BCE + soft Dice on ``foreground``,
    BCE with boundary pixels weighted ``boundary_weight`` on ``boundary``,
    BCE against the soft target on ``distance``.

    Extra channels of ``y_true`` after the outputs, in this order:

    * sparse annotation: a pixel weight (1 = counts, 0 = ignored): the BCE
      is averaged and the Dice summed over counted pixels only, so labels
      outside them teach nothing;
    * with ``separation``: the separation-border weight map (always the
      last channel), multiplying the BCE of ``foreground`` and ``boundary``.

    Works on Keras tensors and on numpy arrays (returns a scalar tensor).
    """
    from keras import ops

    outputs = list(outputs)
    n = len(outputs)

    def unet_loss(y_true, y_pred):
        y_true = ops.cast(y_true, "float32")
        p = ops.clip(ops.cast(y_pred, "float32"), 1e-6, 1 - 1e-6)
        sep = y_true[..., -1] if separation else None
        counted = y_true.shape[-1] == n + 1 + int(separation)
        w = y_true[..., n] if counted else None
        total = 0.0
        for c, name in enumerate(outputs):
            t, q = y_true[..., c], p[..., c]
            bce = -(t * ops.log(q) + (1 - t) * ops.log(1 - q))
            if name == "boundary":
                # Rims are thin and rare; under-predicting them merges nuclei.
                bce = bce * (1 + (boundary_weight - 1) * t)
            if sep is not None and name in ("foreground", "boundary"):
                bce = bce * sep
            if counted:
                total = total + ops.sum(w * bce) / (ops.sum(w) + 1e-6)
            else:
                total = total + ops.mean(bce)
            if name == "foreground":
                if counted:
                    t, q = t * w, q * w
                inter = ops.sum(t * q)
                total = total + 1 - (2 * inter + 1) / (ops.sum(t) + ops.sum(q) + 1)
        return total

    return unet_loss
