"""Linear / debiased / minibatch CKA: repsim against the peer libraries and the GEMM limit.

Usage::

    bash benchmarks/setup_peers.sh            # once: .venv-peers and .venv-peer-repsim
    python3 benchmarks/bench_cka_peers.py --json results/bench_cka_peers.json

n = 10 000 samples, d = 512 features, 2 threads by default. Each peer runs in its own venv in a
subprocess (``benchmarks/peers/run_<peer>.py``) on the same arrays, read from ``.npy`` files.
Every timing is shown beside its value and the distance of that value from an independent
float64 numpy computation (``benchmarks/_common.py``). Peers whose public API needs a model and a
dataloader are called through the tensor-level functions that API uses (the ``note`` column).
"""
from __future__ import annotations

import argparse
import inspect
import json
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # our repsim, when not installed
from _common import (  # noqa: E402
    format_table,
    machine_info,
    reference_debiased_linear_cka,
    reference_linear_cka,
    reference_minibatch_cka,
    time_call,
    write_json,
)

__all__ = ["make_data", "split_batches", "ratio_rows", "main"]

ROOT = Path(__file__).resolve().parents[1]
PEERS_DIR = Path(__file__).resolve().parent / "peers"
# peer name -> (venv, runner script)
PEERS = {
    "ckatorch": (".venv-peers", "run_ckatorch.py"),
    "cka-pytorch": (".venv-peers", "run_cka_pytorch.py"),
    "pytorch-cka": (".venv-peers", "run_pytorch_cka.py"),
    "torch-cka": (".venv-peers", "run_torch_cka.py"),
    "deep-reps": (".venv-peers", "run_deep_reps.py"),
    "repsim (PyPI)": (".venv-peer-repsim", "run_repsim_pypi.py"),
}
MODES = ("linear", "debiased", "minibatch")
log = logging.getLogger("bench_cka_peers")


