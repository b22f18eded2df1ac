"""Independent float64 numpy references shared by the tests (explicit n x n matrices)."""
from __future__ import annotations

import numpy as np

__all__ = ["np_hsic_song"]


def np_hsic_song(k: np.ndarray, l: np.ndarray) -> float:
    """Song et al. (2012), eq. (5), transcribed with explicit matrices."""
    n = k.shape[0]
    kt, lt = k.copy(), l.copy()
    np.fill_diagonal(kt, 0.0)
    np.fill_diagonal(lt, 0.0)
    one = np.ones(n)
    value = (np.trace(kt @ lt) + (one @ kt @ one) * (one @ lt @ one) / ((n - 1) * (n - 2))
             - 2.0 / (n - 2) * (one @ kt @ lt @ one))
    return float(value / (n * (n - 3)))
