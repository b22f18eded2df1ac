"""What every run configuration shares: JSON round trip and validated copies.

>>> from meta.config import TrainConfig
>>> TrainConfig.from_dict(TrainConfig().to_dict()) == TrainConfig()
True
"""
from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

__all__ = ["ConfigMixin"]

C = TypeVar("C", bound="ConfigMixin")


class ConfigMixin:
    """JSON round trip and validated ``replace`` for a frozen dataclass whose fields are plain
    values or tuples (tuples are lists in JSON)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(self).items()}  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[C], d: dict[str, Any]) -> C:
        """Inverse of :meth:`to_dict`; unknown keys are a ValueError."""
        known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"config: expected fields from {sorted(known)}, got unknown {unknown}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

    def replace(self: C, **fields: Any) -> C:
        """A copy with ``fields`` changed (validated; unknown names are a ValueError)."""
        known = {f.name for f in dataclasses.fields(self)}  # type: ignore[arg-type]
        unknown = sorted(set(fields) - known)
        if unknown:
            raise ValueError(f"fields: expected names from {sorted(known)}, got unknown {unknown}")
        return dataclasses.replace(self, **fields)  # type: ignore[type-var]

