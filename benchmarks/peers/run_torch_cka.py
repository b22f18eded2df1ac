"""torch-cka (PyPI) runner: the unbiased ``CKA._HSIC`` (float32 only: it builds float32 ones).

``CKA.compare`` needs two models and dataloaders; we run its loop body on the arrays (zero the
gram diagonals, ``_HSIC`` per batch, averaged). Full data: the same estimator on one batch of
all n samples (debiased CKA); it has no biased form.
"""
from __future__ import annotations

from _runner import main

__all__: list[str] = []


def _forms():
    from torch_cka import CKA

    peer = CKA.__new__(CKA)  # only ._HSIC and .device are used
    peer.device = "cpu"

    def _grams(xb, yb):
        k = xb @ xb.t()
        k.fill_diagonal_(0.0)
        l = yb @ yb.t()
        l.fill_diagonal_(0.0)
        return k, l

    def debiased(x, y, bs, nb, dtype):
        def run():
            k, l = _grams(x, y)
            return peer._HSIC(k, l) / (peer._HSIC(k, k) ** 0.5 * peer._HSIC(l, l) ** 0.5)

        return run, "torch_cka CKA._HSIC on full n x n grams"

    def minibatch(x, y, bs, nb, dtype):
        def run():
            xy = xx = yy = 0.0
            for b in range(nb):
                k, l = _grams(x[b * bs : (b + 1) * bs], y[b * bs : (b + 1) * bs])
                xx += peer._HSIC(k, k) / nb
                xy += peer._HSIC(k, l) / nb
                yy += peer._HSIC(l, l) / nb
            return xy / (xx**0.5 * yy**0.5)

        return run, "torch_cka CKA._HSIC per batch, loop body of CKA.compare (needs models + dataloaders)"

    return {"debiased": debiased, "minibatch": minibatch}


if __name__ == "__main__":
    main(_forms)
