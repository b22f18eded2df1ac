"""PyPI ``repsim`` runner (a C++ extension; NOT our package), run in ``.venv-peer-repsim``.

``repsim._cka([x, y], "linear", estimator)``: ``"gretton"`` is the biased HSIC, ``"song"`` the
unbiased one of Song et al. (2012). It works in float64 numpy whatever the input dtype.
Must not run with the repository root on ``sys.path`` (our ``repsim`` would shadow it).
"""
from __future__ import annotations

from _runner import main

__all__: list[str] = []


def _forms():
    import numpy as np
    import repsim  # the PyPI project

    if not hasattr(repsim, "repsim_kernels"):
        raise ImportError(f"expected the PyPI repsim, got {repsim.__file__}")

    def linear(x, y, bs, nb, dtype):
        xn, yn = np.ascontiguousarray(x.numpy()), np.ascontiguousarray(y.numpy())
        return (lambda: repsim._cka([xn, yn], "linear", "gretton")[0, 1]), "repsim (PyPI) cka(linear, gretton)"

    def debiased(x, y, bs, nb, dtype):
        xn, yn = np.ascontiguousarray(x.numpy()), np.ascontiguousarray(y.numpy())
        return (lambda: repsim._cka([xn, yn], "linear", "song")[0, 1]), "repsim (PyPI) cka(linear, song)"

    return {"linear": linear, "debiased": debiased}


if __name__ == "__main__":
    main(_forms)
