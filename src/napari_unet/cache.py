"""The result-store cache: out-of-core label stores written by the Segment dock.

Whole-layer runs on large lazy layers write their labels chunk by chunk to
zarr stores in :func:`napari_unet.paths.results_dir`, because the Labels
layer reads (and painting writes) them lazily. They are the user's data (hand
edits land in them), so nothing removes them automatically: the user lists
and cleans them (``napari-unet cache list`` / ``napari-unet cache clean``),
and the dock warns when the folder grows past :data:`WARN_BYTES`.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from ._atomic import sweep_partials
from .paths import results_dir

#: The Segment dock warns when the cache holds more than this many bytes.
WARN_BYTES = 5 * 2**30


@dataclass(frozen=True)
class CacheEntry:
    """One store in the cache folder.

    Attributes
    ----------
    path : Path
    size : int
        Bytes on disk.
    modified : float
        Last modification time (seconds since the epoch) of anything in it.
    """

    path: Path
    size: int
    modified: float

    @property
    def age_days(self) -> float:
        return max(0.0, (time.time() - self.modified) / 86400)


def _scan(path: Path) -> tuple[int, float]:
    if path.is_file():
        st = path.stat()
        return st.st_size, st.st_mtime
    size, latest = 0, path.stat().st_mtime
    for child in path.rglob("*"):
        try:
            st = child.stat()
        except OSError:
            continue
        if child.is_file():
            size += st.st_size
        latest = max(latest, st.st_mtime)
    return size, latest


def cache_entries(folder: str | Path | None = None) -> list[CacheEntry]:
    """The stores in the cache folder, oldest first.

    Parameters
    ----------
    folder : str or Path, optional
        Default: :func:`napari_unet.paths.results_dir`.
    """
    folder = Path(folder) if folder is not None else results_dir()
    if not folder.is_dir():
        return []
    sweep_partials(folder)  # stores of runs that were killed
    entries = []
    for path in folder.iterdir():
        if path.name.startswith("."):
            continue
        try:
            size, modified = _scan(path)
        except OSError:
            continue
        entries.append(CacheEntry(path, size, modified))
    return sorted(entries, key=lambda e: e.modified)


def cache_size(folder: str | Path | None = None) -> int:
    """Total bytes of the stores in the cache folder."""
    return sum(e.size for e in cache_entries(folder))


def clean_cache(folder: str | Path | None = None, *, older_than_days: float = 0.0,
                keep: set | None = None, dry_run: bool = False) -> list[CacheEntry]:
    """Remove stores from the cache folder.

    Parameters
    ----------
    folder : str or Path, optional
        Default: :func:`napari_unet.paths.results_dir`.
    older_than_days : float
        Only stores not modified for this many days.
    keep : set of Path, optional
        Stores never to remove (e.g. ones open in a viewer).
    dry_run : bool
        Only report what would be removed.

    Returns
    -------
    list of CacheEntry
        What was (or would be) removed.
    """
    if older_than_days < 0:
        raise ValueError(f"older_than_days must be >= 0, got {older_than_days}")
    keep = {Path(p).resolve() for p in (keep or ())}
    chosen = [e for e in cache_entries(folder)
              if e.age_days >= older_than_days and e.path.resolve() not in keep]
    if not dry_run:
        for entry in chosen:
            if entry.path.is_dir():
                shutil.rmtree(entry.path)
            else:
                entry.path.unlink()
    return chosen


def format_bytes(n: int) -> str:
    """``1.5 GiB``-style size for messages."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"  # pragma: no cover
