"""Peak memory of streaming ``repsim.MinibatchCKA`` over 10k vs 100k samples.

Usage::

    python3 benchmarks/bench_minibatch_memory.py [--json results/bench_minibatch_memory.json]

Each size runs in a fresh subprocess that generates its activations batch by batch (several
layers per side, seeded), feeds them to one ``MinibatchCKA`` and reports
``resource.getrusage(RUSAGE_SELF).ru_maxrss``: the peak resident set of the whole process,
Python and torch included. It also reports the peak just before streaming starts (after the
imports and one warm-up batch), so that what streaming itself adds is visible. Target: peak at
100k <= 1.2 x peak at 10k (memory independent of the number of batches).
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))
from _common import format_table, machine_info, write_json  # noqa: E402

__all__ = ["layer_widths", "peak_rss_mib", "stream", "main"]


def layer_widths(n_layers: int, *, base: int = 64) -> list[int]:
    """Widths ``base, 2 base, 4 base, ...`` of ``n_layers`` synthetic layers."""
    if n_layers < 1:
        raise ValueError(f"n_layers: expected >= 1, got {n_layers}")
    return [base * 2**i for i in range(n_layers)]


def peak_rss_mib() -> float:
    """Peak resident set of this process so far, in MiB (Linux reports ru_maxrss in KiB)."""
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / 1024.0 if sys.platform != "darwin" else kib / 2**20


def stream(n_samples: int, *, batch_size: int, n_layers: int, threads: int, seed: int = 0) -> dict[str, Any]:
    """Generate ``n_samples`` in batches and stream them through one ``MinibatchCKA``.

    Returns the peak RSS before and after streaming (MiB), the seconds taken and CKA[0, 0].
    """
    import torch

    import repsim

    torch.set_num_threads(threads)
    widths = layer_widths(n_layers)
    g = torch.Generator().manual_seed(seed)
    mixes = [torch.randn(widths[0], w, generator=g) / widths[0] ** 0.5 for w in widths]

    def batch(b: int) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        gb = torch.Generator().manual_seed(seed * 1_000_003 + b)
        z = torch.randn(batch_size, widths[0], generator=gb)  # shared latent
        a = {f"a{i}": (z @ m).tanh() for i, m in enumerate(mixes)}
        o = {f"b{i}": z @ m + 0.5 * torch.randn(batch_size, m.shape[1], generator=gb) for i, m in enumerate(mixes)}
        return a, o

    warm = repsim.MinibatchCKA()
    warm.update(*batch(-1))
    warm.compute()
    before = peak_rss_mib()
    metric = repsim.MinibatchCKA()
    n_batches = n_samples // batch_size
    t0 = time.perf_counter()
    for b in range(n_batches):
        metric.update(*batch(b))
    cka = metric.compute()
    seconds = time.perf_counter() - t0
    return {
        "n_samples": n_batches * batch_size,
        "n_batches": n_batches,
        "layers_per_side": n_layers,
        "widths": widths,
        "peak_rss_before_mib": before,
        "peak_rss_mib": peak_rss_mib(),
        "seconds": seconds,
        "cka_00": float(cka[0, 0]),
    }


def _child(argv: list[str]) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--batch-size", type=int, required=True)
    p.add_argument("--layers", type=int, required=True)
    p.add_argument("--threads", type=int, required=True)
    a = p.parse_args(argv)
    print(json.dumps(stream(a.n, batch_size=a.batch_size, n_layers=a.layers, threads=a.threads)))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="10000,100000")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        cmd = [sys.executable, __file__, "--child", "--n", str(n), "--batch-size", str(args.batch_size),
               "--layers", str(args.layers), "--threads", str(args.threads)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    for r in rows:
        r["added_mib"] = r["peak_rss_mib"] - r["peak_rss_before_mib"]
    print(format_table(rows, ["n_samples", "n_batches", "layers_per_side", "peak_rss_before_mib", "peak_rss_mib", "added_mib", "seconds", "cka_00"]))
    ratio = rows[-1]["peak_rss_mib"] / rows[0]["peak_rss_mib"]
    print(f"peak RSS ratio {rows[-1]['n_samples']} / {rows[0]['n_samples']} samples: {ratio:.3f} "
          f"-> {'PASS' if ratio <= 1.2 else 'FAIL'} (target <= 1.2)")
    payload = {"machine": machine_info(threads=args.threads), "rows": rows, "ratio": ratio}
    if args.json:
        write_json(args.json, payload)
        print(f"wrote {args.json}")
    return payload


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(sys.argv[2:])
    else:
        main()
