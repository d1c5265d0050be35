"""The process's standard streams, which may be missing (a GUI launcher, a closed pipe)."""

from __future__ import annotations

import io
import sys
from typing import IO

__all__ = ["stderr", "stdout"]


def stdout() -> IO[str]:
    """``sys.stdout``, or a sink if the process has none."""
    return sys.stdout if sys.stdout is not None else io.StringIO()


def stderr() -> IO[str]:
    """``sys.stderr``, or a sink if the process has none."""
    return sys.stderr if sys.stderr is not None else io.StringIO()
