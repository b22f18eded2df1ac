"""Shared pytest fixtures (keep this file small)."""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    """A fresh, private ``$REPSIM_CACHE`` for one test."""
    path = tmp_path / "cache"
    monkeypatch.setenv("REPSIM_CACHE", str(path))
    return path


@pytest.fixture
def run_lock_holder():
    """``with run_lock_holder(path) as pid``: another process holds ``path``'s run lock
    (``RunDir.writer``) inside the block; it is killed, and its lock freed, on leaving."""

    @contextlib.contextmanager
    def hold(run_dir):
        holder = subprocess.Popen(
            [sys.executable, "-c", "import time; from meta.run import RunDir; "
             f"w = RunDir({str(run_dir)!r}).writer(); w.__enter__(); print('ready', flush=True); "
             "time.sleep(120)"], stdout=subprocess.PIPE, text=True, cwd=ROOT)
        try:
            assert holder.stdout.readline().strip() == "ready"
            yield holder.pid
        finally:
            holder.kill()
            holder.wait()

    return hold


@pytest.fixture(scope="session")
def omniglot_root():
    """The real Omniglot (``$REPSIM_OMNIGLOT`` or ``../shared/omniglot``); skips when absent."""
    candidates = [os.environ.get("REPSIM_OMNIGLOT"), ROOT.parent / "shared" / "omniglot",
                  Path.cwd().parent / "shared" / "omniglot"]
    for c in candidates:
        if c and ((Path(c) / "images_background.npz").is_file()
                  or (Path(c) / "images_background").is_dir()):
            return Path(c)
    pytest.skip("real Omniglot not found ($REPSIM_OMNIGLOT or ../shared/omniglot)")


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Small tensors: extra intra-op threads only add contention on a shared 2-core machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
