"""Training and fine-tuning U-Nets on labelled images (headless core).

* :mod:`.data`: dataset folders and 2D training planes;
* :mod:`.targets`: network targets derived from instance labels;
* :mod:`.sampler`: augmented random patches and validation patches;
* :mod:`.losses`: losses over the named outputs;
* :mod:`.loop`: :func:`train`, the loop behind the Train dock and the CLI;
* :mod:`.prepare`: a run's starting model, validation split and patch feed;
* :mod:`.result`: :class:`TrainingResult` and the provenance saved with a model;
* :mod:`.monitor`: the Keras callback that reports, validates and saves.

Keras is imported only when a model is trained, not by this package.
"""

from .data import Dataset, read_dataset, split_components, training_planes
from .loop import train
from .result import TrainingResult
from .sampler import Augmentation, PatchSampler, grid_patches
from .targets import SUPPORTED_OUTPUTS, make_targets

__all__ = [
    "SUPPORTED_OUTPUTS",
    "Augmentation",
    "Dataset",
    "PatchSampler",
    "TrainingResult",
    "grid_patches",
    "make_targets",
    "read_dataset",
    "split_components",
    "train",
    "training_planes",
]
