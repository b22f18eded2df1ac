"""Coordinates for a matrix of distances between networks (metric MDS), for plotting.

>>> d = pairwise_distances(nets)                       # doctest: +SKIP
>>> embed_distances(d).shape                           # doctest: +SKIP
(K, 2)

scikit-learn is imported when :func:`embed_distances` is called, never when :mod:`repsim`
is imported.
"""
from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import torch

from ._validate import as_matrix

__all__ = ["embed_distances"]


def embed_distances(d: Any, *, n_components: int = 2, seed: int = 0) -> np.ndarray:
    """Coordinates whose Euclidean distances approximate a distance matrix (metric MDS).

    Parameters
    ----------
    d : (K, K) tensor or array
        Symmetric, non-negative, zero diagonal (e.g. from :func:`pairwise_distances`).
    n_components : int
        Dimension of the embedding (default 2).
    seed : int
        Random state of scikit-learn's SMACOF.

    Returns
    -------
    (K, n_components) float64 numpy array.

    Notes
    -----
    scikit-learn's ``MDS`` with precomputed dissimilarities; scikit-learn is imported here,
    when the function is called, never when :mod:`repsim` is imported.
    """
    m = as_matrix(d, name="d", dtype=torch.float64).cpu().numpy()
    k = m.shape[0]
    if m.shape != (k, k) or k < 2:
        raise ValueError(f"d: expected a square (K, K) distance matrix with K >= 2, got {m.shape}")
    if not np.allclose(m, m.T, rtol=1e-10, atol=1e-12 * max(1.0, float(np.abs(m).max()))):
        raise ValueError("d: expected a symmetric matrix, got d != d.T")
    if (m < 0).any() or (np.diag(m) != 0).any():
        raise ValueError("d: expected non-negative entries and a zero diagonal")
    if isinstance(n_components, bool) or not isinstance(n_components, int) or n_components < 1:
        raise ValueError(f"n_components: expected an int >= 1, got {n_components!r}")
    from sklearn.manifold import MDS  # lazy: repsim imports torch and numpy only

    params = inspect.signature(MDS).parameters
    opts: dict[str, Any] = {"n_components": n_components, "random_state": seed}
    if "metric_mds" in params:  # scikit-learn >= 1.8
        opts.update(metric="precomputed", metric_mds=True, init="classical_mds")
    else:
        opts.update(dissimilarity="precomputed", n_init=4)
    if "normalized_stress" in params:
        opts["normalized_stress"] = "auto"
    return np.asarray(MDS(**opts).fit_transform((m + m.T) / 2), dtype=np.float64)
