"""pytorch-cka (PyPI, import name ``cka``) runner: ``cka_from_features`` and ``hsic``.

Full data: ``cka_from_features`` (unbiased HSIC, i.e. debiased CKA, clamped to [0, 1]); it has
no biased form. Minibatch: what ``CKA._accumulate_hsic`` does per batch (stacked grams,
``cka.hsic.hsic``, summed), since ``CKA`` itself needs models + dataloader.
"""
from __future__ import annotations

from _runner import main

__all__: list[str] = []


def _forms():
    import torch
    from cka import cka_from_features
    from cka.hsic import hsic

    def debiased(x, y, bs, nb, dtype):
        return (lambda: cka_from_features(x, y)[0, 0]), "cka.cka_from_features (unbiased HSIC on n x n grams)"

    def minibatch(x, y, bs, nb, dtype):
        def run():
            sxy = sxx = syy = 0.0
            for b in range(nb):
                xb, yb = x[b * bs : (b + 1) * bs], y[b * bs : (b + 1) * bs]
                gx = torch.mm(xb, xb.T).unsqueeze(0)
                gy = torch.mm(yb, yb.T).unsqueeze(0)
                hxy, hxx, hyy = hsic(gx, gy)
                sxy, sxx, syy = sxy + hxy, sxx + hxx, syy + hyy
            return (sxy / torch.sqrt(sxx.unsqueeze(1) * syy.unsqueeze(0)))[0, 0]

        return run, "cka.hsic.hsic per batch, as CKA._accumulate_hsic (CKA class needs models + dataloader)"

    return {"debiased": debiased, "minibatch": minibatch}


if __name__ == "__main__":
    main(_forms)
