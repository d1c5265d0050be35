"""What every subcommand of ``cronofy-async`` is: a name, its options and how it runs."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Final

import attrs

__all__ = ["EXIT_INTERRUPTED", "EXIT_USAGE", "Command", "run_async"]

EXIT_USAGE: Final = 2
"""The command could not start: bad options, no secret, unusable input or output."""
EXIT_INTERRUPTED: Final = 130
"""Interrupted (Ctrl-C)."""


@attrs.frozen(kw_only=True)
class Command:
    """
    One subcommand: its module makes one of these, and the parser lists them all.

    A new subcommand is a new module with a ``COMMAND`` and one line in ``_cli.COMMANDS``.
    """

    name: str
    help: str
    """One line for ``cronofy-async --help``."""
    description: str
    """A paragraph for ``cronofy-async NAME --help``."""
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    """Runs the command with its parsed options; returns the exit status."""


def run_async(coroutine: Coroutine[Any, Any, int]) -> int:
    """Run a command's coroutine to its exit status; Ctrl-C ends it with 130, no traceback."""
    try:
        return asyncio.run(coroutine)
    except (KeyboardInterrupt, asyncio.CancelledError):
        # Whatever the command recorded before the interrupt stays recorded.
        return EXIT_INTERRUPTED
