"""Reading bioimage.io model packages safely, without TensorFlow or ``bioimageio.spec``.

A package is a zip file, a folder, or a description file (``rdf.yaml``,
``bioimageio.yaml``, ``*.bioimageio.yaml``) next to its files. The
description is parsed with ``yaml.safe_load`` (no object construction);
:mod:`.description` then checks it against what napari-unet can run (one 2D
image in, one probability map out, channels last, percentile normalization,
weights Keras loads without executing code from the package) and refuses
anything else with one :class:`~napari_unet.ModelFileError` naming the
reason, before any weights are read.

The spec library itself is not used: it pins exact versions of itself and
of pydantic that conflict with napari's, and the plugin must open packages
in any napari environment. Layouts of model format 0.5 and 0.4 are read.

Zip members are never extracted wholesale: a package with an absolute or
``..`` member name, or a link, is refused as a whole, and single members
are copied out with a size limit.
"""

from __future__ import annotations

import posixpath
import re
import shutil
import stat
import zipfile
from pathlib import Path

from ..model_io import ModelFileError

DESCRIPTION_NAMES = ("rdf.yaml", "bioimageio.yaml")
#: File filter for "Load model file..." dialogs.
PACKAGE_FILE_FILTER = "Models (*.keras *.zip *.yaml *.yml)"
#: Weight formats napari-unet runs, in order of preference.
SUPPORTED_WEIGHTS = ("keras_v3", "keras_hdf5", "tensorflow_saved_model_bundle")
MAX_DESCRIPTION_BYTES = 1 << 20
#: Largest single file copied out of a package (weights included).
MAX_MEMBER_BYTES = 4 << 30
MAX_MEMBERS = 100_000



# --------------------------------------------------------------------------
# Finding and opening packages
# --------------------------------------------------------------------------
def is_bioimageio_package(path) -> bool:
    """Whether ``path`` looks like a bioimage.io package (not a ``.keras`` file).

    True for a folder holding a description file, a ``.yaml``/``.yml`` file,
    and a zip file with a description file at its root. Cheap: reads at
    most a zip's table of contents.
    """
    try:
        path = Path(path)
        if path.is_dir():
            return _folder_description(path) is not None
        if path.suffix.lower() in (".yaml", ".yml"):
            return path.is_file()
        if path.is_file() and zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                return _zip_description(zf.namelist()) is not None
    except (OSError, zipfile.BadZipFile, TypeError):
        return False
    return False


def _folder_description(folder: Path) -> Path | None:
    for name in DESCRIPTION_NAMES:
        if (folder / name).is_file():
            return folder / name
    found = sorted(folder.glob("*.bioimageio.yaml"))
    return found[0] if len(found) == 1 else None


def _zip_description(names) -> str | None:
    for name in DESCRIPTION_NAMES:
        if name in names:
            return name
    found = sorted(n for n in names if "/" not in n and n.endswith(".bioimageio.yaml"))
    return found[0] if len(found) == 1 else None


class Package:
    """An opened package: its description and read access to its files.

    Use :func:`open_package`; call :meth:`close` (or use ``with``) when done.
    """

    def __init__(self, path: Path, rdf: dict, *, zf: zipfile.ZipFile | None = None,
                 root: Path | None = None):
        self.path, self.rdf, self._zip, self._root = path, rdf, zf, root

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()

    @property
    def is_zip(self) -> bool:
        return self._zip is not None

    def _member(self, source: str) -> str:
        """A description's ``source`` as a safe relative name inside the package."""
        if not isinstance(source, str) or not source.strip():
            raise refusal(self.path, "a file reference is empty or not a string")
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", source):
            raise refusal(self.path, f"it refers to {source}, which is not inside the package, "
                          "and napari-unet never downloads model files")
        name = source.replace("\\", "/")
        if name.startswith("./"):
            name = name[2:]
        if not _safe_name(name):
            raise refusal(self.path, f"unsafe file reference {source!r} (absolute or outside "
                          "the package)")
        return posixpath.normpath(name)

    def exists(self, source: str) -> bool:
        """Whether the package holds ``source`` (a file, or a folder in a folder package)."""
        name = self._member(source)
        if self._zip is not None:
            names = self._zip.namelist()
            return name in names or any(n.startswith(name + "/") for n in names)
        return self._local(name).exists()

    def is_folder(self, source: str) -> bool:
        name = self._member(source)
        if self._zip is not None:
            return name not in self._zip.namelist() and self.exists(source)
        return self._local(name).is_dir()

    def _local(self, name: str) -> Path:
        path = (self._root / name).resolve()
        root = self._root.resolve()
        # Also catches symbolic links that lead out of the package folder.
        if path != root and root not in path.parents:
            raise refusal(self.path, f"file reference {name!r} leads outside the package")
        return path

    def local_folder(self, source: str) -> Path:
        """A folder of a folder package, checked to stay inside it."""
        return self._local(self._member(source))

    def copy_out(self, source: str, target: Path) -> Path:
        """Copy one file of the package to ``target``, at most ``MAX_MEMBER_BYTES``."""
        name = self._member(source)
        if not self.exists(source) or self.is_folder(source):
            raise refusal(self.path, f"the file {source!r} is missing from the package")
        if self._zip is not None:
            info = self._zip.getinfo(name)
            if info.file_size > MAX_MEMBER_BYTES:
                raise refusal(self.path, f"{source!r} is too large ({info.file_size} bytes)")
            with self._zip.open(info) as src, open(target, "wb") as dst:
                _copy_limited(src, dst, MAX_MEMBER_BYTES, f"{self.path}: {source!r}")
        else:
            local = self._local(name)
            if local.stat().st_size > MAX_MEMBER_BYTES:
                raise refusal(self.path, f"{source!r} is too large")
            shutil.copyfile(local, target)
        return target


