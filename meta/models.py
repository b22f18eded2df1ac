"""The 4-block convolutional network of MAML (Finn et al. 2017) and of Raghu et al. 2020.

>>> model = Conv4.omniglot(5)
>>> model(torch.zeros(10, 1, 28, 28)).shape      # (batch, ways)
torch.Size([10, 5])
>>> model.features(torch.zeros(10, 1, 28, 28)).shape
torch.Size([10, 64])
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Conv4", "BatchNormOffset", "LAYER_NAMES", "BODY_NAMES", "is_norm_param", "build_model",
           "HEAD_INITS"]

BODY_NAMES = ("conv1", "conv2", "conv3", "conv4")
LAYER_NAMES = BODY_NAMES + ("head",)
#: Initial head weights: the MAML code's Omniglot (normal) and MiniImageNet (glorot) heads, or zero.
HEAD_INITS = ("normal", "glorot", "zero")


def is_norm_param(name: str) -> bool:
    """True for the batch-norm parameters of a block (``conv{i}.1.*``).

    >>> is_norm_param("conv2.1.bias"), is_norm_param("conv2.0.weight"), is_norm_param("head.bias")
    (True, False, False)
    """
    parts = name.split(".")
    return len(parts) == 3 and parts[0] in BODY_NAMES and parts[1] == "1"


class BatchNormOffset(nn.Module):
    """Batch norm with batch statistics and a learned per-channel offset, no scale.

    This is the normalisation of the MAML reference code: statistics of the current batch in
    the inner loop and at test time (nothing is tracked), and an offset ``bias`` (zero at
    initialisation) that the outer loop learns.

    x : (batch, C, H, W) tensor -> (batch, C, H, W)
    """

    def __init__(self, channels: int, *, eps: float = 1e-3) -> None:
        super().__init__()
        self.eps = eps
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # A constant unit scale: torch's second derivative of batch norm needs a weight tensor.
        scale = torch.ones_like(self.bias)
        return F.batch_norm(x, None, None, scale, self.bias, training=True, eps=self.eps)


def _block(in_channels: int, out_channels: int, *, pool: bool) -> nn.Sequential:
    # Omniglot: stride-2 conv, no pooling; MiniImageNet: stride-1 conv, then 2x2 max-pool.
    layers: list[nn.Module] = [
        # No conv bias: batch norm with batch statistics subtracts any per-channel constant, so
        # a bias would have an exactly-zero true gradient whose rounding noise Adam turns into
        # full-size steps (and runs that sum gradients in another order would drift apart).
        nn.Conv2d(in_channels, out_channels, 3, stride=1 if pool else 2, padding=1, bias=False),
        # Batch statistics always (inner loop and test time), offset only, as the MAML code.
        BatchNormOffset(out_channels),
        nn.ReLU(),
    ]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class Conv4(nn.Module):
    """Four [3x3 conv, batch norm, ReLU(, max-pool)] blocks and a linear head.

    Parameters
    ----------
    ways : int
        Outputs of the linear head.
    in_channels : int
        1 for the character sets, 3 for MiniImageNet.
    hidden : int
        Filters per conv layer (64 Omniglot, 32 MiniImageNet).
    image_size : int
        Height = width of the input (28 Omniglot, 84 MiniImageNet).
    pool : bool
        False: stride-2 convs and a spatial mean (Omniglot, 64 features);
        True: stride-1 convs, 2x2 max-pool and flattening (MiniImageNet, 32*5*5 = 800 features).
    head_init : None, "normal", "glorot" or "zero"
        The head's initial weights: standard normal (the MAML code's Omniglot head),
        Glorot-uniform (its MiniImageNet head) or zero (every class starts alike, so the first
        inner step makes the head a prototype classifier); None picks the reference's for
        ``pool``.
        Convolutions are always Glorot-uniform, offsets and the head bias zero.

    Attributes
    ----------
    conv1, conv2, conv3, conv4 : nn.Sequential
        ``conv{i}.0`` is the convolution (no bias: batch norm cancels it), ``conv{i}.1`` the
        batch norm (:class:`BatchNormOffset`, a learned offset ``bias`` and no scale).
    head : nn.Linear
    feature_dim : int
        Width of the penultimate representation returned by :meth:`features`.
    layer_names : tuple of str
        ``("conv1", "conv2", "conv3", "conv4", "head")``.
    """

    layer_names = LAYER_NAMES
    body_names = BODY_NAMES

    def __init__(
        self,
        ways: int,
        *,
        in_channels: int = 1,
        hidden: int = 64,
        image_size: int = 28,
        pool: bool = False,
        head_init: str | None = None,
    ) -> None:
        super().__init__()
        if head_init not in (None, *HEAD_INITS):
            raise ValueError(f"head_init: expected None or one of {list(HEAD_INITS)}, "
                             f"got {head_init!r}")
        for name, value in (("ways", ways), ("in_channels", in_channels), ("hidden", hidden),
                            ("image_size", image_size)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected a positive int, got {value!r}")
        self.pool = bool(pool)
        self.conv1 = _block(in_channels, hidden, pool=pool)
        self.conv2 = _block(hidden, hidden, pool=pool)
        self.conv3 = _block(hidden, hidden, pool=pool)
        self.conv4 = _block(hidden, hidden, pool=pool)
        size = image_size
        for _ in range(4):
            size = size // 2 if pool else (size - 1) // 2 + 1   # 84->42->21->10->5 / 28->14->7->4->2
        if size < 1:
            raise ValueError(f"image_size: expected at least 16 pixels with pooling, got {image_size}")
        self.feature_dim = hidden * size * size if pool else hidden
        self.head = nn.Linear(self.feature_dim, ways)
        self._init_like_reference(head_init or ("glorot" if pool else "normal"))

    def _init_like_reference(self, head_init: str) -> None:
        # The MAML code's initialisation: Glorot-uniform convolutions, zero offsets and head
        # bias; the head is Glorot-uniform for MiniImageNet and standard normal for Omniglot.
        for name in self.body_names:
            nn.init.xavier_uniform_(getattr(self, name)[0].weight)
        if head_init == "glorot":
            nn.init.xavier_uniform_(self.head.weight)
        elif head_init == "zero":
            nn.init.zeros_(self.head.weight)
        else:
            nn.init.normal_(self.head.weight, mean=0.0, std=1.0)
        nn.init.zeros_(self.head.bias)

    @classmethod
    def omniglot(cls, ways: int) -> Conv4:
        """The Omniglot network: 64 filters, stride 2, 28x28 grey input, 64 features."""
        return cls(ways, in_channels=1, hidden=64, image_size=28, pool=False)

    @classmethod
    def miniimagenet(cls, ways: int) -> Conv4:
        """The MiniImageNet network: 32 filters, max-pool, 84x84 RGB input, 800 features."""
        return cls(ways, in_channels=3, hidden=32, image_size=84, pool=True)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate representation.

        x : (batch, C, H, W) tensor
        Returns (batch, feature_dim).
        """
        h = self.conv4(self.conv3(self.conv2(self.conv1(x))))   # (batch, hidden, h, w)
        if self.pool:
            return h.flatten(1)                                  # (batch, hidden*h*w)
        return h.mean(dim=(2, 3))                                # (batch, hidden)

    def forward(self, x: torch.Tensor, *, features_only: bool = False) -> torch.Tensor:
        """Logits ``(batch, ways)``, or the features when ``features_only`` (for functional_call)."""
        z = self.features(x)
        return z if features_only else self.head(z)


def build_model(cfg, image_shape: tuple[int, int, int], outputs: int) -> Conv4:
    """The Conv4 of ``cfg.resolved_network``: the pooled MiniImageNet variant or the stride-2
    Omniglot one (by default the dataset's own).

    image_shape : (C, H, W) of the dataset's images
    outputs : head width (``cfg.ways``, or the number of training classes for multiclass)
    """
    pool = cfg.resolved_network == "miniimagenet"
    hidden = cfg.hidden if cfg.hidden is not None else (32 if pool else 64)
    channels, height, _ = image_shape
    return Conv4(outputs, in_channels=channels, hidden=hidden, image_size=height, pool=pool,
                 head_init=cfg.head_init)
