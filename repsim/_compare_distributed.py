"""``python -m repsim compare --distributed``: the layer matrix from sample shards under torchrun.

Each process takes the rows ``rank::world_size``, streams them batch by batch through
:class:`repsim.StreamingSimilarity` (exact: the values of a single process) and the processes
sum their statistics with a gloo all-reduce. Debiased CKA on a layer wider than
``repsim._streaming.MAX_FEATURES`` falls back to :class:`repsim.MinibatchCKA`.

>>> result = compare_distributed(sources, layers, inputs, measure="cca", flatten="channels",
...                              batch_size=256, device=torch.device("cpu"),
...                              quiet=True)               # doctest: +SKIP
>>> matrix, rows, cols = result     # doctest: +SKIP

``result`` is None on every rank but 0.
"""
from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from repsim._cli_policy import UserError
from repsim._collect import batches, check_samples, prepare_model, progress, run_model_batch
from repsim._layer_matrix import two_d
from repsim._loading import Source

__all__ = ["STREAMING", "compare_distributed"]

log = logging.getLogger(__name__)

# measure of ``compare`` -> its name in repsim.StreamingSimilarity (exact streaming)
STREAMING = {"linear_cka": "linear_cka", "debiased_cka": "linear_cka_debiased", "cca": "mean_cca",
             "svcca": "svcca", "pwcca": "pwcca", "procrustes": "procrustes"}


def _stream(source: Source, names: list[str], inputs: torch.Tensor | None,
            rows: list[torch.Tensor], *, device: torch.device,
            flatten: str) -> Iterator[dict[str, torch.Tensor]]:
    """2-D activations of this process's rows, one batch of row indices at a time."""
    if source.model is not None:
        inputs = prepare_model(source, inputs, device)
    for idx in rows:
        if source.acts is not None:
            batch = {n: source.acts[n][idx] for n in names}
        else:
            batch = run_model_batch(source, names, inputs[idx], device)
        flat = {n: two_d(t, flatten) for n, t in batch.items()}
        if len({t.shape[0] for t in flat.values()}) != 1:
            raise UserError(
                f"{source.label}: --flatten {flatten} gives layers different numbers of rows "
                f"({ {n: t.shape[0] for n, t in flat.items()} }); use --flatten full or pool "
                f"with --distributed"
            )
        yield flat


def _streaming_metric(measure: str, first: tuple[dict, dict], batch_size: int) -> Any:
    """Exact :class:`repsim.StreamingSimilarity` where the widths allow, else (debiased CKA
    only) the minibatch estimator :class:`repsim.MinibatchCKA`."""
    from repsim import _streaming
    from repsim._minibatch import MinibatchCKA

    widest = max(t.shape[1] for side in first for t in side.values())
    if widest <= _streaming.MAX_FEATURES:  # gloo reduces CPU tensors
        return _streaming.StreamingSimilarity(STREAMING[measure], device="cpu")
    if measure != "debiased_cka":
        raise UserError(
            f"--distributed: {measure} keeps (d, d) statistics and a layer has {widest} features "
            f"(limit {_streaming.MAX_FEATURES}); use --flatten pool or channels, or --measure "
            "debiased_cka (minibatch CKA for wide layers)"
        )
    if batch_size < 4:
        raise UserError(
            f"--batch-size: expected >= 4 for minibatch CKA (unbiased HSIC), got {batch_size}"
        )
    log.info("a layer has %d features: minibatch CKA instead of exact streaming", widest)
    return MinibatchCKA(device="cpu")


def _sample_count(sources: Sequence[Source], layers: Sequence[list[str]],
                  inputs: torch.Tensor | None) -> int:
    """The number of samples both sides share, else a :class:`UserError`."""
    counts = []
    for source, names in zip(sources, layers):
        if source.acts is not None:
            counts.append(check_samples({n: source.acts[n] for n in names}, source.label))
        else:
            counts.append(len(inputs))
    if counts[0] != counts[1]:
        raise UserError(
            f"mismatched sample counts: A has {counts[0]} samples (rows), B has {counts[1]}"
        )
    return counts[0]


def _shard_matrix(sources: Sequence[Source], layers: Sequence[list[str]],
                  inputs: torch.Tensor | None, *, measure: str, flatten: str, batch_size: int,
                  device: torch.device, quiet: bool) -> tuple[torch.Tensor, list, list, int]:
    """Stream this rank's rows, all-reduce; return the matrix, its row / column names, rank."""
    import torch.distributed as dist

    rank, world = dist.get_rank(), dist.get_world_size()
    n_samples = _sample_count(sources, layers, inputs)
    mine = torch.arange(rank, n_samples, world)  # this rank's shard: rows rank::world
    if len(mine) == 0:
        raise UserError(
            f"--distributed: {n_samples} samples cannot be split over {world} processes"
        )
    shard = [mine[b] for b in batches(len(mine), batch_size)]
    streams = [_stream(s, names, inputs, shard, device=device, flatten=flatten)
               for s, names in zip(sources, layers)]
    pairs = zip(*streams)
    first = next(pairs)
    metric = _streaming_metric(measure, first, batch_size)
    try:
        for acts_a, acts_b in progress(itertools.chain([first], pairs), desc=f"rank {rank}",
                                       quiet=quiet, total=len(shard)):
            metric.update(acts_a, acts_b)
        metric.all_reduce()
        matrix = metric.compute()
    except ValueError as err:
        raise UserError(f"{measure}: {err}") from err
    if isinstance(matrix, dict):
        matrix = matrix[STREAMING[measure]]
    return matrix, list(metric.layers_a), list(metric.layers_b), rank


def compare_distributed(
    sources: Sequence[Source], layers: Sequence[list[str]], inputs: torch.Tensor | None, *,
    measure: str, flatten: str, batch_size: int, device: torch.device, quiet: bool,
) -> tuple[torch.Tensor, list[str], list[str]] | None:
    """Similarity of every chosen layer of A with every one of B, over the processes' shards.

    Parameters
    ----------
    sources : the two sides (activations or models)
    layers : the chosen layer names of each side
    inputs : (n_samples, ...) tensor, or None when both sides are activations
    measure : a key of :data:`STREAMING`
    flatten : {"channels", "full", "pool"}, as in :func:`repsim._layer_matrix.two_d`
    batch_size : rows per streamed batch
    device : where the models run
    quiet : no progress bar

    Returns
    -------
    On rank 0, ``(matrix, rows, cols)`` with a (len(rows), len(cols)) float64 matrix; None on
    the other ranks. A process group is started (gloo, from torchrun's environment) and ended
    here unless one is already initialised.
    """
    import torch.distributed as dist

    started = False
    if not dist.is_initialized():
        if "WORLD_SIZE" not in os.environ:
            raise UserError("--distributed: expected a torchrun launch (WORLD_SIZE is not set)")
        dist.init_process_group("gloo")
        started = True
    try:
        matrix, rows, cols, rank = _shard_matrix(
            sources, layers, inputs, measure=measure, flatten=flatten, batch_size=batch_size,
            device=device, quiet=quiet)
    finally:
        if started:
            dist.destroy_process_group()
    return (matrix, rows, cols) if rank == 0 else None