def refusal(where, reason: str) -> ModelFileError:
    """The one error for a package napari-unet will not use."""
    return ModelFileError(f"Cannot use the bioimage.io package {where}: {reason}.")


def _safe_name(name: str) -> bool:
    """Relative, no ``..``, no drive letter, no empty or NUL parts."""
    if not name or name.startswith("/") or "\x00" in name or re.match(r"^[a-zA-Z]:", name):
        return False
    parts = [p for p in name.split("/") if p not in ("", ".")]
    return bool(parts) and ".." not in parts


def _copy_limited(src, dst, limit: int, what: str) -> int:
    """Copy at most ``limit`` bytes (counted as inflated: a zip's directory can
    lie about sizes); return the number copied."""
    total = 0
    while chunk := src.read(1 << 20):
        total += len(chunk)
        if total > limit:
            raise ModelFileError(f"{what} is larger than {limit} bytes")
        dst.write(chunk)
    return total


def check_zip_members(zf: zipfile.ZipFile, where) -> None:
    """Refuse a zip with unsafe member names, links or too many members."""
    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS:
        raise refusal(where, f"too many files in a zip archive ({len(infos)})")
    for info in infos:
        name = info.filename.replace("\\", "/")
        if not _safe_name(name.rstrip("/") or "."):
            raise refusal(where, f"unsafe path {info.filename!r} in a zip archive (absolute "
                          "or '..')")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise refusal(where, f"a zip archive holds a symbolic link ({info.filename!r})")


def open_package(path) -> Package:
    """Open a package and parse its description (``yaml.safe_load``).

    Raises
    ------
    ModelFileError
        Not found, not a package, an unsafe zip, or an unreadable
        description.
    """
    import yaml

    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"Model file not found: {path}")
    zf = root = None
    try:
        if path.is_dir():
            description = _folder_description(path)
            if description is None:
                raise refusal(path, "the folder has no bioimage.io description (rdf.yaml or "
                              "bioimageio.yaml)")
            root = path
            raw = _read_small(description)
        elif path.suffix.lower() in (".yaml", ".yml"):
            root = path.parent
            raw = _read_small(path)
        else:
            try:
                zf = zipfile.ZipFile(path)
            except (zipfile.BadZipFile, OSError) as err:
                raise ModelFileError(f"Not a zip file: {path} ({err})") from err
            check_zip_members(zf, path)
            name = _zip_description(zf.namelist())
            if name is None:
                raise refusal(path, "it has no bioimage.io description (rdf.yaml)")
            info = zf.getinfo(name)
            if info.file_size > MAX_DESCRIPTION_BYTES:
                raise refusal(path, f"{name} is too large ({info.file_size} bytes)")
            raw = zf.read(info)
        try:
            rdf = yaml.safe_load(raw)
        except yaml.YAMLError as err:
            first = str(err).strip().splitlines()[0]
            raise refusal(path, f"the description is not valid YAML ({first})") from err
        if not isinstance(rdf, dict):
            raise refusal(path, "the description is not a YAML mapping")
    except BaseException:
        if zf is not None:
            zf.close()
        raise
    return Package(path, rdf, zf=zf, root=root)


def _read_small(file: Path) -> bytes:
    if file.stat().st_size > MAX_DESCRIPTION_BYTES:
        raise refusal(file, "the description is too large")
    return file.read_bytes()
