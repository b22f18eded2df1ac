"""What both command lines of ``meta`` (classification and RL) do with the user's input:
``--set field=value`` overrides and the checks made before any work."""
from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Sequence

from meta.data.episodes import check_data_root
from meta.run import RunBusyError, RunDir
from repsim._cli_policy import UserError

__all__ = ["parse_fields", "parse_set", "check_inputs", "busy_run_is_user_error"]


def parse_set(cfg, items: Sequence[str]):
    """``cfg`` with the ``field=value`` overrides of :func:`parse_fields` applied."""
    return cfg.replace(**parse_fields(items))


def parse_fields(items: Sequence[str]) -> dict:
    """``field=value`` overrides as a dict; values are JSON (``none``/``null`` for None), else
    text; ``checkpoints`` also takes ``10000,20000``."""
    fields = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name:
            raise ValueError(f"--set: expected field=value, got {item!r}")
        name = name.strip().replace("-", "_")
        if text.strip().lower() == "none":
            value = None
        elif name == "checkpoints" and not text.strip().startswith("["):
            try:
                value = tuple(int(c) for c in text.split(",") if c.strip())
            except ValueError:
                raise ValueError(f"--set checkpoints: expected comma-separated ints, got {text!r}") from None
        else:
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                value = text
        fields[name] = tuple(value) if isinstance(value, list) else value
    return fields


def check_inputs(cfg, run_dir: str | os.PathLike) -> None:
    """``ValueError`` when ``run_dir`` holds a run with another config, ``cfg.body_from``
    names a folder without a trained run, or the dataset is not where ``cfg.data_root`` says
    (what the user gave, checked before any work)."""
    RunDir(run_dir).check_config(cfg)
    if getattr(cfg, "dataset", None) is not None:
        check_data_root(cfg.dataset, cfg.data_root)
    body_from = getattr(cfg, "body_from", None)
    if body_from is not None and not RunDir(body_from).checkpoint().exists():
        raise ValueError(f"body_from: expected a trained run with "
                         f"{RunDir(body_from).checkpoint()}, got none")


@contextlib.contextmanager
def busy_run_is_user_error() -> Iterator[None]:
    """A run directory that another process is training (:class:`meta.run.RunBusyError`) is
    the user's to sort out: one line and exit status 2, not a traceback."""
    try:
        yield
    except RunBusyError as err:
        raise UserError(str(err)) from err
