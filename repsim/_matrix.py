"""Layer-by-layer similarity matrices.

>>> import torch
>>> from repsim._matrix import similarity_matrix
>>> g = torch.Generator().manual_seed(0)
>>> x = torch.randn(300, 16, generator=g, dtype=torch.float64)
>>> acts = {"conv1": x, "conv2": x.relu(), "head": x[:, :4]}
>>> similarity_matrix(acts, acts).shape
torch.Size([3, 3])

For the CKA measures every layer's statistics are computed once (its centred features or Gram,
its self-HSIC) and all cross terms come from batched products; the CCA family and Procrustes
are evaluated pair by pair.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from . import _blas, _hsic, _hsic_terms
from ._validate import as_matrix, check_min_samples
from ._cca import mean_cca
from ._cca_weighted import pwcca, svcca
from ._cka import _check_spread, rbf_gram
from ._procrustes import procrustes_distance

__all__ = ["similarity_matrix", "MEASURES"]

MEASURES = ("linear_cka", "debiased_cka", "rbf_cka", "cca", "svcca", "pwcca", "procrustes")

# Options each vectorised CKA measure accepts.
_CKA_OPTIONS = {
    "linear_cka": {"debiased", "dtype"},
    "debiased_cka": {"debiased", "dtype"},
    "rbf_cka": {"threshold", "debiased", "dtype"},
}


def similarity_matrix(
    acts_a: Mapping[str, Any],
    acts_b: Mapping[str, Any],
    *,
    measure: str = "linear_cka",
    **kw: Any,
) -> torch.Tensor:
    """Similarity of every layer of ``acts_a`` with every layer of ``acts_b``.

    Parameters
    ----------
    acts_a : dict ``{name: (n_samples, d) tensor or array}``
    acts_b : dict ``{name: (n_samples, d) tensor or array}``
        All layers must have the same ``n_samples`` (the same inputs).
    measure : str
        One of ``"linear_cka"``, ``"debiased_cka"`` (or ``"linear_cka"`` with
        ``debiased=True``), ``"rbf_cka"``, ``"cca"`` (mean CCA), ``"svcca"``, ``"pwcca"``,
        ``"procrustes"`` (a distance, not a similarity).
    **kw
        Options of the measure: ``debiased``, ``threshold``, ``dtype`` for the CKA measures;
        ``epsilon``, ``keep`` for the CCA family (passed through).

    Returns
    -------
    (len(acts_a), len(acts_b)) float64 tensor on the device of the first layer; entry
    ``[i, j]`` compares the i-th layer of ``acts_a`` with the j-th of ``acts_b``.

    Raises
    ------
    ValueError
        Unknown measure or option, empty dicts, invalid activations, or layers with different
        numbers of samples (the offending layers are named).
    """
    if measure not in MEASURES:
        raise ValueError(f"measure: expected one of {list(MEASURES)}, got {measure!r}")
    dtype = kw.get("dtype", torch.float64)
    xs = _layers(acts_a, "acts_a", dtype)
    ys = xs if acts_b is acts_a else _layers(acts_b, "acts_b", dtype)  # self-similarity: once
    _check_common(xs, ys)
    if measure in _CKA_OPTIONS:
        unknown = sorted(set(kw) - _CKA_OPTIONS[measure])
        if unknown:
            raise ValueError(
                f"measure {measure!r}: expected options among {sorted(_CKA_OPTIONS[measure])}, "
                f"got {unknown}"
            )
        debiased = bool(kw.get("debiased", False)) or measure == "debiased_cka"
        if measure == "debiased_cka" and kw.get("debiased", True) is False:
            raise ValueError(
                "measure 'debiased_cka': expected debiased=True or no debiased option, got False"
            )
        if measure == "rbf_cka":
            out = _rbf_cka_matrix(xs, ys, threshold=kw.get("threshold", 1.0), debiased=debiased)
        else:
            out = _linear_cka_matrix(xs, ys, debiased=debiased)
    else:
        fn = _pairwise_function(measure)
        out = torch.stack([
            torch.stack([torch.as_tensor(fn(x, y, **kw)).reshape(()) for y in ys.values()])
            for x in xs.values()
        ])
    return out.to(device=next(iter(xs.values())).device, dtype=torch.float64)


def _linear_cka_matrix(
    xs: dict[str, torch.Tensor], ys: dict[str, torch.Tensor], *, debiased: bool
) -> torch.Tensor:
    n = next(iter(xs.values())).shape[0]
    check_min_samples(n, 4 if debiased else 2, "debiased CKA" if debiased else "linear CKA")
    _check_spreads(xs, ys)
    xc = list(xs.values())
    yc = xc if ys is xs else list(ys.values())
    form = _hsic_terms.choose_form(n, [t.shape[1] for t in xc], [t.shape[1] for t in yc],
                             full=_blas.uses_syrk(xc[0]))
    if debiased:  # unbiased HSIC of every pair (A, B) and every layer (A,), (B,)
        cross, self_a, self_b = _hsic_terms.unbiased_terms(xc, yc, form=form)
    else:  # tr(K_a L_b) of the centred kernels: (A, B), (A,), (B,)
        cross, self_a, self_b, _, _ = _hsic_terms.linear_terms(xc, yc, form=form, stats=False)
    return _normalise(cross, self_a, self_b, list(xs), list(ys), debiased=debiased)


def _rbf_cka_matrix(
    xs: dict[str, torch.Tensor], ys: dict[str, torch.Tensor], *, threshold: float, debiased: bool
) -> torch.Tensor:
    n = next(iter(xs.values())).shape[0]
    check_min_samples(n, 4 if debiased else 2, "debiased RBF CKA" if debiased else "RBF CKA")
    _check_spreads(xs, ys)
    # One centred Gram per layer, flattened: (A, n^2) and (B, n^2).
    def centred_grams(acts: dict[str, torch.Tensor], side: str) -> torch.Tensor:
        return torch.stack([_hsic.center_gram(rbf_gram(t, threshold=threshold, name=k))
                            for k, t in _labelled(acts, side)])

    ka = centred_grams(xs, "acts_a")
    kb = ka if ys is xs else centred_grams(ys, "acts_b")
    cross = ka.reshape(len(ka), -1) @ kb.reshape(len(kb), -1).T  # <HKH, HLH> for every pair
    self_a, self_b = ka.square().sum((1, 2)), kb.square().sum((1, 2))
    if debiased:
        (da, k1a), (db, k1b) = _hsic.kernel_stats_gram(ka), _hsic.kernel_stats_gram(kb)
        cross, self_a, self_b = _unbiased(cross, self_a, self_b, da, db, k1a, k1b)
    return _normalise(cross, self_a, self_b, list(xs), list(ys), debiased=debiased)


def _unbiased(
    cross: torch.Tensor,
    self_a: torch.Tensor,
    self_b: torch.Tensor,
    da: torch.Tensor,
    db: torch.Tensor,
    ka: torch.Tensor,
    kb: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Traces ``tr(KL)`` and kernel statistics (``diag``, ``K~1``; (A, n), (B, n)) to HSIC_1."""
    hxy = _hsic.hsic_unbiased_pairs(cross, da, db, ka, kb)
    hxx = _hsic.hsic_unbiased_from_stats(self_a, da, da, ka, ka)
    hyy = _hsic.hsic_unbiased_from_stats(self_b, db, db, kb, kb)
    return hxy, hxx, hyy


