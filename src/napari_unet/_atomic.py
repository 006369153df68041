"""Atomic, no-clobber writes: the final name appears only once the data is complete.

Every file napari-unet writes (TIFFs, models, dataset manifests, settings)
goes through :func:`atomic_write`; folders (zarr stores) through
:func:`atomic_folder`. A crash, a full disk, Ctrl-C or even ``kill -9``
never leaves a truncated file under the final name, and an existing file --
including one that appears while we write -- is only replaced when asked to.

On Linux the data goes to an *unnamed* file (``O_TMPFILE``) in the
destination folder that is linked into place when complete: if the process
dies, the kernel frees it and nothing is left behind. Elsewhere (or on file
systems without ``O_TMPFILE``) a hidden ``.<name>.<pid>-<random>.partial``
file is used, and such leftovers of dead processes are swept away by the
next write into that folder.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

_PARTIAL = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)-[0-9a-f]{8}\.partial(?P<suffix>[^/]*)$")


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, *, overwrite: bool = False,
                 exists_message: str | None = None) -> Iterator[Path]:
    """Yield a temporary path to write; publish it as ``path`` on success.

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
        A path the caller writes by name (``open(tmp, "wb")``, ...). It may
        have no suffix: writers that check suffixes (Keras) must write
        elsewhere and copy the bytes in.
    """
    path = Path(path)
    message = exists_message or f"{path} already exists (pass overwrite=True to replace it)"
    if not overwrite and path.exists():
        raise FileExistsError(message)
    sweep_partials(path.parent)
    fd = _open_unnamed(path.parent)
    if fd is not None:
        try:
            yield Path(f"/proc/self/fd/{fd}")
            os.fsync(fd)
            _link_unnamed(fd, path, overwrite, message)
        finally:
            os.close(fd)
    else:
        tmp = _create_named(path)
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


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike, *, overwrite: bool = False,
                  exists_message: str | None = None) -> Iterator[Path]:
    """Yield a hidden temporary folder; move it to ``path`` on success.

    For outputs that are folders (zarr stores). An existing ``path`` is only
    replaced (with ``overwrite``) once the new folder is complete. A folder
    left by a killed process is removed by the next write into the parent.
    """
    path = Path(path)
    message = exists_message or f"{path} already exists (pass overwrite=True to replace it)"
    if not overwrite and path.exists():
        raise FileExistsError(message)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_partials(path.parent)
    tmp = path.with_name(_partial_name(path))
    try:
        yield tmp
        if path.exists() and not overwrite:
            raise FileExistsError(message)
        if path.is_dir() and not path.is_symlink():
            # Move the old folder aside first: a crash now leaves it intact
            # under a name the next sweep recognises, never half-deleted.
            old = path.with_name(_partial_name(path))
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            if path.exists() or path.is_symlink():
                path.unlink()
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _fsync_directory(path.parent)


def sweep_partials(folder: str | os.PathLike) -> list[Path]:
    """Remove temporary files and folders left in ``folder`` by dead processes.

    Only names this module creates (``.<name>.<pid>-<hex>.partial...``) whose
    process no longer runs are removed. Returns what was removed.
    """
    removed = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = _PARTIAL.match(entry.name)
        if match is None or _pid_alive(int(match["pid"])):
            continue
        with contextlib.suppress(OSError):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed.append(entry)
    return removed


def _partial_name(path: Path) -> str:
    return f".{path.stem}.{os.getpid()}-{secrets.token_hex(4)}.partial{path.suffix}"


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # someone else's live process
    return True


def _open_unnamed(folder: Path) -> int | None:
    """An unnamed file in ``folder`` (Linux ``O_TMPFILE``), or None if unsupported."""
    flag = getattr(os, "O_TMPFILE", None)
    if flag is None or not os.path.isdir("/proc/self/fd"):
        return None
    try:
        # Mode 0o666: the umask decides the final permissions, as for open().
        return os.open(folder, flag | os.O_WRONLY, 0o666)
    except OSError as err:
        if err.errno in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT):
            return None  # file system without O_TMPFILE: named temporary instead
        raise


def _linkat(fd: int, path: Path) -> None:
    """Give the unnamed file ``fd`` the name ``path`` (fails if it exists)."""
    # A dir_fd makes CPython call linkat(..., AT_SYMLINK_FOLLOW), which
    # follows /proc's magic link to the file; plain link() would not.
    root = os.open("/", os.O_RDONLY)
    try:
        os.link(f"/proc/self/fd/{fd}", path, src_dir_fd=root, follow_symlinks=True)
    finally:
        os.close(root)


def _link_unnamed(fd: int, path: Path, overwrite: bool, message: str) -> None:
    if not overwrite:
        try:
            # linkat fails atomically if `path` exists: a file that appeared
            # while we wrote is never replaced.
            _linkat(fd, path)
        except FileExistsError:
            raise FileExistsError(message) from None
        return
    # Replacing: link under a hidden name, then rename over the old file.
    tmp = path.with_name(_partial_name(path))
    _linkat(fd, tmp)
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def _create_named(path: Path) -> Path:
    # O_EXCL: never reuse someone else's file; mode 0o666 lets the umask decide
    # the final permissions (tempfile.mkstemp would leave them at 0600).
    for _ in range(100):
        tmp = path.with_name(_partial_name(path))
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
