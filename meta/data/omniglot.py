"""The real Omniglot (Lake et al. 2015), from its official folders or from two ``.npz`` files.

Two layouts are read, per official split (``background`` = 964 characters, ``evaluation`` =
659):

* folders: ``root/images_background/<alphabet>/<character>/*.png`` (and
  ``images_evaluation``), as the official ``images_background.zip`` extracts; characters are
  ordered by their official number (the ``0709`` of ``0709_01.png``), else by path;
* archives: ``root/images_background.npz`` (and ``images_evaluation.npz``) holding ``images``
  (bool, ``(n_chars, 20, 105, 105)``, True = white paper) and ``labels``.

Pixels are inverted to ink high and shrunk from 105x105 to ``image_size`` by area averaging
(:func:`torch.nn.functional.interpolate` with ``mode="area"``, i.e. adaptive average pooling),
rounded to uint8. The resized arrays are cached as ``.npz`` (see :mod:`meta.data._cache`).

Splits: ``"background"`` and ``"evaluation"`` (official); the MAML reference split of all 1623
characters, shuffled with a fixed seed at the character level (:mod:`meta.data.splits`):
``"train"`` 1100, ``"val"`` 100, ``"test"`` 423 characters, test characters from alphabets also
seen in training; and the same sizes in official order (background then evaluation),
``"train-ordered"`` = the first 1100, ``"val-ordered"`` the next 100, ``"test-ordered"`` the last
423 (test characters all from unseen alphabets: harder).

>>> train = Omniglot(split="train").with_rotations()   # doctest: +SKIP
>>> len(train)                                          # doctest: +SKIP
4400
"""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from meta.data._cache import cache_key, load_npz, resolve_cache_dir, try_save_npz
from meta.data.base import FewShotDataset
from meta.data.splits import ORDERED_SPLITS, SHUFFLED_SPLITS, ordered_split, shuffled_split

__all__ = ["Omniglot", "resolve_omniglot_root", "OFFICIAL_SPLITS", "MAML_SPLITS"]

logger = logging.getLogger(__name__)

OFFICIAL_SPLITS = ("background", "evaluation")
#: Character-level splits over all 1623 characters (shuffled, and in official order).
MAML_SPLITS = SHUFFLED_SPLITS + ORDERED_SPLITS
_VERSION = 1
_NUMBER = re.compile(r"^(\d+)_\d+$")


def _layouts(root: Path, split: str) -> tuple[Path, Path]:
    return root / f"images_{split}", root / f"images_{split}.npz"


def _has_split(root: Path, split: str) -> bool:
    folder, archive = _layouts(root, split)
    return folder.is_dir() or archive.is_file()


def resolve_omniglot_root(root: str | os.PathLike | None = None) -> Path:
    """Where Omniglot lives.

    ``root`` if given; else ``$REPSIM_OMNIGLOT``; else the first of ``./../shared/omniglot``
    and ``<repo root>/../shared/omniglot`` that holds the data. Raises ``ValueError`` naming
    every place looked at when none is given and none is found.
    """
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("REPSIM_OMNIGLOT")
    if env:
        return Path(env).expanduser()
    repo = Path(__file__).resolve().parents[2]
    candidates = [Path.cwd() / ".." / "shared" / "omniglot", repo / ".." / "shared" / "omniglot"]
    for c in candidates:
        if any(_has_split(c, s) for s in OFFICIAL_SPLITS):
            return c.resolve()
    raise ValueError(
        "Omniglot not found: expected root=..., $REPSIM_OMNIGLOT, or one of "
        f"{[str(c) for c in candidates]} holding images_background/ or images_background.npz"
    )


def _ink_to_uint8(ink: torch.Tensor, image_size: int, batch: int = 2048) -> torch.Tensor:
    """(n, H, W) bool ink -> (n, image_size, image_size) uint8 by area averaging."""
    out = torch.empty(ink.shape[0], image_size, image_size, dtype=torch.uint8)
    for s in range(0, ink.shape[0], batch):
        x = ink[s:s + batch, None].float()
        y = F.interpolate(x, size=(image_size, image_size), mode="area")[:, 0]
        out[s:s + batch] = (y * 255).round().to(torch.uint8)
    return out


def _character_dirs(folder: Path) -> list[Path]:
    """Character folders, ordered by official number when the file names carry one."""
    chars = [c for a in sorted(folder.iterdir()) if a.is_dir()
             for c in sorted(a.iterdir()) if c.is_dir()]

    def number(c: Path) -> int | None:
        m = next((_NUMBER.match(p.stem) for p in sorted(c.glob("*.png"))), None)
        return int(m.group(1)) if m else None

    nums = [number(c) for c in chars]
    if chars and all(n is not None for n in nums):
        chars = [c for _, c in sorted(zip(nums, chars), key=lambda t: t[0])]
    return chars