def _normalise(
    cross: torch.Tensor,
    self_a: torch.Tensor,
    self_b: torch.Tensor,
    names_a: list[str],
    names_b: list[str],
    *,
    debiased: bool,
) -> torch.Tensor:
    for sums, names in ((self_a, names_a), (self_b, names_b)):
        bad = [names[i] for i in (sums <= 0).nonzero().flatten().tolist()]
        if bad:
            what = "unbiased HSIC" if debiased else "HSIC"
            raise ValueError(
                f"CKA is undefined: expected a positive {what} of each layer with itself, "
                f"got <= 0 for {bad}"
                + (" (too few samples; use more or debiased=False)" if debiased else "")
            )
    # |CKA| <= 1 (Cauchy-Schwarz); the clamp only removes rounding beyond it, as in repsim._cka.
    return (cross / torch.outer(self_a.sqrt(), self_b.sqrt())).clamp(-1.0, 1.0)


def _check_spreads(xs: dict[str, torch.Tensor], ys: dict[str, torch.Tensor]) -> None:
    for name, t in _labelled(xs, "acts_a") + ([] if ys is xs else _labelled(ys, "acts_b")):
        _check_spread(t, name)


def _labelled(acts: dict[str, torch.Tensor], side: str) -> list[tuple[str, torch.Tensor]]:
    return [(f"{side}[{k!r}]", t) for k, t in acts.items()]


def _layers(acts: Any, side: str, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    if not isinstance(acts, Mapping):
        raise ValueError(
            f"{side}: expected a {{name: (n_samples, d) activations}} dict, "
            f"got {type(acts).__name__}"
        )
    if len(acts) == 0:
        raise ValueError(f"{side}: expected at least one layer, got an empty dict")
    return {str(k): as_matrix(v, name=f"{side}[{k!r}]", dtype=dtype) for k, v in acts.items()}


def _check_common(xs: dict[str, torch.Tensor], ys: dict[str, torch.Tensor]) -> None:
    rows = {f"acts_a[{k!r}]": t.shape[0] for k, t in xs.items()}
    rows.update({f"acts_b[{k!r}]": t.shape[0] for k, t in ys.items()})
    if len(set(rows.values())) > 1:
        shown = ", ".join(f"{k}: {v}" for k, v in rows.items())
        raise ValueError(f"expected the same number of samples in every layer, got {shown}")
    devices = {str(t.device) for t in (*xs.values(), *ys.values())}
    if len(devices) > 1:
        raise ValueError(f"expected every layer on one device, got {sorted(devices)}")


def _pairwise_function(measure: str) -> Callable[..., Any]:
    """The measures that are computed pair by pair (the CCA family and Procrustes)."""
    return {
        "cca": mean_cca,
        "svcca": svcca,
        "pwcca": pwcca,
        "procrustes": procrustes_distance,
    }[measure]
