"""Glyphs: an Omniglot-like character set rendered from the fonts matplotlib ships.

Every character that ``DejaVuSans.ttf`` (bundled with matplotlib, so every machine renders
the same set) really has -- read from its cmap -- in a fixed list of Unicode scripts becomes a
class. Left out: precomposed letters (anything with a Unicode decomposition: accented letters,
compatibility forms), combining marks, whitespace, punctuation and modifier symbols; glyphs too
small, too thin (dashes) or too solid (filled shapes) to look drawn, dot patterns; and near
duplicates (cosine similarity above ``_DUP_COSINE`` between plain 28x28 renderings: Latin ``A``,
Greek ``Α`` and Cyrillic ``А`` keep only the first script's copy).

Each class gets ``n_per_class=20`` examples, as Omniglot. The clean glyph (scaled to fit an
80/112 box) is turned into a distance field to its stroke ridge, so it can be redrawn with a
pen of any width; per example, with a seeded ``torch.Generator``: a pen half-width, an affine
map (rotation, shear, anisotropic scale, translation) and a smooth elastic warp, applied in one
batched :func:`torch.nn.functional.grid_sample` at 56x56, then 2x2 box-averaged to 28x28. The
augmentation strengths were tuned so that pixel-space 1-NN accuracy matches real Omniglot
(``benchmarks/bench_data.py``). Pixels are uint8, ink high.

Split by script, like Omniglot by alphabet (fixed; see ``SCRIPTS``), about 62/38 of the classes:

* background: Latin (incl. IPA, Latin Extended-B/C/D, phonetic extensions; digits), Greek and
  Coptic, Cyrillic, Armenian, Unified Canadian Aboriginal Syllabics, arrows.
* evaluation: Georgian, Hebrew, Arabic, N'Ko, Lao, Tifinagh, Lisu, Ogham, Old Italic,
  mathematical operators, box drawing.

MAML-style splits over all classes, as for Omniglot (:mod:`meta.data.splits`): ``"train"``,
``"val"``, ``"test"`` after a seeded character-level shuffle (the reference code's protocol:
test characters from scripts also seen in training), and ``"train-ordered"``, ``"val-ordered"``,
``"test-ordered"``, the same sizes in class order (whole scripts held out for test).

The first call renders both splits (about 7 s of CPU on one core) and caches them in one
compressed ``.npz`` under ``cache_dir`` / ``$REPSIM_CACHE`` / ``~/.cache/repsim``; the file
name hashes the font bytes, the renderer version, the seed, the sizes and Pillow's FreeType
version.

>>> bg = Glyphs("background")               # doctest: +SKIP
>>> bg.images.shape                         # doctest: +SKIP
torch.Size([1151, 20, 1, 28, 28])
"""
from __future__ import annotations

import hashlib
import logging
import math
import os
import unicodedata
from functools import lru_cache
from pathlib import Path

import matplotlib
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.ft2font import FT2Font
from PIL import Image, ImageDraw, ImageFont, features
from scipy import ndimage

from meta.data._cache import cache_key, load_npz, resolve_cache_dir, try_save_npz
from meta.data.base import FewShotDataset
from meta.data.splits import ORDERED_SPLITS, SHUFFLED_SPLITS, ordered_split, shuffled_split

__all__ = ["Glyphs", "SCRIPTS", "RENDERER_VERSION", "glyph_classes", "render_glyph_set"]

logger = logging.getLogger(__name__)

#: Bumped whenever rendering or augmentation changes, so stale caches are not reused.
RENDERER_VERSION = 2

FONT_FILE = "DejaVuSans.ttf"

