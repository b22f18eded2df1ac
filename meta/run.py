"""The run directory: the one module that knows where a run keeps what.

::

    config.json                  the run's config (TrainConfig or RLConfig) as JSON
    metrics.jsonl                one JSON object per logged iteration
    checkpoints/last.pt          rolling checkpoint
    checkpoints/step-010000.pt   the iterations listed in cfg.checkpoints
    eval*.json                   cached evaluations (see :meth:`RunDir.eval_file`)
    .lock                        held by the process training the run (:meth:`RunDir.writer`)

Every write is atomic (:func:`repsim._io.atomic_path`); checkpoints load with
``torch.load(weights_only=True)``, so opening a run someone shared runs none of their code.
"""
from __future__ import annotations

import contextlib
import json
import os
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

try:                                    # POSIX; elsewhere a run is not guarded against two writers
    import fcntl
except ImportError:                     # pragma: no cover
    fcntl = None

import torch

from repsim._io import atomic_path, atomic_write_text

__all__ = ["RunDir", "RunBusyError", "load_checkpoint", "save_checkpoint"]


class RunBusyError(RuntimeError):
    """Another process is training this run directory (it holds the run's ``.lock``)."""


def load_checkpoint(path: str | os.PathLike, *, map_location: Any = "cpu") -> dict[str, Any]:
    """A checkpoint of tensors and plain values, loaded without running code from the file;
    a file that needs more (a pickled object) is refused with a ``ValueError``."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise ValueError(f"checkpoint: expected tensors and plain values in {path}, got a file "
                         f"that needs code to load; refusing to run it ({str(err).splitlines()[0]})"
                         ) from None


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> None:
    """``torch.save(state)`` onto ``path`` atomically."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


