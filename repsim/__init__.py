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

from ._cca import CCAResult, cca, mean_cca
from ._cca_weighted import pwcca, svcca
from ._cka import linear_cka, rbf_cka
from ._hooks import flatten_conv, record_activations
from ._inference import BootstrapResult, PermutationResult, bootstrap_ci, permutation_test
from ._matrix import similarity_matrix
from ._minibatch import MinibatchCKA
from ._procrustes import procrustes_distance
from ._embed import embed_distances
from ._shape import pairwise_distances, shape_distance
from ._streaming import StreamingSimilarity
from ._tokens import flatten_tokens

__all__ = [
    "CCAResult",
    "cca",
    "mean_cca",
    "svcca",
    "pwcca",
    "linear_cka",
    "rbf_cka",
    "MinibatchCKA",
    "StreamingSimilarity",
    "procrustes_distance",
    "shape_distance",
    "pairwise_distances",
    "embed_distances",
    "similarity_matrix",
    "permutation_test",
    "bootstrap_ci",
    "PermutationResult",
    "BootstrapResult",
    "flatten_conv",
    "record_activations",
    "flatten_tokens",
]
