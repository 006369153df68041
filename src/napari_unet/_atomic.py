"""Atomic, no-clobber file writes: a temporary file, then a rename.

Every file napari-unet writes (TIFFs, models, dataset manifests) goes through
:func:`atomic_write`, so a crash or an interrupted write never leaves a
truncated file under the final name, and an existing file -- including one
that appears while we write -- is only replaced when asked to.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, *, overwrite: bool = False,
                 exists_message: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; publish it there on success.

    Parameters
    ----------
    path : str or os.PathLike
        Final destination; its folder must exist.
    overwrite : bool
        Replace an existing ``path``. If False, :class:`FileExistsError` is
        raised before anything is written when ``path`` exists, and the
        publication itself cannot replace a file created meanwhile.
    exists_message : str, optional
        Message of that :class:`FileExistsError`.

    Yields
    ------
    pathlib.Path
        An empty file the caller writes (or replaces) by name. It keeps the
        destination's suffix, since some writers (Keras) check it.
    """
    path = Path(path)
    message = exists_message or f"{path} already exists (pass overwrite=True to replace it)"
    if not overwrite and path.exists():
        raise FileExistsError(message)
    tmp = _create_temp(path)
    try:
        yield tmp
        _fsync_file(tmp)
        if overwrite:
            os.replace(tmp, path)
        else:
            _publish_no_clobber(tmp, path, message)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    _fsync_directory(path.parent)


def _create_temp(path: Path) -> Path:
    # O_EXCL: never reuse someone else's file; mode 0o666 lets the umask decide
    # the final permissions (tempfile.mkstemp would leave them at 0600).
    for _ in range(100):
        tmp = path.with_name(f".{path.stem}.{secrets.token_hex(4)}.partial{path.suffix}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                         0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(f"could not create a temporary file in {path.parent}")  # pragma: no cover


def _fsync_file(tmp: Path) -> None:
    # The data must be on disk before the rename makes it visible.
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _publish_no_clobber(tmp: Path, path: Path, message: str) -> None:
    # A hard link fails atomically if `path` exists, so a file that appears
    # while we were writing is never overwritten.
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise FileExistsError(message) from None
    except OSError:
        # File systems without hard links (FAT, some network shares): check,
        # then rename; only a file created in between could be replaced.
        if path.exists():
            raise FileExistsError(message) from None
        os.replace(tmp, path)
    else:
        tmp.unlink()


def _fsync_directory(directory: Path) -> None:
    # Makes the rename itself durable; not possible on every OS/file system.
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
