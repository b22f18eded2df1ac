"""deep-reps (PyPI) runner: ``rsm_measures.HSIC`` on linear-kernel RSMs (biased CKA).

``import deep_reps`` (0.0.6) fails: its ``__init__`` imports ``open_clip`` (for a CLIP helper) and
then hits a circular import (``neighbors_measures`` does ``from deep_reps import
get_knn_indices_and_ranks`` before ``__init__`` has bound it). We register the package without
running its ``__init__`` and import ``deep_reps.rsm_measures`` directly. Its ``centered_kernel_alignment`` builds the RSM with a Python double loop
over n^2 pairs (1e8 calls at n = 10 000: hours), so we build the same RSM,
``linear_kernel(v, w) = v . w / (d - 1)`` for every pair, as one matrix product and then call
its ``HSIC`` exactly as ``centered_kernel_alignment`` does.
"""
from __future__ import annotations

from _runner import bare_package, main

__all__: list[str] = []


def _forms():
    bare_package("deep_reps")
    from deep_reps.rsm_measures import HSIC

    def linear(x, y, bs, nb, dtype):
        def run():
            s = x @ x.T / (x.shape[1] - 1)  # == compute_rsm(x, linear_kernel), vectorised
            s2 = y @ y.T / (y.shape[1] - 1)
            return HSIC(s, s2) / (HSIC(s, s) * HSIC(s2, s2)) ** 0.5

        return run, "deep_reps.rsm_measures.HSIC on RSMs built as one GEMM (its compute_rsm is a Python n^2 loop)"

    return {"linear": linear}


if __name__ == "__main__":
    main(_forms)
