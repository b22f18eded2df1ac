"""Entry point of ``python -m repsim`` and of the ``repsim`` console script."""
from __future__ import annotations

import sys

from repsim.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