#: ``(script, split, codepoint ranges (inclusive))``; earlier scripts win duplicate glyphs.
SCRIPTS: tuple[tuple[str, str, tuple[tuple[int, int], ...]], ...] = (
    ("latin", "background", ((0x0030, 0x0039), (0x0041, 0x024F), (0x0250, 0x02AF),
                             (0x1D00, 0x1DBF), (0x2C60, 0x2C7F), (0xA720, 0xA7FF))),
    ("greek", "background", ((0x0370, 0x03FF), (0x1F00, 0x1FFF))),
    ("cyrillic", "background", ((0x0400, 0x052F), (0x2DE0, 0x2DFF), (0xA640, 0xA69F))),
    ("armenian", "background", ((0x0530, 0x058F),)),
    ("canadian_syllabics", "background", ((0x1400, 0x167F),)),
    ("arrows", "background", ((0x2190, 0x21FF), (0x27F0, 0x27FF), (0x2900, 0x297F))),
    ("georgian", "evaluation", ((0x10A0, 0x10FF), (0x2D00, 0x2D2F))),
    ("hebrew", "evaluation", ((0x0590, 0x05FF),)),
    ("arabic", "evaluation", ((0x0600, 0x06FF), (0x0750, 0x077F))),
    ("nko", "evaluation", ((0x07C0, 0x07FF),)),
    ("lao", "evaluation", ((0x0E80, 0x0EFF),)),
    ("tifinagh", "evaluation", ((0x2D30, 0x2D7F),)),
    ("lisu", "evaluation", ((0xA4D0, 0xA4FF),)),
    ("ogham", "evaluation", ((0x1680, 0x169F),)),
    ("old_italic", "evaluation", ((0x10300, 0x1032F),)),
    ("math_operators", "evaluation", ((0x2200, 0x22FF), (0x2A00, 0x2AFF))),
    ("box_drawing", "evaluation", ((0x2500, 0x257F),)),
)

_SPLITS = ("background", "evaluation")
_ALIASES = SHUFFLED_SPLITS + ORDERED_SPLITS
_RENDER_PX = 96          # font size of the clean rendering
_FINE = 112              # resolution of the clean glyph and of its distance field
_BOX = 80                # the clean glyph's longer side, in fine pixels
_MIN_EXTENT = 0.25       # drop glyphs whose ink box is under this fraction of the font size
_MAX_FILL = 0.55         # drop glyphs whose ink covers more than this of their ink box
_MIN_ASPECT = 0.1        # drop glyphs thinner than this (dashes, bars)
_MIN_LENGTH = 0.6        # drop glyphs whose strokes total under this many box sides (dots)
_MIN_THIN_EXTENT = 0.7   # ... or whose thin-pen redrawing spans under this of the box
_MIN_STROKE_EXTENT = 0.5  # ... or whose longest connected stroke spans under this (dots)
_DUP_COSINE = 0.95       # near-duplicate threshold between clean 28x28 renderings

# Augmentation strengths (per example, uniform in [-x, x] unless stated).
_ROTATE_DEG = 15.0
_SHEAR = 0.20
_LOG_SCALE = 0.12        # per axis, scale = exp(U(-x, x)) times a shared exp(U(-x, x))
_SHIFT = 0.12            # of the half-width of the image
_ELASTIC = 0.05          # std of the coarse displacement field (normalised coordinates)
_ELASTIC_GRID = 5        # the coarse displacement field is 5x5, bilinearly upsampled
_HALF_WIDTH = (2.0, 4.0)  # pen half-width, in fine pixels (4 fine px = 1 output px at 28)


def _font_path() -> Path:
    return Path(matplotlib.get_data_path()) / "fonts" / "ttf" / FONT_FILE


def _allowed(ch: str) -> bool:
    cat = unicodedata.category(ch)
    if cat[0] not in "LNS" or cat == "Sk":
        return False
    return not unicodedata.decomposition(ch)


def _candidates(font_path: Path) -> list[tuple[str, str, int]]:
    """``(script, split, codepoint)`` for every allowed character the font maps."""
    cmap = FT2Font(str(font_path)).get_charmap()
    seen: set[int] = set()
    out = []
    for script, split, ranges in SCRIPTS:
        for lo, hi in ranges:
            for cp in range(lo, hi + 1):
                if cp in cmap and cp not in seen and _allowed(chr(cp)):
                    seen.add(cp)
                    out.append((script, split, cp))
    return out


def _clean_glyph(font: ImageFont.FreeTypeFont, ch: str) -> np.ndarray | None:
    """The glyph scaled into a ``_BOX`` box centred on a ``_FINE`` canvas, float32 in [0, 1]."""
    pad = _RENDER_PX
    canvas = Image.new("L", (3 * pad, 3 * pad))
    ImageDraw.Draw(canvas).text((pad, pad), ch, fill=255, font=font)
    bbox = canvas.point(lambda v: 255 if v > 127 else 0).getbbox()   # ink box
    if bbox is None:
        return None
    c0, r0, c1, r1 = bbox
    a = np.asarray(canvas, dtype=np.float32) / 255.0
    h, w = r1 - r0, c1 - c0
    if max(h, w) < _MIN_EXTENT * _RENDER_PX:
        return None
    crop = a[r0:r1, c0:c1]
    if crop.mean() > _MAX_FILL or min(h, w) < _MIN_ASPECT * max(h, w):
        return None
    s = _BOX / max(h, w)
    nh, nw = max(1, round(h * s)), max(1, round(w * s))
    small = Image.fromarray((crop * 255).astype(np.uint8)).resize((nw, nh), Image.Resampling.BILINEAR)
    out = np.zeros((_FINE, _FINE), dtype=np.float32)
    top, left = (_FINE - nh) // 2, (_FINE - nw) // 2
    out[top:top + nh, left:left + nw] = np.asarray(small, dtype=np.float32) / 255.0
    return out


