"""One error policy for the project's three command lines (``repsim``, ``meta``, ``figures``).

A problem with what the user gave (an argument, a file, a preset, a config value) is a
:class:`UserError`: the command prints one line ``<prog>: error: <message>`` on stderr and exits
with status 2. Anything else is a bug and propagates as a traceback. Library functions raise
``ValueError`` for bad input; a command turns those into user errors only where the user's input
enters, with :func:`user_input`, so a ``ValueError`` from deep inside the work is still a
traceback.
"""
from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator, Sequence

__all__ = ["UserError", "user_input", "run_cli", "one_line"]


class UserError(Exception):
    """A problem with the user's input: reported as one line, exit status 2."""


@contextlib.contextmanager
def user_input(label: str | None = None) -> Iterator[None]:
    """Re-raise ``ValueError`` and ``OSError`` from the block as :class:`UserError` (prefixed by
    ``label`` when given). Wrap only the code that reads what the user gave."""
    try:
        yield
    except (ValueError, OSError) as err:
        text = str(err) or type(err).__name__
        raise UserError(f"{label}: {text}" if label else text) from err


def one_line(message: object) -> str:
    """``message`` with every run of whitespace (newlines included) as one space."""
    return " ".join(str(message).split())


def run_cli(prog: str, main: Callable[[Sequence[str] | None], int],
            argv: Sequence[str] | None = None) -> int:
    """Call ``main(argv)`` under the policy; return its exit status (2 on a :class:`UserError`,
    1 when stdout was closed early, e.g. ``| head``)."""
    try:
        return main(argv)
    except UserError as err:
        sys.stderr.write(f"{prog}: error: {one_line(err)}\n")
        return 2
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