def make_data(n: int, d: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two related float64 activation matrices with a CKA well inside (0, 1).

    Returns
    -------
    x : (n, d) array
    y : (n, d) array, ``tanh(x W) + noise`` with a random ``W``
    """
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)) * np.linspace(0.2, 2.0, d)  # unequal feature scales
    w = rng.standard_normal((d, d)) / np.sqrt(d)
    y = np.tanh(x @ w) + 0.5 * rng.standard_normal((n, d)) + 1.0  # non-zero mean
    return x, y


def split_batches(a: np.ndarray, batch_size: int, n_batches: int) -> list[np.ndarray]:
    """The first ``batch_size * n_batches`` rows of ``a`` as consecutive batches."""
    if batch_size * n_batches > a.shape[0]:
        raise ValueError(
            f"expected batch_size * n_batches <= n_samples, got {batch_size} * {n_batches} > {a.shape[0]}"
        )
    return [a[i * batch_size : (i + 1) * batch_size] for i in range(n_batches)]


def ratio_rows(rows: list[dict[str, Any]], gemm: dict[str, float]) -> list[dict[str, Any]]:
    """Add ``x fastest peer`` and ``x GEMM`` to each timed row (same mode and dtype).

    ``x fastest peer`` = seconds / seconds of the fastest peer for that mode and dtype (so our
    target is <= 0.05); ``x GEMM`` = seconds / one ``x.T @ y`` in that dtype.
    """
    fastest: dict[tuple[str, str], float] = {}
    for r in rows:
        if r.get("peer") and r.get("seconds") is not None:
            key = (r["mode"], r["dtype"])
            fastest[key] = min(fastest.get(key, float("inf")), r["seconds"])
    out = []
    for r in rows:
        r = dict(r)
        if r.get("seconds") is not None:
            f = fastest.get((r["mode"], r["dtype"]))
            r["x fastest peer"] = r["seconds"] / f if f else None
            g = gemm.get(r["dtype"])
            r["x GEMM"] = r["seconds"] / g if g else None
        out.append(r)
    return out


def _run_peer(name: str, mode: str, dtype: str, data_dir: Path, threads: int, repeats: int, timeout: float) -> dict[str, Any]:
    venv, script = PEERS[name]
    python = ROOT / venv / "bin" / "python"
    if not python.exists():
        return {"error": f"{venv} missing: run bash benchmarks/setup_peers.sh"}
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    cmd = [str(python), str(PEERS_DIR / script), str(data_dir), mode, dtype, str(threads), str(repeats)]
    try:
        # cwd = the data dir, so that our own `repsim` never shadows a peer's import
        proc = subprocess.run(cmd, cwd=data_dir, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["(no stderr)"])[-1]
        return {"error": f"exit {proc.returncode}: {tail}"}
    return json.loads(lines[-1])


def _ours(x: np.ndarray, y: np.ndarray, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Time repsim.linear_cka (biased, debiased) and MinibatchCKA, float32 and float64."""
    rows: list[dict[str, Any]] = []
    try:
        import repsim
    except ImportError as e:  # pragma: no cover
        return [{"impl": "repsim (ours)", "error": str(e)}]
    for dtype_name, dtype in (("float32", torch.float32), ("float64", torch.float64)):
        xt = torch.from_numpy(x).to(dtype)
        yt = torch.from_numpy(y).to(dtype)
        for mode in ("linear", "debiased"):
            try:
                fn = getattr(repsim, "linear_cka")
                kw = {"debiased": mode == "debiased"}
                if "dtype" in inspect.signature(fn).parameters:
                    kw["dtype"] = dtype
                sec, val, k = time_call(lambda: fn(xt, yt, **kw), repeats=args.repeats)
                rows.append(dict(impl="repsim (ours)", mode=mode, dtype=dtype_name, seconds=sec,
                                 value=float(val), n_timed=k, note="repsim.linear_cka" + (f"(dtype={dtype_name})" if "dtype" in kw else "")))
            except Exception as e:
                rows.append(dict(impl="repsim (ours)", mode=mode, dtype=dtype_name, error=f"{type(e).__name__}: {e}"))
        try:
            rows += _ours_minibatch(xt, yt, dtype, dtype_name, args)
        except Exception as e:
            rows.append(dict(impl="repsim (ours)", mode="minibatch", dtype=dtype_name, error=f"{type(e).__name__}: {e}"))
    return rows


def _make_minibatch(dtype: torch.dtype) -> Any:
    import repsim

    cls = repsim.MinibatchCKA
    if "dtype" in inspect.signature(cls).parameters:
        return cls(dtype=dtype)
    return cls()


def _ours_minibatch(xt: torch.Tensor, yt: torch.Tensor, dtype: torch.dtype, dtype_name: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    bs, nb = args.batch_size, args.n_batches
    xb = [xt[i * bs : (i + 1) * bs] for i in range(nb)]
    yb = [yt[i * bs : (i + 1) * bs] for i in range(nb)]

    def single() -> torch.Tensor:
        m = _make_minibatch(dtype)
        for a, b in zip(xb, yb):
            m.update(a, b)
        return m.compute()

    sec, val, k = time_call(single, repeats=args.repeats)
    rows = [dict(impl="repsim (ours)", mode="minibatch", dtype=dtype_name, seconds=sec, value=float(val),
                 n_timed=k, note=f"MinibatchCKA, 1 pair, {nb} x update({bs})")]
    # several layers at once: L layers per side, all L x L pairs
    n_layers = args.layers
    # layer i of side a: a scaled, shifted copy; layer j of side b: the first d / (j + 1) columns
    xs = [{f"a{i}": a * (i + 1) + i for i in range(n_layers)} for a in xb]
    ys = [{f"b{j}": b[:, : b.shape[1] // (j + 1)] for j in range(n_layers)} for b in yb]

    def multi() -> torch.Tensor:
        m = _make_minibatch(dtype)
        for a, b in zip(xs, ys):
            m.update(a, b)
        return m.compute()

    sec, val, k = time_call(multi, repeats=args.repeats)
    val = torch.as_tensor(val)
    rows.append(dict(impl=f"repsim (ours) {n_layers}x{n_layers} layers", mode="minibatch", dtype=dtype_name,
                     seconds=sec, value=float(val[0, 0]), n_timed=k,
                     note=f"MinibatchCKA dict update, {n_layers}x{n_layers} matrix; value = [0, 0]"))
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--d", type=int, default=512)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--n-batches", type=int, default=39)
    p.add_argument("--layers", type=int, default=4, help="layers per side in the multi-layer minibatch row")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--peer-repeats", type=int, default=3)
    p.add_argument("--peers", default=",".join(PEERS), help="comma-separated peer names ('' for none)")
    p.add_argument("--peer-dtypes", default="float32,float64")
    p.add_argument("--peer-timeout", type=float, default=600.0)
    p.add_argument("--modes", default=",".join(MODES), help="subset of linear,debiased,minibatch")
    p.add_argument("--json", default=None, help="write the results here")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)

    x, y = make_data(args.n, args.d)
    xb, yb = split_batches(x, args.batch_size, args.n_batches), split_batches(y, args.batch_size, args.n_batches)
    ref = {
        "linear": reference_linear_cka(x, y),
        "debiased": reference_debiased_linear_cka(x, y),
        "minibatch": reference_minibatch_cka(xb, yb),
    }
    log.info("machine: %s", machine_info(threads=args.threads))
    log.info("reference (float64 numpy): %s", ref)

    gemm: dict[str, float] = {}
    rows: list[dict[str, Any]] = []
    for dtype_name, dtype in (("float32", torch.float32), ("float64", torch.float64)):
        xt, yt = torch.from_numpy(x).to(dtype), torch.from_numpy(y).to(dtype)
        gemm[dtype_name], _, k = time_call(lambda: xt.T @ yt, repeats=args.repeats)
        rows.append(dict(impl="GEMM x.T @ y", mode="yardstick", dtype=dtype_name, seconds=gemm[dtype_name], n_timed=k))
        log.info("GEMM %s: %.4f s", dtype_name, gemm[dtype_name])

    ours = _ours(x, y, args)
    for r in ours:
        log.info("ours: %s", r)
    rows += ours

    names = [s for s in args.peers.split(",") if s]
    modes = [m for m in args.modes.split(",") if m]
    if any(m not in MODES for m in modes) or any(n not in PEERS for n in names):
        p.error(f"expected modes from {list(MODES)} and peers from {list(PEERS)}, got {modes} and {names}")
    rows = [r for r in rows if r.get("mode") in (*modes, "yardstick", None)]
    with tempfile.TemporaryDirectory(prefix="bench_cka_") as tmp:
        data_dir = Path(tmp)
        np.save(data_dir / "x.npy", x)
        np.save(data_dir / "y.npy", y)
        (data_dir / "batches.json").write_text(json.dumps({"batch_size": args.batch_size, "n_batches": args.n_batches}))
        for name in names:
            for mode in modes:
                for dtype_name in args.peer_dtypes.split(","):
                    res = _run_peer(name, mode, dtype_name, data_dir, args.threads, args.peer_repeats, args.peer_timeout)
                    err = res.get("error", "")
                    if err.startswith("no ") and err.endswith("form in this peer"):
                        break  # the peer has no such form: no row
                    row = dict(impl=name, peer=True, mode=mode, dtype=dtype_name, **res)
                    log.info("peer: %s", row)
                    rows.append(row)
                    if err.startswith(("import failed", "exit ", ".venv")):
                        break
                else:
                    continue
                if err.startswith(("import failed", "exit ", ".venv")):
                    break  # one row for a peer that cannot be imported at all

    rows = ratio_rows(rows, gemm)
    for r in rows:
        if r.get("value") is not None and r["mode"] in ref:
            r["|value - ref|"] = abs(r["value"] - ref[r["mode"]])
        if r.get("n_timed") == 1 and (r.get("seconds") or 0) > 60:
            r["note"] = (r.get("note") or "") + " [> 60 s: timed once]"
    cols = ["impl", "mode", "dtype", "seconds", "x fastest peer", "x GEMM", "value", "|value - ref|", "n_timed", "note", "error"]
    print(format_table(rows, cols))
    print(_targets(rows))
    payload = {"machine": machine_info(threads=args.threads), "args": vars(args), "reference": ref, "gemm": gemm, "rows": rows}
    if args.json:
        write_json(args.json, payload)
        print(f"wrote {args.json}")
    return payload


def _targets(rows: list[dict[str, Any]]) -> str:
    """One line per target of the brief, with the measured ratio."""
    lines = ["targets:"]
    for r in rows:
        if not r["impl"].startswith("repsim (ours)") or r.get("seconds") is None:
            continue
        f, g = r.get("x fastest peer"), r.get("x GEMM")
        if r["mode"] in ("linear", "debiased"):
            speed = 1 / f if f else None
            ok = speed is not None and speed >= 20 and g is not None and g <= 3
            lines.append(f"  {r['impl']} {r['mode']} {r['dtype']}: {speed and round(speed, 1)}x faster than fastest peer, "
                         f"{g and round(g, 2)} GEMM-times -> {'PASS' if ok else 'FAIL'} (>= 20x and <= 3 GEMM)")
        elif r["mode"] == "minibatch" and "layers" not in r["impl"]:
            ok = f is not None and f < 1
            lines.append(f"  {r['impl']} minibatch {r['dtype']}: {f and round(f, 3)} x fastest peer -> {'PASS' if ok else 'FAIL'} (< 1)")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