def _ridge_field(clean: np.ndarray) -> np.ndarray | None:
    """Signed distance to the stroke's ridge, halved to the working resolution.

    ``clean`` : (_FINE, _FINE) glyph. Returns ``(_FINE/2, _FINE/2)`` float32 ``f = sd - w``
    in fine pixels, where ``sd`` is the signed distance to the glyph outline (positive inside)
    and ``w`` the glyph's mean stroke half-width (twice the mean inside distance), so that
    ``f + t > 0`` is the glyph redrawn with a pen of half-width ``t``.
    """
    ink = clean > 0.5
    inside = ndimage.distance_transform_edt(ink)
    outside = ndimage.distance_transform_edt(~ink)
    sd = np.where(ink, inside - 0.5, 0.5 - outside)
    w = 2.0 * inside[ink].mean()
    if ink.sum() / (2.0 * w) < _MIN_LENGTH * _BOX:       # total stroke length, fine px
        return None
    f = (sd - w).astype(np.float32).reshape(_FINE // 2, 2, _FINE // 2, 2).mean(axis=(1, 3))
    # Solid shapes (stars, bars) shrink to blobs when redrawn with a thin pen: drop them.
    # Dot patterns have no stroke spanning the glyph: drop them too.
    thin = f + np.mean(_HALF_WIDTH) > 0
    labels, n = ndimage.label(thin, structure=np.ones((3, 3)))
    if n == 0:
        return None
    rows, cols = np.flatnonzero(thin.any(1)), np.flatnonzero(thin.any(0))
    if max(np.ptp(rows), np.ptp(cols)) + 1 < _MIN_THIN_EXTENT * _BOX / 2:
        return None
    biggest = labels == 1 + np.argmax(np.bincount(labels.ravel())[1:])
    rows, cols = np.flatnonzero(biggest.any(1)), np.flatnonzero(biggest.any(0))
    if max(np.ptp(rows), np.ptp(cols)) + 1 < _MIN_STROKE_EXTENT * _BOX / 2:
        return None
    return f


@lru_cache(maxsize=2)
def _glyph_classes_cached(font_path: str) -> tuple[tuple[tuple[str, str, int], ...], np.ndarray]:
    font = ImageFont.truetype(font_path, _RENDER_PX, layout_engine=ImageFont.Layout.BASIC)
    keep, clean = [], []
    for script, split, cp in _candidates(Path(font_path)):
        g = _clean_glyph(font, chr(cp))
        if g is not None:
            keep.append((script, split, cp))
            clean.append(g)
    fine = torch.from_numpy(np.stack(clean))[:, None]              # (K, 1, 112, 112)
    lo = F.avg_pool2d(fine, 4).flatten(1).double()                 # (K, 784)
    lo = lo / lo.norm(dim=1, keepdim=True)
    sim = lo @ lo.T
    # Greedy in (script order, codepoint): drop a class that resembles an earlier kept one.
    earlier = torch.tril(sim > _DUP_COSINE, diagonal=-1)
    kept = torch.zeros(len(keep), dtype=torch.bool)
    for i in range(len(keep)):
        kept[i] = not bool((earlier[i] & kept).any())
    fields = {i: _ridge_field(clean[i]) for i in kept.nonzero().flatten().tolist()}
    idx = [i for i, f in fields.items() if f is not None]
    return tuple(keep[i] for i in idx), np.stack([fields[i] for i in idx])


def glyph_classes() -> list[tuple[str, str, int]]:
    """``(script, split, codepoint)`` of every Glyphs class, in class order (both splits)."""
    return list(_glyph_classes_cached(str(_font_path()))[0])


def _interp_matrix(n_out: int, n_in: int) -> torch.Tensor:
    """(n_out, n_in) linear interpolation weights, corners aligned."""
    pos = torch.linspace(0, n_in - 1, n_out)
    lo = pos.floor().clamp(max=n_in - 2).long()
    frac = pos - lo
    m = torch.zeros(n_out, n_in)
    m[torch.arange(n_out), lo] = 1 - frac
    m[torch.arange(n_out), lo + 1] = frac
    return m


def _draw_params(n: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """All per-example random numbers, drawn up front in a fixed order."""
    u = lambda *shape: torch.rand(*shape, generator=gen) * 2 - 1  # noqa: E731
    return {
        "theta": u(n) * math.radians(_ROTATE_DEG),
        "shear": u(n) * _SHEAR,
        "log_scale": u(n, 2) * _LOG_SCALE + u(n, 1) * _LOG_SCALE,
        "shift": u(n, 2) * _SHIFT,
        "coarse": torch.randn(n, 2, _ELASTIC_GRID, _ELASTIC_GRID, generator=gen) * _ELASTIC,
        "half_width": _HALF_WIDTH[0] + (u(n) + 1) / 2 * (_HALF_WIDTH[1] - _HALF_WIDTH[0]),
    }


def _sampling_grid(p: dict[str, torch.Tensor], size: int) -> torch.Tensor:
    """(n, size, size, 2) grid for ``grid_sample``: random affine + smooth elastic warp."""
    n = p["theta"].shape[0]
    cos, sin = torch.cos(p["theta"]), torch.sin(p["theta"])
    rot = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)
    sh = torch.eye(2).repeat(n, 1, 1)
    sh[:, 0, 1] = p["shear"]
    fwd = rot @ sh @ torch.diag_embed(torch.exp(p["log_scale"]))   # input -> output coords
    inv = torch.linalg.inv(fwd)                                     # the grid maps output -> input
    coords = (torch.arange(size, dtype=torch.float32) * 2 + 1) / size - 1   # pixel centres
    x = coords[None, None, :] - p["shift"][:, 0, None, None]       # (n, 1, size)
    y = coords[None, :, None] - p["shift"][:, 1, None, None]       # (n, size, 1)
    a = inv[:, :, :, None, None]                                    # (n, 2, 2, 1, 1)
    gx = a[:, 0, 0] * x + a[:, 0, 1] * y                            # (n, size, size)
    gy = a[:, 1, 0] * x + a[:, 1, 1] * y
    interp = _interp_matrix(size, _ELASTIC_GRID)                   # (size, g)
    warp = interp @ p["coarse"] @ interp.T                          # (n, 2, size, size)
    grid = torch.stack([gx + warp[:, 0], gy + warp[:, 1]], dim=-1)
    return grid


def render_glyph_set(
    fields: np.ndarray, *, n_per_class: int = 20, seed: int = 0, image_size: int = 28,
    batch_size: int = 2048,
) -> np.ndarray:
    """Augmented examples of each glyph.

    Parameters
    ----------
    fields : (n_classes, 56, 56) float32 array
        Ridge distance fields from :func:`_ridge_field`.
    n_per_class : int
    seed : int
        Seeds a private ``torch.Generator``; same seed, same bytes.
    image_size : int
        Output side; the warped field is drawn at ``2 * image_size`` and box-averaged by 2.

    Returns
    -------
    (n_classes, n_per_class, image_size, image_size) uint8 array, ink high.
    """
    gen = torch.Generator().manual_seed(int(seed))
    k = fields.shape[0]
    hi = 2 * image_size
    src = torch.from_numpy(np.ascontiguousarray(fields, dtype=np.float32))[:, None]
    fine_per_px = _FINE / hi                                        # fine pixels per working px
    if src.shape[-1] != hi:
        src = F.interpolate(src, size=(hi, hi), mode="bilinear", align_corners=False)
    n = k * n_per_class
    cls = torch.arange(k).repeat_interleave(n_per_class)
    params = _draw_params(n, gen)
    out = torch.empty(n, image_size, image_size, dtype=torch.uint8)
    for start in range(0, n, batch_size):
        sl = slice(start, min(start + batch_size, n))
        p = {name: v[sl] for name, v in params.items()}
        warped = F.grid_sample(src[cls[sl]], _sampling_grid(p, hi), mode="bilinear",
                               padding_mode="border", align_corners=False)    # (b, 1, hi, hi)
        t = p["half_width"][:, None, None, None]
        ink = ((warped + t) / fine_per_px + 0.5).clamp(0, 1)       # pen of half-width t
        low = F.avg_pool2d(ink, 2)[:, 0]                            # (b, size, size)
        out[sl] = (low * 255).round().to(torch.uint8)
    return out.reshape(k, n_per_class, image_size, image_size).numpy()


def _font_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _load_or_render(
    *, seed: int, n_per_class: int, image_size: int, max_classes: int | None,
    cache_dir: str | os.PathLike | None,
) -> dict[str, np.ndarray]:
    font = _font_path()
    key = cache_key(font=_font_digest(font), renderer=RENDERER_VERSION, seed=seed,
                    n_per_class=n_per_class, image_size=image_size, max_classes=max_classes,
                    freetype=features.version("freetype2"))
    path = resolve_cache_dir(cache_dir) / f"glyphs-{key}.npz"
    cached = load_npz(path)
    if cached is not None:
        return cached
    logger.info("rendering Glyphs (seed %d) into %s", seed, path)
    classes, clean = _glyph_classes_cached(str(font))  # clean: ridge fields
    split = np.array([s for _, s, _ in classes])
    if max_classes is not None:
        # A small, still split-balanced subset (for tests): the first classes of each split.
        pick = np.concatenate([np.flatnonzero(split == s)[:max_classes] for s in _SPLITS])
        classes, clean, split = [classes[i] for i in pick], clean[pick], split[pick]
    images = render_glyph_set(clean, n_per_class=n_per_class, seed=seed, image_size=image_size)
    arrays = {
        "images": images,
        "codepoints": np.array([cp for _, _, cp in classes], dtype=np.int64),
        "scripts": np.array([s for s, _, _ in classes]),
        "splits": split,
    }
    try_save_npz(path, **arrays)
    return arrays


def Glyphs(  # noqa: N802  (a loader named like the dataset, as torchvision does)
    split: str = "background",
    *,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    n_per_class: int = 20,
    image_size: int = 28,
    max_classes: int | None = None,
) -> FewShotDataset:
    """The embedded Omniglot-like dataset.

    Parameters
    ----------
    split : {"background", "evaluation", "train", "val", "test", "train-ordered", ...}
        Scripts are split as in the module docstring (about 60/40 of the classes); "train",
        "val", "test" are the reference code's character-level shuffled split of all classes,
        "*-ordered" the same sizes in class order (background scripts first).
    seed : int
        Seed of the per-example variations; the same seed gives the same bytes.
    cache_dir : path, optional
        Where the rendered ``.npz`` is kept (default ``$REPSIM_CACHE`` or ``~/.cache/repsim``).
    n_per_class : int
        Examples per character (20, as Omniglot).
    image_size : int
        Side of the square images (28, as the MAML Omniglot setup).
    max_classes : int, optional
        Keep only the first ``max_classes`` characters of each split (quick tests).

    Returns
    -------
    FewShotDataset
        ``images`` of shape ``(n_classes, n_per_class, 1, image_size, image_size)``, uint8,
        ink high; ``class_names`` like ``"greek/U+03B1"``.
    """
    if split not in _SPLITS + _ALIASES:
        raise ValueError(f"split: expected one of {_SPLITS + _ALIASES}, got {split!r}")
    for name, value in (("n_per_class", n_per_class), ("image_size", image_size)):
        if int(value) < 1:
            raise ValueError(f"{name}: expected a positive integer, got {value}")
    if max_classes is not None and int(max_classes) < 1:
        raise ValueError(f"max_classes: expected a positive integer or None, got {max_classes}")
    arrays = _load_or_render(seed=int(seed), n_per_class=int(n_per_class),
                             image_size=int(image_size),
                             max_classes=None if max_classes is None else int(max_classes),
                             cache_dir=cache_dir)
    n = len(arrays["splits"])
    if split in _SPLITS:
        mask = arrays["splits"] == split
    else:
        mask = np.zeros(n, dtype=bool)
        mask[shuffled_split(n, split) if split in SHUFFLED_SPLITS else ordered_split(n, split)] = True
    images = torch.from_numpy(np.ascontiguousarray(arrays["images"][mask]))[:, :, None]
    names = [f"{s}/U+{cp:04X}" for s, cp in zip(arrays["scripts"][mask], arrays["codepoints"][mask])]
    return FewShotDataset(images, name="glyphs", split=split, class_names=names)
