"""ckatorch (PyPI) runner: ``cka_base`` (linear, biased / unbiased) and ``cka_batch``.

Its public ``CKA`` class needs two models and a dataloader; we call the tensor-level
functions it uses. ``cka_base`` casts to float64 internally whatever the input dtype.
"""
from __future__ import annotations

from _runner import main

__all__: list[str] = []


def _forms():
    from ckatorch.core import cka_base, cka_batch

    def linear(x, y, bs, nb, dtype):
        return (lambda: cka_base(x, y, kernel="linear", unbiased=False)), "ckatorch.core.cka_base (gram n x n, float64 inside)"

    def debiased(x, y, bs, nb, dtype):
        return (lambda: cka_base(x, y, kernel="linear", unbiased=True)), "ckatorch.core.cka_base(unbiased=True)"

    def minibatch(x, y, bs, nb, dtype):
        def run():
            xb = x[: bs * nb].reshape(nb, bs, -1)  # (batches, batch, d)
            yb = y[: bs * nb].reshape(nb, bs, -1)
            return cka_batch(xb, yb)

        return run, f"ckatorch.core.cka_batch on ({nb}, {bs}, d) stacked batches (its CKA class needs models + dataloader)"

    return {"linear": linear, "debiased": debiased, "minibatch": minibatch}


if __name__ == "__main__":
    main(_forms)
