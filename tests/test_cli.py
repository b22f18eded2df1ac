"""Tests for the ``python -m repsim`` command line (repsim.cli, repsim.__main__, repsim._demo)."""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torch.testing import assert_close

from repsim.cli import compute_matrix, format_table, main

DT = torch.float64
ROOT = Path(__file__).resolve().parents[1]


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def ref_linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear CKA through centred Gram matrices (Kornblith et al. 2019, eq. for HSIC_0)."""
    x, y = x.to(DT), y.to(DT)
    n = x.shape[0]
    h = torch.eye(n, dtype=DT) - 1.0 / n
    k, l = h @ (x @ x.T) @ h, h @ (y @ y.T) @ h
    return float((k * l).sum() / torch.sqrt((k * k).sum() * (l * l).sum()))


def ref_unbiased_hsic(k: torch.Tensor, l: torch.Tensor) -> torch.Tensor:
    """Song et al. (2012) unbiased HSIC, written out term by term."""
    n = k.shape[0]
    k, l = k.clone(), l.clone()
    k.fill_diagonal_(0)
    l.fill_diagonal_(0)
    one = torch.ones(n, dtype=DT)
    t1 = torch.trace(k @ l)
    t2 = (one @ k @ one) * (one @ l @ one) / ((n - 1) * (n - 2))
    t3 = 2.0 / (n - 2) * (one @ k @ l @ one)
    return (t1 + t2 - t3) / (n * (n - 3))


def read_csv(path: Path) -> tuple[list[str], list[str], torch.Tensor]:
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    cols = rows[0][1:]
    names = [r[0] for r in rows[1:]]
    values = torch.tensor([[float(v) for v in r[1:]] for r in rows[1:]], dtype=DT)
    return names, cols, values


def assert_png(path: Path) -> None:
    with Image.open(path) as img:
        assert img.format == "PNG"
        assert img.size[0] > 100 and img.size[1] > 100


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models: intra-op threads only add contention on a shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def run_main(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def acts_files(tmp_path: Path) -> tuple[Path, Path, dict, dict]:
    """Two .npz activation files over the same 40 samples, B partly a function of A."""
    n = 40
    a = {
        "fc": torch.randn(n, 6, generator=_gen(0), dtype=DT),
        "conv": torch.randn(n, 3, 4, 4, generator=_gen(1), dtype=DT),
    }
    b = {
        "fc": a["fc"] @ torch.randn(6, 5, generator=_gen(2), dtype=DT)
        + 0.5 * torch.randn(n, 5, generator=_gen(3), dtype=DT),
        "conv": torch.relu(a["conv"]) + 0.3 * torch.randn(n, 3, 4, 4, generator=_gen(4), dtype=DT),
        "small": torch.randn(n, 2, 2, 2, generator=_gen(5), dtype=DT),
    }
    pa, pb = tmp_path / "a.npz", tmp_path / "b.npz"
    np.savez(pa, **{k: v.numpy() for k, v in a.items()})
    np.savez(pb, **{k: v.numpy() for k, v in b.items()})
    return pa, pb, a, b


# ------------------------------------------------------------------------------- compare


def test_compare_npz_equals_similarity_matrix_and_direct_cka(acts_files, tmp_path, capsys):
    from repsim import flatten_conv, similarity_matrix

    pa, pb, a, b = acts_files
    out = tmp_path / "out"
    code, stdout, err = run_main(["compare", pa, pb, "--out", out, "--quiet"], capsys)
    assert code == 0, err
    rows, cols, values = read_csv(out / "similarity.csv")
    assert rows == ["fc", "conv"] and cols == ["fc", "conv", "small"]
    flat_a = {k: flatten_conv(v, mode="full") for k, v in a.items()}
    flat_b = {k: flatten_conv(v, mode="full") for k, v in b.items()}
    assert_close(values, similarity_matrix(flat_a, flat_b, measure="linear_cka"), rtol=0, atol=0)
    direct = torch.tensor(
        [[ref_linear_cka(flat_a[r], flat_b[c]) for c in cols] for r in rows], dtype=DT
    )
    assert_close(values, direct, rtol=1e-10, atol=1e-12)
    assert values[0, 0] > 0.5 > values[0, 2]  # B's fc is built from A's fc; "small" is noise
    assert_png(out / "similarity.png")
    assert "linear_cka" in stdout and "small" in stdout and f"{float(values[1, 1]):.4f}" in stdout


def test_compare_pt_channels_cca_pools_different_sizes(acts_files, tmp_path, capsys):
    from repsim import mean_cca

    _, _, a, b = acts_files
    pa, pb = tmp_path / "a.pt", tmp_path / "b.pt"
    torch.save(a, pa)
    torch.save(b, pb)
    out = tmp_path / "cca"
    code, _, err = run_main(
        ["compare", pa, pb, "--out", out, "--measure", "cca", "--layers", "conv",
         "--layers-b", "conv,small,fc", "--quiet"], capsys,
    )
    assert code == 0, err
    rows, cols, values = read_csv(out / "similarity.csv")
    assert rows == ["conv"] and cols == ["conv", "small", "fc"]

    def channels(t: torch.Tensor) -> torch.Tensor:  # (N, C, H, W) -> (N*H*W, C), by hand
        return torch.stack([t[:, c].reshape(-1) for c in range(t.shape[1])], dim=1)

    # same 4x4 size: each position a datapoint
    assert_close(values[0, 0], mean_cca(channels(a["conv"]), channels(b["conv"])))
    # 4x4 vs 2x2: A's map average-pooled over 2x2 blocks first
    pooled = a["conv"].reshape(40, 3, 2, 2, 2, 2).mean(dim=(3, 5))
    assert_close(values[0, 1], mean_cca(channels(pooled), channels(b["small"])))
    # a 2-D layer counts as 1x1: the spatial mean
    assert_close(values[0, 2], mean_cca(a["conv"].mean(dim=(2, 3)), b["fc"]))


def _save_sequential(path: Path, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 5)
    )
    torch.save(model, path)  # a full pickle of the module
    return model


def test_compare_two_saved_models_with_inputs(tmp_path, capsys):
    ma = _save_sequential(tmp_path / "a.pt", 0)
    mb = _save_sequential(tmp_path / "b.pt", 1)
    x = torch.randn(30, 1, 6, 6, generator=_gen(7), dtype=DT)
    np.save(tmp_path / "x.npy", x.numpy())  # float64 inputs into float32 models: cast
    out = tmp_path / "models"
    code, _, err = run_main(
        ["compare", "--trust-pickle", tmp_path / "a.pt", tmp_path / "b.pt", "--inputs", tmp_path / "x.npy",
         "--out", out, "--batch-size", "8", "--quiet"], capsys,
    )
    assert code == 0, err
    rows, cols, values = read_csv(out / "similarity.csv")
    assert rows == cols == ["0", "3", "output"]  # leaves with parameters, then the output
    xf = x.float()
    with torch.no_grad():
        acts_a = [ma[0](xf).flatten(1), ma(xf), ma(xf)]
        acts_b = [mb[0](xf).flatten(1), mb(xf), mb(xf)]
    direct = torch.tensor([[ref_linear_cka(p, q) for q in acts_b] for p in acts_a], dtype=DT)
    assert_close(values, direct, rtol=1e-5, atol=1e-6)  # float32 models
    assert_png(out / "similarity.png")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_compare_torchscript_output_only(tmp_path, capsys):
    ma = _save_sequential(tmp_path / "eager.pt", 0)
    torch.jit.save(torch.jit.script(ma), tmp_path / "scripted.pt")
    x = torch.randn(20, 1, 6, 6, generator=_gen(8))
    torch.save(x, tmp_path / "x.pt")
    out = tmp_path / "ts"
    code, _, err = run_main(
        ["compare", "--trust-pickle", tmp_path / "scripted.pt", tmp_path / "eager.pt", "--inputs",
         tmp_path / "x.pt", "--layers", "output", "--layers-b", "output,0", "--out", out,
         "--quiet"], capsys,
    )
    assert code == 0, err
    rows, cols, values = read_csv(out / "similarity.csv")
    assert rows == ["output"] and cols == ["output", "0"]
    assert_close(values[0, 0], torch.tensor(1.0, dtype=DT), rtol=0, atol=1e-6)  # same model
    with torch.no_grad():
        expected = ref_linear_cka(ma(x), ma[0](x).flatten(1))
    assert_close(float(values[0, 1]), expected, rtol=1e-5, atol=1e-6)
    # inner layers of TorchScript cannot be hooked: a user error
    code, _, err = run_main(
        ["compare", "--trust-pickle", tmp_path / "scripted.pt", tmp_path / "eager.pt", "--inputs",
         tmp_path / "x.pt", "--layers", "0", "--out", out], capsys,
    )
    assert code == 2 and "TorchScript" in err and err.count("\n") == 1


def test_compute_matrix_pool_and_format_table():
    a = {"c": torch.randn(12, 3, 2, 2, generator=_gen(9), dtype=DT)}
    b = {"f": torch.randn(12, 4, generator=_gen(10), dtype=DT)}
    m = compute_matrix(a, b, measure="linear_cka", flatten="pool")
    assert m.shape == (1, 1) and m.dtype == DT
    expected = ref_linear_cka(a["c"].mean(dim=(2, 3)), b["f"])
    assert_close(float(m[0, 0]), expected, rtol=1e-10, atol=0)
    table = format_table(torch.tensor([[0.5, 0.25]]), ["row"], ["x", "longname"])
    assert table.splitlines()[1].split() == ["row", "0.5000", "0.2500"]


# ---------------------------------------------------------------------------- user errors


def _assert_one_line_error(code: int, err: str, pattern: str) -> None:
    assert code == 2
    assert err.startswith("repsim: error: ") and err.endswith("\n") and err.count("\n") == 1, err
    assert pattern in err, err
    assert "Traceback" not in err


def test_user_errors_exit_2_with_one_line(acts_files, tmp_path, capsys):
    pa, pb, a, _ = acts_files
    out = tmp_path / "o"
    bad_ext = tmp_path / "a.txt"
    bad_ext.write_text("x")
    short = tmp_path / "short.npz"
    np.savez(short, fc=a["fc"][:30].numpy())
    cases = [
        (["compare", tmp_path / "missing.npz", pb, "--out", out], "no such file"),
        (["compare", bad_ext, pb, "--out", out], "expected a .pt, .pth, .npz file"),
        (["compare", pa, pb, "--out", out, "--layers", "fc,nope"], "unknown layer(s) ['nope']"),
        (["compare", pa, short, "--out", out], "mismatched sample counts: A has 40"),
        (["compare", pa, pb, "--out", out, "--measure", "rbf_cka", "--distributed"],
         "--distributed supports --measure linear_cka, debiased_cka"),
        (["compare", pa, pb, "--out", out, "--measure", "nope"], "invalid choice"),
        (["compare", pa, pb], "--out"),
        (["frobnicate"], "invalid choice"),
    ]
    for argv, pattern in cases:
        code, _, err = run_main(argv, capsys)
        _assert_one_line_error(code, err, pattern)
    assert not out.exists()


def test_model_errors_exit_2(tmp_path, capsys):
    _save_sequential(tmp_path / "m.pt", 0)
    torch.save(torch.randn(10, 1, 5, 5), tmp_path / "wrong.pt")  # wrong image size
    torch.save({"model": {"w": torch.zeros(2)}, "epoch": 3}, tmp_path / "ckpt.pt")
    cases = [
        (["compare", "--trust-pickle", tmp_path / "m.pt", tmp_path / "m.pt", "--out", tmp_path],
         "--inputs is required"),
        (["compare", tmp_path / "m.pt", tmp_path / "m.pt", "--out", tmp_path],
         "would run code stored in the file; pass --trust-pickle"),
        (["compare", "--trust-pickle", tmp_path / "m.pt", tmp_path / "m.pt", "--inputs", tmp_path / "wrong.pt",
          "--out", tmp_path], "running the model on --inputs failed"),
        (["compare", "--trust-pickle", tmp_path / "m.pt", tmp_path / "m.pt", "--inputs", tmp_path / "wrong.pt",
          "--layers", "9", "--out", tmp_path], "unknown '9'"),
        (["compare", tmp_path / "ckpt.pt", tmp_path / "m.pt", "--out", tmp_path],
         "non-tensor entries"),
    ]
    for argv, pattern in cases:
        code, _, err = run_main(argv, capsys)
        _assert_one_line_error(code, err, pattern)


def _python_m_repsim(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "repsim", *args], capture_output=True, text=True, cwd=ROOT,
        env=env, timeout=timeout,
    )


def test_help_exits_0(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    assert "compare" in text and "demo" in text

def test_compare_help_warns_about_pickles(capsys):
    with pytest.raises(SystemExit) as info:
        main(["compare", "--help"])
    assert info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--trust-pickle" in text and "runs code" in text
    assert "--distributed" in text and "--flatten" in text


def test_python_m_repsim_process_error_is_one_line():
    """A real ``python -m repsim`` process: exit status 2, one stderr line, no traceback."""
    bad = _python_m_repsim("compare", "nope.npz", "nope2.npz", "--out", "x")
    _assert_one_line_error(bad.returncode, bad.stderr, "no such file")
    assert bad.stdout == ""


# ----------------------------------------------------------------------------------- demo


def test_demo_trains_and_writes_matrices(tmp_path, capsys):
    out = tmp_path / "demo"
    code, stdout, err = run_main(["demo", "--out", out, "--epochs", "3", "--quiet"], capsys)
    assert code == 0, err
    accuracies = [
        float(line.rsplit(" ", 1)[1]) for line in stdout.splitlines() if "accuracy" in line
    ]
    assert len(accuracies) == 2 and min(accuracies) > 0.85  # 10 classes: chance is 0.1
    for stem in ("linear_cka", "mean_cca"):
        rows, cols, values = read_csv(out / f"{stem}.csv")
        assert rows == cols == ["conv1", "conv2", "conv3", "head"]
        assert bool(((values >= 0) & (values <= 1 + 1e-9)).all())
        assert_png(out / f"{stem}.png")
    _, _, cka = read_csv(out / "linear_cka.csv")
    # two seeds learn similar layers: the same layer is closer than the farthest one
    assert cka[0, 0] > cka[0, 3] and cka[3, 3] > cka[3, 0]
    assert float(cka.diagonal().min()) > 0.7
    assert "mean CCA" in stdout and "linear CKA" in stdout


# ---------------------------------------------------------------------------- distributed


@pytest.mark.slow
def test_distributed_two_gloo_processes_equal_single_process(acts_files, tmp_path):
    from repsim import flatten_conv

    pa, pb, a, b = acts_files
    out = tmp_path / "dist"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "repsim", "compare", str(pa), str(pb), "--out", str(out), "--distributed",
         "--batch-size", "8", "--quiet"],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows, cols, values = read_csv(out / "similarity.csv")
    assert rows == ["fc", "conv"] and cols == ["fc", "conv", "small"]

    # exact streaming: the debiased CKA of all 40 samples, as without --distributed
    flat_a = {k: flatten_conv(v, mode="full").to(DT) for k, v in a.items()}
    flat_b = {k: flatten_conv(v, mode="full").to(DT) for k, v in b.items()}
    ka = [flat_a[r] @ flat_a[r].T for r in rows]
    kb = [flat_b[c] @ flat_b[c].T for c in cols]
    cross = torch.stack([torch.stack([ref_unbiased_hsic(k, l) for l in kb]) for k in ka])
    self_a = torch.stack([ref_unbiased_hsic(k, k) for k in ka])
    self_b = torch.stack([ref_unbiased_hsic(l, l) for l in kb])
    reference = cross / torch.sqrt(self_a[:, None] * self_b[None, :])
    assert_close(values, reference, rtol=0, atol=1e-10)


def test_distributed_models_in_process_world_of_one(tmp_path, capsys):
    """The model path of --distributed: a gloo group of one process, started by the test."""
    import torch.distributed as dist

    from repsim import linear_cka

    ma = _save_sequential(tmp_path / "a.pt", 0)
    mb = _save_sequential(tmp_path / "b.pt", 1)
    x = torch.randn(30, 1, 6, 6, generator=_gen(11))
    torch.save(x, tmp_path / "x.pt")
    dist.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1
    )
    try:
        code, _, err = run_main(
            ["compare", "--trust-pickle", tmp_path / "a.pt", tmp_path / "b.pt", "--inputs", tmp_path / "x.pt",
             "--layers", "0,output", "--out", tmp_path / "d", "--distributed",
             "--batch-size", "10", "--quiet"], capsys,
        )
    finally:
        dist.destroy_process_group()
    assert code == 0, err
    rows, cols, values = read_csv(tmp_path / "d" / "similarity.csv")
    assert rows == cols == ["0", "output"]
    with torch.no_grad():  # exact streaming: the debiased CKA of all 30 samples
        acts_a = {"0": ma[0](x).flatten(1), "output": ma(x)}
        acts_b = {"0": mb[0](x).flatten(1), "output": mb(x)}
    reference = torch.tensor([[float(linear_cka(acts_a[r], acts_b[c], debiased=True))
                               for c in cols] for r in rows], dtype=DT)
    assert_close(values, reference, rtol=0, atol=1e-6)  # float32 forward passes in batches


class _RunsCode(nn.Module):
    """A module whose unpickling would call ``os.system`` (a file nobody should execute)."""

    def __reduce__(self):
        import os
        return (os.system, (f"touch {self.marker}",))


def test_pickled_models_are_refused_without_trust_pickle(tmp_path, capsys):
    marker = tmp_path / "ran"
    evil = _RunsCode()
    evil.marker = marker
    torch.save(evil, tmp_path / "evil.pt")
    np.save(tmp_path / "x.npy", np.zeros((4, 3), dtype=np.float32))
    code, _, err = run_main(["compare", tmp_path / "evil.pt", tmp_path / "evil.pt", "--inputs",
                             tmp_path / "x.npy", "--out", tmp_path / "o", "--quiet"], capsys)
    assert code == 2 and "--trust-pickle" in err and "run code" in err
    assert not marker.exists()                         # nothing from the file was executed
    # with the flag the user takes the risk: unpickling runs the file's code
    run_main(["compare", "--trust-pickle", tmp_path / "evil.pt", tmp_path / "evil.pt",
              "--inputs", tmp_path / "x.npy", "--out", tmp_path / "o", "--quiet"], capsys)
    assert marker.exists()
