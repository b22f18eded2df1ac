"""On-disk cache for rendered / resized image arrays (compressed ``.npz``, atomic writes)."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import zipfile
from pathlib import Path

import numpy as np

from repsim._io import atomic_path

__all__ = ["resolve_cache_dir", "cache_key", "save_npz_atomic", "try_save_npz", "load_npz"]

logger = logging.getLogger(__name__)


def resolve_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """``cache_dir``, else ``$REPSIM_CACHE``, else ``~/.cache/repsim``."""
    if cache_dir is None:
        cache_dir = os.environ.get("REPSIM_CACHE") or Path.home() / ".cache" / "repsim"
    return Path(cache_dir).expanduser()


def cache_key(**parts: object) -> str:
    """A short stable hash of JSON-serialisable ``parts``."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def save_npz_atomic(path: Path, **arrays: np.ndarray) -> None:
    """Write a compressed npz atomically (:func:`repsim._io.atomic_path`)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:   # a file object: no ".npz" appended
        np.savez_compressed(f, **arrays)


def load_npz(path: Path) -> dict[str, np.ndarray] | None:
    """The arrays of a cached npz, or ``None`` if it is missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        logger.warning("ignoring unreadable cache file %s (%s)", path, err)
        return None


def try_save_npz(path: Path, **arrays: np.ndarray) -> None:
    """:func:`save_npz_atomic`, logging (not raising) when the cache is not writable."""
    try:
        save_npz_atomic(path, **arrays)
    except OSError as err:
        logger.warning("could not write cache file %s (%s); continuing without it", path, err)
