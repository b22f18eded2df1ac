"""cka-pytorch (PyPI) runner: the per-batch update of ``CKACalculator`` (minibatch only).

``import cka_pytorch`` pulls lightning + torchmetrics (not installed: they drag torchvision and
a second torch); ``CKACalculator`` needs models + dataloader. We load its tensor-level modules
``hsic.py`` and ``utils.py`` by file and repeat what ``_update_hsic_matrices`` does per batch
(gram per layer, ``hsic1`` on stacked grams, sums over batches). It has no full-data form.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

from _runner import load_module_file, main

__all__: list[str] = []


def _forms():
    import torch

    root = Path(importlib.util.find_spec("cka_pytorch").submodule_search_locations[0])
    hsic1 = load_module_file("cka_pytorch_hsic", root / "hsic.py").hsic1
    gram = load_module_file("cka_pytorch_utils", root / "utils.py").gram

    def minibatch(x, y, bs, nb, dtype):
        def run():
            xy = xx = yy = 0.0
            for b in range(nb):
                gx = gram(x[b * bs : (b + 1) * bs]).unsqueeze(0)
                gy = gram(y[b * bs : (b + 1) * bs]).unsqueeze(0)
                xx = xx + hsic1(gx, gx)
                yy = yy + hsic1(gy, gy)
                xy = xy + hsic1(gx, gy)
            return (xy / torch.sqrt(xx * yy)).squeeze()

        return run, "cka_pytorch hsic.hsic1 + utils.gram per batch, loaded by file (package import needs lightning)"

    return {"minibatch": minibatch}


if __name__ == "__main__":
    main(_forms)
