"""The quick-start demo behind ``python -m repsim demo``.

Two small conv nets that differ only in their random seed are trained on scikit-learn's
bundled 8x8 digits (no download); their layers are recorded on held-out images and compared
with linear CKA and mean CCA. scikit-learn is imported here only, lazily.
"""
from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["DigitsNet", "load_digits_split", "train_net", "run_demo"]

LAYERS = ("conv1", "conv2", "conv3", "head")


class DigitsNet(nn.Module):
    """A small conv net for 8x8 digits: 8x8 -> 8x8 -> 4x4 -> 2x2 -> 10 logits."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU())  # (N, 16, 8, 8)
        self.conv2 = nn.Sequential(
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)
        )  # (N, 32, 4, 4)
        self.conv3 = nn.Sequential(
            nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)
        )  # (N, 32, 2, 2)
        self.head = nn.Linear(32 * 2 * 2, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv3(self.conv2(self.conv1(x))).flatten(1))


def load_digits_split(*, n_test: int = 500, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """scikit-learn's digits as ``(x_train, y_train, x_test, y_test)``.

    Images are float32 ``(N, 1, 8, 8)`` in ``[0, 1]``; the split is a seeded permutation.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.as_tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (1797, 1, 8, 8)
    y = torch.as_tensor(digits.target, dtype=torch.long)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test]


def train_net(
    x: torch.Tensor, y: torch.Tensor, *, seed: int, epochs: int, batch_size: int = 64,
    lr: float = 3e-3, quiet: bool = True,
) -> DigitsNet:
    """Train a :class:`DigitsNet` with Adam; ``seed`` fixes the initialisation and the batches."""
    from tqdm import tqdm

    torch.manual_seed(seed)
    net = DigitsNet()
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    net.train()
    for _ in tqdm(range(epochs), desc=f"training seed {seed}", unit="epoch", leave=False,
                  disable=quiet or not sys.stderr.isatty()):
        for idx in torch.randperm(len(x), generator=gen).split(batch_size):
            loss = F.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net.eval()


def _accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((net(x).argmax(1) == y).double().mean())


def run_demo(
    out_dir: str | os.PathLike, *, epochs: int = 10, seeds: tuple[int, int] = (0, 1),
    quiet: bool = True,
) -> dict[str, Any]:
    """Train two nets, compare their layers, write ``linear_cka`` and ``mean_cca`` CSV + PNG.

    Returns
    -------
    dict with ``accuracy_a``, ``accuracy_b`` (test accuracies), ``layers``, ``linear_cka`` and
    ``mean_cca`` ((4, 4) float64 tensors; rows: net A's layers, columns: net B's) and ``files``.
    """
    threads = torch.get_num_threads()
    # The nets are tiny: intra-op threads only add overhead (on a busy 2-core machine, a
    # 5x slowdown was measured), so the demo runs on one thread and restores the setting.
    torch.set_num_threads(1)
    try:
        return _run(Path(out_dir), epochs=epochs, seeds=seeds, quiet=quiet)
    finally:
        torch.set_num_threads(threads)


def _run(out_dir: Path, *, epochs: int, seeds: tuple[int, int], quiet: bool) -> dict[str, Any]:
    from repsim._layer_matrix import compute_matrix, write_matrix
    from repsim._hooks import record_activations

    x_train, y_train, x_test, y_test = load_digits_split()
    nets = [train_net(x_train, y_train, seed=s, epochs=epochs, quiet=quiet) for s in seeds]
    acts = []
    for net in nets:
        with torch.no_grad(), record_activations(net, LAYERS, to=torch.float64) as recorded:
            net(x_test)
        acts.append(recorded)
    result: dict[str, Any] = {
        "accuracy_a": _accuracy(nets[0], x_test, y_test),
        "accuracy_b": _accuracy(nets[1], x_test, y_test),
        "layers": list(LAYERS),
        "files": [],
    }
    for stem, measure, flatten, label in (
        ("linear_cka", "linear_cka", "full", "linear CKA"),
        ("mean_cca", "cca", "channels", "mean CCA"),
    ):
        with warnings.catch_warnings():
            # ReLU channels that never fire are constant; CCA drops them and says so each time
            warnings.filterwarnings("ignore", message=r".*ill-posed", category=UserWarning)
            matrix = compute_matrix(acts[0], acts[1], measure=measure, flatten=flatten)
        result[stem] = matrix
        result["files"] += write_matrix(
            matrix, LAYERS, LAYERS, out_dir, stem=stem,
            title=f"{label}: digits net seed {seeds[0]} vs seed {seeds[1]}",
            xlabel=f"net B (seed {seeds[1]})", ylabel=f"net A (seed {seeds[0]})",
        )
    return result
