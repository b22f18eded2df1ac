"""One module per figure or table; each declares ``OUTPUT`` (a :class:`figures.output.Output`).

Modules are found by :func:`discover`, so adding a figure is one new file here (plus its
test): the pipeline, the report and ``--only`` pick it up without any other edit.
"""
from __future__ import annotations

import importlib
import pkgutil

from figures.output import Output

__all__ = ["discover", "aliases"]


def discover() -> tuple[Output, ...]:
    """Every ``OUTPUT`` declared by a public module of this package, sorted by ``order``.

    ``ValueError`` when two outputs claim the same name or alias.
    """
    found: list[Output] = []
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        output = getattr(module, "OUTPUT", None)
        if isinstance(output, Output):
            found.append(output)
    found.sort(key=lambda output: (output.order, output.name))
    names = [name for output in found for name in (output.name, *output.aliases)]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"outputs: expected unique names and aliases, got {duplicates} twice")
    return tuple(found)


def aliases(outputs: tuple[Output, ...]) -> dict[str, str]:
    """``{alias: name}`` over ``outputs`` (``fig8 -> fig7``, ``table7 -> table5``, ...)."""
    return {alias: output.name for output in outputs for alias in output.aliases}
