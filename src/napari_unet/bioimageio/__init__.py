"""bioimage.io model packages: export napari-unet models, import zoo models.

A bioimage.io package is a zip file (or a folder) holding a model
description (``rdf.yaml``, spec ``bioimageio.spec`` 0.5), the weights and
test tensors; deepImageJ, ilastik and ``bioimageio.core`` run it.

* :func:`export_bioimageio` writes one (plain YAML: no extra package).
* :func:`load_bioimageio` and :func:`read_bioimageio_info` read one without
  ``bioimageio.spec``; :func:`napari_unet.load_model` dispatches to them.
  Nothing from a package is executed (see :mod:`.importer`).

Nothing here imports napari or Qt; TensorFlow only when weights are loaded.
"""

from importlib import import_module

_EXPORTS = {
    "export_bioimageio": "export",
    "load_bioimageio": "importer",
    "read_bioimageio_info": "description",
    "is_bioimageio_package": "package",
    "PACKAGE_FILE_FILTER": "package",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
