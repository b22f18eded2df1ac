"""The in-memory few-shot dataset every loader returns.

>>> ds = FewShotDataset(torch.zeros(5, 20, 1, 28, 28, dtype=torch.uint8), name="toy", split="x")
>>> len(ds), ds.n_per_class, ds.image_shape
(5, 20, (1, 28, 28))
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["FewShotDataset"]


class FewShotDataset:
    """A labelled image set stored class-major as one uint8 tensor.

    Parameters
    ----------
    images : (n_classes, n_per_class, C, H, W) uint8 tensor
        ``images[c, i]`` is example ``i`` of class ``c``. Character sets are ink high
        (255 = stroke, 0 = paper); natural images are RGB.
    name : str
        Dataset name, e.g. ``"glyphs"``, ``"omniglot"``.
    split : str
        Split name, e.g. ``"background"``.
    class_names : list of str, optional
        One name per class; defaults to ``"0", "1", ...``.
    """

    def __init__(
        self,
        images: torch.Tensor,
        *,
        name: str,
        split: str,
        class_names: Sequence[str] | None = None,
    ) -> None:
        if not isinstance(images, torch.Tensor):
            raise ValueError(f"images: expected a torch.Tensor, got {type(images).__name__}")
        if images.dtype != torch.uint8 or images.dim() != 5:
            raise ValueError(
                "images: expected a uint8 tensor of shape (n_classes, n_per_class, C, H, W), "
                f"got dtype {images.dtype} and shape {tuple(images.shape)}"
            )
        if images.shape[0] < 1 or images.shape[1] < 1:
            raise ValueError(
                f"images: expected at least one class and one example, got shape {tuple(images.shape)}"
            )
        if class_names is None:
            class_names = [str(i) for i in range(images.shape[0])]
        class_names = [str(c) for c in class_names]
        if len(class_names) != images.shape[0]:
            raise ValueError(
                f"class_names: expected {images.shape[0]} names (one per class), got {len(class_names)}"
            )
        self.images = images.contiguous()
        self.name = name
        self.split = split
        self.class_names = class_names

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def n_per_class(self) -> int:
        """Number of examples of every class."""
        return self.images.shape[1]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one example."""
        return tuple(self.images.shape[2:])

    def __repr__(self) -> str:
        return (
            f"FewShotDataset(name={self.name!r}, split={self.split!r}, n_classes={len(self)}, "
            f"n_per_class={self.n_per_class}, image_shape={self.image_shape})"
        )

    def subset(self, classes: Sequence[int] | torch.Tensor) -> FewShotDataset:
        """A new dataset holding only ``classes`` (indices, in the order given).

        Parameters
        ----------
        classes : (k,) sequence of int or int tensor
        """
        idx = torch.as_tensor(classes, dtype=torch.long).reshape(-1)
        if idx.numel() == 0:
            raise ValueError("classes: expected at least one class index, got none")
        if int(idx.min()) < 0 or int(idx.max()) >= len(self):
            raise ValueError(
                f"classes: expected indices in [0, {len(self) - 1}], "
                f"got min {int(idx.min())} and max {int(idx.max())}"
            )
        names = [self.class_names[i] for i in idx.tolist()]
        return FewShotDataset(self.images[idx], name=self.name, split=self.split, class_names=names)

    def with_rotations(self, angles: Sequence[int] = (0, 90, 180, 270)) -> FewShotDataset:
        """Omniglot's augmentation: every rotation of every class becomes a new class.

        Parameters
        ----------
        angles : sequence of int
            Multiples of 90 (degrees, counter-clockwise as :func:`torch.rot90`).

        Returns
        -------
        FewShotDataset
            ``len(angles) * len(self)`` classes, angle-major: class ``a * len(self) + c`` is
            class ``c`` rotated by ``angles[a]``; its pixels are exactly ``rot90`` of the original.
        """
        angles = list(angles)
        if not angles or any(int(a) % 90 != 0 for a in angles):
            raise ValueError(f"angles: expected a non-empty list of multiples of 90, got {angles}")
        if len(set(int(a) % 360 for a in angles)) != len(angles):
            raise ValueError(f"angles: expected distinct rotations, got {angles}")
        parts = [torch.rot90(self.images, k=(int(a) // 90) % 4, dims=(-2, -1)) for a in angles]
        names = [f"{n}@rot{int(a) % 360}" for a in angles for n in self.class_names]
        return FewShotDataset(
            torch.cat(parts, dim=0), name=self.name, split=self.split, class_names=names
        )
