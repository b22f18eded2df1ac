"""Shared plumbing for the peer runner scripts (executed inside a peer venv).

A runner is called as ``python run_<peer>.py DATA_DIR MODE DTYPE THREADS REPEATS`` where
``DATA_DIR`` holds ``x.npy`` and ``y.npy`` (``(n_samples, n_features)`` float64) and
``batches.json`` (``{"batch_size": int, "n_batches": int}``); ``MODE`` is ``linear``,
``debiased`` or ``minibatch``. It prints one JSON line ``{"seconds", "value", "n_timed",
"note"}`` or ``{"error": ...}`` when the peer has no such form.
"""
from __future__ import annotations

import importlib.util
import json
import sys
import types
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/ for _common
from _common import time_call  # noqa: E402

__all__ = ["main", "load_module_file", "bare_package"]


def load_module_file(name: str, path: str | Path) -> types.ModuleType:
    """Import one source file as module ``name`` without running its package ``__init__``."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ValueError(f"expected an importable file, got {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def bare_package(name: str) -> None:
    """Register package ``name`` without running its ``__init__`` (submodules still import)."""
    spec = importlib.util.find_spec(name)
    if spec is None or spec.submodule_search_locations is None:
        raise ImportError(f"expected an installed package {name!r}, found none")
    module = types.ModuleType(name)
    module.__path__ = list(spec.submodule_search_locations)
    sys.modules[name] = module


def main(make_forms: Callable[[], dict[str, Callable[..., tuple[Callable[[], Any], str]]]]) -> None:
    """Parse argv, build the timed closure for MODE and print the JSON result.

    ``make_forms()`` imports the peer and returns ``{mode: form}``;
    ``form(x, y, batch_size, n_batches, dtype)`` returns ``(fn, note)``; ``fn()`` returns the
    CKA value. Import and run errors are reported as ``{"error": ...}``.
    """
    import numpy as np
    import torch

    data_dir, mode, dtype_name, threads, repeats = sys.argv[1:6]
    torch.set_num_threads(int(threads))
    try:
        forms = make_forms()
    except Exception as e:
        print(json.dumps({"error": f"import failed: {type(e).__name__}: {e}"}))
        return
    if mode not in forms:
        print(json.dumps({"error": f"no {mode} form in this peer"}))
        return
    dtype = {"float32": torch.float32, "float64": torch.float64}[dtype_name]
    d = Path(data_dir)
    x = torch.from_numpy(np.load(d / "x.npy")).to(dtype)
    y = torch.from_numpy(np.load(d / "y.npy")).to(dtype)
    meta = json.loads((d / "batches.json").read_text())
    try:
        fn, note = forms[mode](x, y, meta["batch_size"], meta["n_batches"], dtype)
        seconds, value, n_timed = time_call(
            fn, repeats=int(repeats), warmup=1, max_seconds=60.0, budget_seconds=30.0
        )
    except Exception as e:  # report the peer's own error to the benchmark
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}))
        return
    print(json.dumps({"seconds": seconds, "value": float(value), "n_timed": n_timed, "note": note}))
