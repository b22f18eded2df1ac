"""torchrun with 2 gloo processes ends where the single-process run ends, and a checkpoint
written by 2 processes resumes in 1."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from meta.config import get_preset
from meta.run import RunDir
from meta.training import train

ROOT = Path(__file__).resolve().parents[1]


def _torchrun(out, nproc=2):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "meta", "train", "--preset", "tiny", "--out", str(out), "--quiet"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _final(run):
    state = torch.load(RunDir(run).checkpoint(), weights_only=False)
    return state["iteration"], state["model"]


@pytest.mark.slow
def test_two_process_run_equals_single_process_and_resumes_across_world_sizes(tmp_path):
    torch.set_num_threads(1)
    cfg = get_preset("tiny")
    single = train(cfg, tmp_path / "single", progress=False)
    it_single, w_single = _final(single)

    proc = _torchrun(tmp_path / "two")
    assert proc.stdout.strip().splitlines() == [str(tmp_path / "two")]   # rank 0 prints alone
    it_two, w_two = _final(tmp_path / "two")
    assert it_two == it_single == cfg.iterations
    torch.testing.assert_close(w_two, w_single, rtol=0, atol=1e-6)
    assert len((tmp_path / "two" / "metrics.jsonl").read_text().splitlines()) == cfg.iterations

    # Resume across world sizes: the 2-process checkpoint at iteration 3 continued by one process.
    mixed = tmp_path / "mixed"
    (mixed / "checkpoints").mkdir(parents=True)
    shutil.copy(tmp_path / "two" / "config.json", mixed / "config.json")
    shutil.copy(RunDir(tmp_path / "two").checkpoint(3), RunDir(mixed).checkpoint())
    train(cfg, mixed, progress=False)
    it_mixed, w_mixed = _final(mixed)
    assert it_mixed == cfg.iterations
    torch.testing.assert_close(w_mixed, w_single, rtol=0, atol=1e-6)
