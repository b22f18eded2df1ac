"""Input checking shared by every measure.

Every public measure calls :func:`as_pair` (or :func:`as_matrix`) first, so that all of them
accept the same inputs and fail with the same, explicit messages.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["as_matrix", "as_pair", "check_min_samples", "check_variance"]


def _to_tensor(a: Any, name: str) -> torch.Tensor:
    if isinstance(a, torch.Tensor):
        return a.detach()
    if isinstance(a, np.ndarray):
        if a.dtype == object or not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_):
            raise ValueError(f"{name}: expected a numeric array, got dtype {a.dtype}")
        return torch.from_numpy(np.ascontiguousarray(a))
    raise ValueError(
        f"{name}: expected a torch.Tensor or numpy.ndarray of shape (n_samples, n_features), "
        f"got {type(a).__name__}"
    )


def as_matrix(
    a: Any, *, name: str = "x", dtype: torch.dtype | None = torch.float64
) -> torch.Tensor:
    """Return ``a`` as a finite 2-D floating tensor on its own device.

    Parameters
    ----------
    a : (n_samples, n_features) tensor or array
    name : str
        Used in error messages.
    dtype : torch.dtype or None
        Cast to this dtype (default float64). ``None`` keeps a floating dtype and promotes
        integers to float64.

    Raises
    ------
    ValueError
        If ``a`` is not 2-D, is empty, or holds NaN/Inf.
    """
    t = _to_tensor(a, name)
    if t.ndim != 2:
        hint = " (use repsim.flatten_conv for (N, C, H, W) activations)" if t.ndim == 4 else ""
        raise ValueError(
            f"{name}: expected a 2-D (n_samples, n_features) input, got shape {tuple(t.shape)}{hint}"
        )
    if t.shape[0] == 0 or t.shape[1] == 0:
        raise ValueError(f"{name}: expected a non-empty input, got shape {tuple(t.shape)}")
    if dtype is None:
        dtype = t.dtype if t.is_floating_point() else torch.float64
    if not dtype.is_floating_point:
        raise ValueError(f"dtype: expected a floating dtype, got {dtype}")
    t = t.to(dtype)
    # A finite sum implies every entry is finite (NaN and Inf propagate); the sum is one cheap
    # pass, and the element-wise count runs only when the sum is not finite (a NaN/Inf
    # somewhere, or an overflow of huge but finite values).
    if not bool(torch.isfinite(t.sum())) and not bool(torch.isfinite(t).all()):
        bad = int((~torch.isfinite(t)).sum())
        raise ValueError(f"{name}: expected finite values, got {bad} NaN/Inf entries")
    return t


def as_pair(
    x: Any, y: Any, *, dtype: torch.dtype | None = torch.float64
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate two activation matrices for comparison.

    Parameters
    ----------
    x : (n_samples, n_features_x) tensor or array
    y : (n_samples, n_features_y) tensor or array
    dtype : torch.dtype or None
        Computation dtype (default float64).

    Returns
    -------
    x, y : tensors of the same dtype, on the device of ``x``.

    Raises
    ------
    ValueError
        If either input is invalid, the numbers of samples differ, or the devices differ.
    """
    xt = as_matrix(x, name="x", dtype=dtype)
    yt = as_matrix(y, name="y", dtype=dtype)
    if xt.shape[0] != yt.shape[0]:
        raise ValueError(
            "x and y must have the same number of samples (rows): "
            f"got x {tuple(xt.shape)} and y {tuple(yt.shape)}"
        )
    if xt.device != yt.device:
        raise ValueError(f"x and y must be on the same device: got {xt.device} and {yt.device}")
    if xt.dtype != yt.dtype:
        common = torch.promote_types(xt.dtype, yt.dtype)
        xt, yt = xt.to(common), yt.to(common)
    return xt, yt


def check_min_samples(n: int, minimum: int, what: str) -> None:
    """Raise ``ValueError`` if ``n < minimum`` samples are given to estimator ``what``."""
    if n < minimum:
        raise ValueError(f"{what} needs at least {minimum} samples, got n = {n}")


def check_variance(centred: torch.Tensor, name: str) -> None:
    """Raise ``ValueError`` if a centred matrix is identically zero (no variance)."""
    if not bool(centred.abs().amax() > 0):
        raise ValueError(f"{name}: has zero variance (every sample is identical)")