def _read_png_ink(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as im:
            a = np.asarray(im.convert("L"))
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as err:
        raise ValueError(f"could not read Omniglot image {path}: {err}") from err
    return a < 128                                                 # ink = dark pixels


def _folder_signature(folder: Path) -> tuple[list[Path], list[list[Path]], list]:
    chars = _character_dirs(folder)
    files = [sorted(c.glob("*.png")) for c in chars]
    stats = [(str(f), f.stat().st_size, f.stat().st_mtime_ns) for fs in files for f in fs]
    return chars, files, stats


def _load_folder(folder: Path, files: list[list[Path]], image_size: int) -> np.ndarray:
    counts = {len(fs) for fs in files}
    if not files or counts == {0} or len(counts) != 1:
        raise ValueError(
            f"incomplete Omniglot folder {folder}: expected <alphabet>/<character>/*.png with the "
            f"same number of drawings per character, got {len(files)} characters with "
            f"{sorted(counts)} drawings"
        )
    ink = [_read_png_ink(f) for fs in files for f in fs]
    shapes = {a.shape for a in ink}
    if len(shapes) != 1:
        raise ValueError(f"Omniglot folder {folder}: expected images of one size, got {sorted(shapes)}")
    n_per = counts.pop()
    arr = _ink_to_uint8(torch.from_numpy(np.stack(ink)), image_size)
    return arr.reshape(len(files), n_per, image_size, image_size).numpy()


def _load_archive(path: Path, image_size: int) -> np.ndarray:
    try:
        with np.load(path, allow_pickle=False) as z:
            paper = z["images"]
    except (OSError, ValueError, KeyError, EOFError) as err:
        raise ValueError(
            f"could not read Omniglot archive {path}: expected an npz with 'images' "
            f"(bool, (n_chars, n_drawings, H, W)), got error {err}"
        ) from err
    if paper.ndim != 4:
        raise ValueError(
            f"Omniglot archive {path}: expected 'images' of shape (n_chars, n_drawings, H, W), "
            f"got {paper.shape}"
        )
    ink = torch.from_numpy(~paper.astype(bool)).reshape(-1, *paper.shape[2:])
    arr = _ink_to_uint8(ink, image_size)
    return arr.reshape(paper.shape[0], paper.shape[1], image_size, image_size).numpy()


def _load_official(root: Path, split: str, image_size: int, cache_dir) -> tuple[np.ndarray, list[str]]:
    folder, archive = _layouts(root, split)
    if folder.is_dir():
        chars, files, stats = _folder_signature(folder)
        names = [f"{c.parent.name}/{c.name}" for c in chars]
        key = cache_key(kind="folder", stats=stats, size=image_size, version=_VERSION)
        build = lambda: _load_folder(folder, files, image_size)  # noqa: E731
    elif archive.is_file():
        st = archive.stat()
        key = cache_key(kind="npz", path=str(archive.resolve()), bytes=st.st_size,
                        mtime=st.st_mtime_ns, size=image_size, version=_VERSION)
        build = lambda: _load_archive(archive, image_size)  # noqa: E731
        names = None
    else:
        raise ValueError(
            f"Omniglot {split!r} split not found under {root}: expected the folder {folder} "
            f"(<alphabet>/<character>/*.png) or the archive {archive}"
        )
    path = resolve_cache_dir(cache_dir) / f"omniglot-{split}-{key}.npz"
    cached = load_npz(path)
    if cached is not None:
        images = cached["images"]
    else:
        images = build()
        try_save_npz(path, images=images)
    if names is None:
        first = 1 if split == "background" else 965
        names = [f"character{first + i:04d}" for i in range(images.shape[0])]
    return images, names


def Omniglot(  # noqa: N802  (a loader named like the dataset, as torchvision does)
    root: str | os.PathLike | None = None,
    split: str = "background",
    *,
    image_size: int = 28,
    cache_dir: str | os.PathLike | None = None,
) -> FewShotDataset:
    """The real Omniglot as a :class:`FewShotDataset`.

    Parameters
    ----------
    root : path, optional
        Folder holding ``images_background/`` and ``images_evaluation/`` or the two ``.npz``;
        see :func:`resolve_omniglot_root` for the default.
    split : {"background", "evaluation", "train", "val", "test", "train-ordered", ...}
        Official split; MAML's 1100 / 100 / 423 split of all characters after a seeded
        character-level shuffle (the reference code's protocol); or the same sizes in official
        order (``"*-ordered"``).
    image_size : int
        Side of the area-averaged images (28 as in MAML; 105 keeps the originals).
    cache_dir : path, optional
        Where resized arrays are cached (default ``$REPSIM_CACHE`` or ``~/.cache/repsim``).

    Returns
    -------
    FewShotDataset
        ``images`` of shape ``(n_chars, 20, 1, image_size, image_size)``, uint8, ink high.
    """
    if split not in OFFICIAL_SPLITS and split not in MAML_SPLITS:
        raise ValueError(
            f"split: expected one of {OFFICIAL_SPLITS + MAML_SPLITS}, got {split!r}"
        )
    if int(image_size) < 1:
        raise ValueError(f"image_size: expected a positive integer, got {image_size}")
    root = resolve_omniglot_root(root)
    if split in OFFICIAL_SPLITS:
        images, names = _load_official(root, split, int(image_size), cache_dir)
    else:
        parts = [_load_official(root, s, int(image_size), cache_dir) for s in OFFICIAL_SPLITS]
        if parts[0][0].shape[1] != parts[1][0].shape[1]:
            raise ValueError(
                f"Omniglot under {root}: expected the same drawings per character in both "
                f"splits, got {parts[0][0].shape[1]} and {parts[1][0].shape[1]}"
            )
        everything = np.concatenate([parts[0][0], parts[1][0]])
        all_names = parts[0][1] + parts[1][1]
        n = everything.shape[0]
        pick = shuffled_split(n, split) if split in SHUFFLED_SPLITS else ordered_split(n, split)
        images, names = everything[pick], [all_names[i] for i in pick]
    tensor = torch.from_numpy(np.ascontiguousarray(images))[:, :, None]
    return FewShotDataset(tensor, name="omniglot", split=split, class_names=names)