class RunDir:
    """The files of one run directory.

    Parameters
    ----------
    path : the run's folder (created on the first write)
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __fspath__(self) -> str:
        return str(self.path)

    # ------------------------------------------------------------------ config
    @property
    def config_file(self) -> Path:
        return self.path / "config.json"

    def read_config(self) -> dict[str, Any]:
        """The saved config as a dict (``ValueError`` when the folder holds no run)."""
        if not self.config_file.exists():
            raise ValueError(f"run: expected a run directory with {self.config_file}, got none")
        return json.loads(self.config_file.read_text())

    def write_config(self, cfg) -> None:
        """Save ``cfg`` (anything with ``to_dict()``) as ``config.json``."""
        atomic_write_text(json.dumps(cfg.to_dict(), indent=2) + "\n", self.config_file)

    def check_config(self, cfg) -> None:
        """``ValueError`` unless the folder is new or holds a run with exactly ``cfg``."""
        if not self.config_file.exists():
            return
        saved, now = self.read_config(), cfg.to_dict()
        if saved != now:
            diff = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
            raise ValueError(f"run_dir: expected {self.path} to hold a run with the same config, "
                             f"got different fields {diff}; use a new directory")

    @contextlib.contextmanager
    def writer(self) -> Iterator[None]:
        """Hold the run's ``.lock`` while training it: a second process that tries to train the
        same folder (two commands, or the workers of a pipeline that was killed and started
        again) gets a :class:`RunBusyError` naming the holder instead of interleaving its writes.
        The lock is the operating system's (``flock``): it goes away with its process."""
        if fcntl is None:                                      # pragma: no cover
            yield
            return
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.path / ".lock", "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "unknown"
                raise RunBusyError(f"run_dir: expected {self.path} to be free, got it being "
                                   f"trained by process {holder}; wait for it or stop it") from None
            handle.seek(0)
            handle.truncate()
            handle.write(str(os.getpid()))
            handle.flush()
            try:
                yield
            finally:
                handle.seek(0)
                handle.truncate()
                fcntl.flock(handle, fcntl.LOCK_UN)

    # ------------------------------------------------------------- checkpoints
    def checkpoint(self, which: int | str | None = None) -> Path:
        """``checkpoints/last.pt`` (None or ``"last"``), ``checkpoints/step-XXXXXX.pt`` (an
        iteration) or ``checkpoints/<name>.pt`` for another name (``"best"`` of an RL run)."""
        folder = self.path / "checkpoints"
        if which is None or which == "last":
            return folder / "last.pt"
        if isinstance(which, str) and not which.strip().isdigit():
            return folder / f"{which}.pt"
        return folder / f"step-{int(which):06d}.pt"

    def load(self, which: int | str | None = None, *, map_location: Any = "cpu") -> dict[str, Any]:
        """The checkpoint ``which``; ``ValueError`` naming the checkpoints there if missing."""
        path = self.checkpoint(which)
        if not path.exists():
            folder = path.parent
            found = sorted(p.name for p in folder.glob("*.pt")) if folder.is_dir() else []
            raise ValueError(f"checkpoint: expected {path} to exist, got only {found or 'nothing'}")
        return load_checkpoint(path, map_location=map_location)

    def save(self, state: dict[str, Any], which: int | str | None = None) -> Path:
        """Write ``state`` as checkpoint ``which`` (atomically); return its path."""
        path = self.checkpoint(which)
        save_checkpoint(state, path)
        return path

    def iteration(self, which: int | str | None = None) -> int | None:
        """The iteration stored in checkpoint ``which``, or None when it does not exist."""
        path = self.checkpoint(which)
        return int(load_checkpoint(path)["iteration"]) if path.exists() else None

    def is_finished(self, cfg) -> bool:
        """True if ``last.pt`` holds ``cfg`` at its last iteration or past its ``max_seconds``."""
        path = self.checkpoint()
        if not path.exists():
            return False
        state = load_checkpoint(path)
        if state.get("config") != cfg.to_dict():
            return False
        if int(state["iteration"]) >= cfg.iterations:
            return True
        return cfg.max_seconds is not None and float(state.get("elapsed", 0)) >= cfg.max_seconds

    # ----------------------------------------------------------------- metrics
    @property
    def metrics_file(self) -> Path:
        return self.path / "metrics.jsonl"

    def metrics(self) -> list[dict[str, Any]]:
        """Every logged row of ``metrics.jsonl`` (empty when there is none)."""
        if not self.metrics_file.exists():
            return []
        return [json.loads(line) for line in self.metrics_file.read_text().splitlines()
                if line.strip()]

    def truncate_metrics(self, iteration: int) -> None:
        """Drop the rows logged after ``iteration`` (a resumed run logs them again)."""
        if self.metrics_file.exists():
            kept = [r for r in self.metrics() if r["iteration"] <= iteration]
            atomic_write_text("".join(json.dumps(r) + "\n" for r in kept), self.metrics_file)

    # ------------------------------------------------------------- evaluations
    def eval_file(self, cfg, *, tasks: int, freeze: tuple[int, ...] = (), head: str = "maml",
                  inner_steps: int | None = None, checkpoint: int | str | None = None,
                  split: str | None = None, seed: int = 0) -> Path:
        """``eval.json`` for ``cfg``'s default options, else e.g. ``eval-freeze1,2,3.json``."""
        parts = []
        if freeze:
            parts.append("freeze" + ",".join(str(b) for b in freeze))
        if head != "maml":
            parts.append(f"head-{head}")
        if inner_steps is not None and inner_steps != cfg.inner_steps_test:
            parts.append(f"steps{inner_steps}")
        if checkpoint not in (None, "last"):
            parts.append(f"step{int(checkpoint)}")
        if tasks != cfg.eval_tasks:
            parts.append(f"tasks{tasks}")
        if split is not None and split != cfg.test_split:
            parts.append(f"split-{split}")
        if seed != 0:
            parts.append(f"seed{seed}")
        return self.eval_named(parts)

    def eval_named(self, parts: list[str]) -> Path:
        """``eval.json`` for no parts, else ``eval-<part>-<part>....json``."""
        return self.path / ("eval.json" if not parts else "eval-" + "-".join(parts) + ".json")

    def write_eval(self, result: dict[str, Any], path: Path) -> None:
        """Save one evaluation's result as JSON at ``path`` (from :meth:`eval_file`)."""
        atomic_write_text(json.dumps(result, indent=2) + "\n", path)

    def read_eval(self, path: Path, *, checkpoint: int | str | None = None) -> dict | None:
        """A cached evaluation at ``path`` if it was made from the current ``checkpoint``."""
        if not path.exists():
            return None
        cached = json.loads(path.read_text())
        return cached if cached.get("iteration") == self.iteration(checkpoint) else None
