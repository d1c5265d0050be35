"""The ``cronofy-async`` command."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cronofy-async", description="Cronofy Scheduler API tools from cronofy_async."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    fake = commands.add_parser(
        "fake-server",
        help="serve a fake Cronofy on loopback (needs cronofy-async[testing])",
        description="Serve a fake Cronofy for manual tests and demos.",
    )
    from .testing._cli import add_arguments

    add_arguments(fake)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``cronofy-async`` command; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.command == "fake-server":
        from .testing._cli import run_from_arguments

        return run_from_arguments(args)
    raise AssertionError(args.command)  # pragma: no cover - argparse refuses the others
