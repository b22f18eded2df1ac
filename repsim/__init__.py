"""repsim: representational similarity for PyTorch models.

CCA, SVCCA, PWCCA, linear and RBF CKA (biased and debiased), streaming minibatch CKA,
Procrustes distance, layer-by-layer similarity matrices and forward-hook recording.

>>> import torch, repsim
>>> x = torch.randn(500, 64, dtype=torch.float64)
>>> round(float(repsim.linear_cka(x, 2 * x + 1)), 12)
1.0

Activations are ``(n_samples, n_features)``; every measure accepts torch tensors or numpy
arrays on any device and returns a 0-dim float64 tensor on the input's device.
"""
from __future__ import annotations

from ._cca import CCAResult, cca, mean_cca, pwcca, svcca
from ._cka import linear_cka, rbf_cka
from ._hooks import flatten_conv, record_activations
from ._matrix import similarity_matrix
from ._minibatch import MinibatchCKA
from ._procrustes import procrustes_distance

__all__ = [
    "CCAResult",
    "cca",
    "mean_cca",
    "svcca",
    "pwcca",
    "linear_cka",
    "rbf_cka",
    "MinibatchCKA",
    "procrustes_distance",
    "similarity_matrix",
    "flatten_conv",
    "record_activations",
]
