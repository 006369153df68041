"""Training presets and defaults: what :func:`~napari_unet.train` uses for unset settings.

Named presets (``train(preset="quick")``, ``napari-unet train --preset``),
the values :func:`~napari_unet.train` falls back to for the settings a
preset can set, the defaults of a from-scratch semantic run, and the
:data:`DEFAULT` marker for an argument the caller did not give. They live
apart from :mod:`napari_unet.settings` (the settings objects of prediction,
labelling and blocks) and import nothing, so the headless core, the CLI and
the Train dock read them without loading the training code; every name is
also importable from :mod:`napari_unet.settings`.
"""

from __future__ import annotations

#: Named sets of :func:`~napari_unet.train` settings (``train(preset=...)``,
#: ``napari-unet train --preset``). ``quick``: fine-tuning on one or a few
#: corrected images that pays off within 3 minutes on 2 CPU cores, start-up
#: included (``benchmarks/bench_annotator.py`` measures it): a fixed time
#: budget of short epochs, so the best one is kept, no early stopping.
TRAINING_PRESETS = {
    "quick": {"epochs": 12, "steps_per_epoch": 15, "batch_size": 8, "patch_size": 128,
              "learning_rate": 1e-3, "patience": None, "time_limit": 140.0},
}


#: :func:`~napari_unet.train`'s own values of the settings a preset can set.
TRAINING_DEFAULTS = {"epochs": 30, "steps_per_epoch": 100, "batch_size": 8,
                     "patch_size": 128, "learning_rate": 1e-3, "patience": 8,
                     "time_limit": None}


class _Default:
    """Marks a :func:`~napari_unet.train` argument the caller did not give:
    it takes the preset's value, else :data:`TRAINING_DEFAULTS`' (an explicit
    value, even one equal to the default, always wins)."""

    def __repr__(self) -> str:
        return "DEFAULT"


DEFAULT = _Default()


#: What a from-scratch ``train(task="semantic")`` uses for the settings
#: not given to :func:`~napari_unet.train`: a few painted planes give little
#: data per epoch, so short epochs of small batches of 96 px patches and a
#: higher learning rate (cosine-decayed to the time limit) learn the most per
#: CPU second, and enough epochs that a time limit, not the epoch count,
#: ends a run (30 epochs stopped one at 185 of its 600 CPU seconds);
#: ``benchmarks/bench_semantic.py`` measures them.
SEMANTIC_DEFAULTS = {"epochs": 100, "steps_per_epoch": 40, "batch_size": 4, "patch_size": 96,
                     "learning_rate": 2e-3}


def training_preset(name: str) -> dict:
    """The settings of a training preset (a copy).

    Raises
    ------
    ValueError
        If ``name`` is not one of :data:`TRAINING_PRESETS`.
    """
    if name not in TRAINING_PRESETS:
        raise ValueError(f"Unknown training preset {name!r}; presets: "
                         f"{', '.join(TRAINING_PRESETS)}")
    return dict(TRAINING_PRESETS[name])
