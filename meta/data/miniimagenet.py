"""MiniImageNet (Vinyals et al. 2016; Ravi & Larochelle 2017 split) from its usual layouts.

Three on-disk layouts are recognised, tried in this order:

(c) pickles: ``root/mini-imagenet-cache-{split}.pkl``, a dict with ``image_data``
    (``(N, 84, 84, 3)`` uint8) and ``class_dict`` (``{wnid: [indices]}``);
(a) Ravi & Larochelle csv files: ``root/{split}.csv`` with columns ``filename,label`` and the
    images in ``root/images/``;
(b) class folders: ``root/{split}/<wnid>/*.jpg`` (or ``.png``/``.jpeg``).

Classes are ordered by wnid; images within a class in csv order (a), by file name (b), or in
``class_dict`` order (c). Every image is decoded to RGB and, if it is not already
``image_size`` square, resized with Pillow's Lanczos filter. Classes with more images than the
smallest one are truncated to it (with a warning), so that the dataset is one tensor.

>>> ds = MiniImageNet("/data/miniimagenet", "train")       # doctest: +SKIP
>>> ds.images.shape                                         # doctest: +SKIP
torch.Size([64, 600, 3, 84, 84])
"""
from __future__ import annotations

import csv
import logging
import os
import pickle
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from meta.data._cache import cache_key, load_npz, resolve_cache_dir, try_save_npz
from meta.data.base import FewShotDataset

__all__ = ["MiniImageNet", "SPLITS"]

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
_EXTENSIONS = (".jpg", ".jpeg", ".png")
_VERSION = 1


def _fit(im: Image.Image, image_size: int) -> np.ndarray:
    """(H, W, 3) uint8 RGB of side ``image_size``."""
    im = im.convert("RGB")
    if im.size != (image_size, image_size):
        im = im.resize((image_size, image_size), Image.Resampling.LANCZOS)
    return np.asarray(im, dtype=np.uint8)


def _read_image(path: Path, image_size: int) -> np.ndarray:
    try:
        with Image.open(path) as im:
            return _fit(im, image_size)
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as err:
        raise ValueError(f"could not read MiniImageNet image {path}: {err}") from err


def _stack_classes(per_class: dict[str, list], read: Callable, where: Path) -> tuple[np.ndarray, list[str]]:
    """``{wnid: [item]}`` -> ``(n_classes, n_per_class, H, W, 3)`` array and sorted wnids."""
    wnids = sorted(per_class)
    if not wnids or min(len(v) for v in per_class.values()) == 0:
        raise ValueError(f"MiniImageNet at {where}: expected classes with images, got none")
    n = min(len(v) for v in per_class.values())
    if any(len(v) != n for v in per_class.values()):
        logger.warning("MiniImageNet at %s: classes have %d to %d images; keeping the first %d",
                       where, n, max(len(v) for v in per_class.values()), n)
    arr = np.stack([np.stack([read(item) for item in per_class[w][:n]]) for w in wnids])
    return arr, wnids


def _from_pickle(path: Path, image_size: int) -> tuple[np.ndarray, list[str]]:
    try:
        with open(path, "rb") as f:
            data = pickle.load(f)  # noqa: S301  (the published cache format is a pickle)
        images, class_dict = np.asarray(data["image_data"]), data["class_dict"]
    except (OSError, pickle.UnpicklingError, EOFError, KeyError, TypeError) as err:
        raise ValueError(
            f"could not read MiniImageNet pickle {path}: expected a dict with 'image_data' "
            f"(N, 84, 84, 3) uint8 and 'class_dict' {{wnid: [indices]}}, got error {err!r}"
        ) from err
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"MiniImageNet pickle {path}: expected image_data (N, H, W, 3), got {images.shape}")
    read = lambda i: _fit(Image.fromarray(images[int(i)].astype(np.uint8)), image_size)  # noqa: E731
    return _stack_classes({w: list(v) for w, v in class_dict.items()}, read, path)


def _from_csv(root: Path, csv_path: Path, image_size: int) -> tuple[np.ndarray, list[str]]:
    per_class: dict[str, list[Path]] = {}
    with open(csv_path, newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or not {"filename", "label"} <= set(reader.fieldnames):
            raise ValueError(
                f"MiniImageNet csv {csv_path}: expected columns 'filename,label', got {reader.fieldnames}"
            )
        for row in reader:
            per_class.setdefault(row["label"], []).append(root / "images" / row["filename"])
    return _stack_classes(per_class, lambda p: _read_image(p, image_size), csv_path)


def _from_folders(split_dir: Path, image_size: int) -> tuple[np.ndarray, list[str]]:
    per_class = {
        d.name: sorted(p for p in d.iterdir() if p.suffix.lower() in _EXTENSIONS)
        for d in sorted(split_dir.iterdir()) if d.is_dir()
    }
    return _stack_classes(per_class, lambda p: _read_image(p, image_size), split_dir)


def _signature(paths: Sequence[Path]) -> list:
    return [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in paths]


def MiniImageNet(  # noqa: N802  (a loader named like the dataset, as torchvision does)
    root: str | os.PathLike,
    split: str = "train",
    *,
    image_size: int = 84,
    cache_dir: str | os.PathLike | None = None,
) -> FewShotDataset:
    """MiniImageNet as a :class:`FewShotDataset` of RGB uint8 images.

    Parameters
    ----------
    root : path
        Folder in one of the three layouts of the module docstring.
    split : {"train", "val", "test"}
        64 / 16 / 20 classes in the standard split.
    image_size : int
        Side of the square images (84 as in MAML).
    cache_dir : path, optional
        Where decoded csv / folder layouts are cached as ``.npz``
        (default ``$REPSIM_CACHE`` or ``~/.cache/repsim``); pickles are read directly.

    Returns
    -------
    FewShotDataset
        ``images`` of shape ``(n_classes, n_per_class, 3, image_size, image_size)``,
        ``class_names`` the wnids.
    """
    if split not in SPLITS:
        raise ValueError(f"split: expected one of {SPLITS}, got {split!r}")
    if int(image_size) < 1:
        raise ValueError(f"image_size: expected a positive integer, got {image_size}")
    image_size = int(image_size)
    root = Path(root).expanduser()
    pkl = root / f"mini-imagenet-cache-{split}.pkl"
    csv_path, images_dir, split_dir = root / f"{split}.csv", root / "images", root / split
    if pkl.is_file():
        arr, wnids = _from_pickle(pkl, image_size)
    elif csv_path.is_file() or split_dir.is_dir():
        if csv_path.is_file():
            if not images_dir.is_dir():
                raise ValueError(f"MiniImageNet: found {csv_path} but not the image folder {images_dir}")
            sig = _signature([csv_path, images_dir])
            build = lambda: _from_csv(root, csv_path, image_size)  # noqa: E731
        else:
            sig = _signature(sorted(p for p in split_dir.rglob("*") if p.suffix.lower() in _EXTENSIONS))
            build = lambda: _from_folders(split_dir, image_size)  # noqa: E731
        key = cache_key(sig=sig, size=image_size, version=_VERSION)
        path = resolve_cache_dir(cache_dir) / f"miniimagenet-{split}-{key}.npz"
        cached = load_npz(path)
        if cached is not None:
            arr, wnids = cached["images"], [str(w) for w in cached["wnids"]]
        else:
            arr, wnids = build()
            try_save_npz(path, images=arr, wnids=np.array(wnids))
    else:
        raise ValueError(
            f"MiniImageNet {split!r} split not found under {root}: expected one of {pkl}, "
            f"{csv_path} with {images_dir}/, or {split_dir}/<wnid>/*.jpg"
        )
    images = torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 1, 4, 2, 3).contiguous()
    return FewShotDataset(images, name="miniimagenet", split=split, class_names=wnids)
