"""
The ``cronofy-async`` command.

Exit status of ``batch`` and ``demo``: 0 when every row is created (now or in an earlier run),
1 when some row is not (failed, unknown, not sent, bad, or skipped as unknown), 2 when the
command could not start, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Coroutine, Sequence
from typing import Any

from . import _cancel, _members, _query
from ._batch_command import EXIT_INTERRUPTED, run_batch
from ._batch_command import add_arguments as add_batch_arguments
from ._demo import add_arguments as add_demo_arguments
from ._demo import run_demo

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cronofy-async", description="Cronofy Scheduler API tools from cronofy_async."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_batch_arguments(
        commands.add_parser(
            "batch",
            help="invite every recipient of a CSV or JSONL file, resumably",
            description=(
                "Create one scheduler request per input row. Results are appended to --output "
                "as they come; re-running the same command resumes: created rows are skipped, "
                "rows whose outcome is unknown are not re-sent without --resend-unknown. "
                "The secret comes from CRONOFY_CLIENT_SECRET or --client-secret-file. "
                "Exit status: 0 every row created, 1 some row not, 2 could not start, "
                "130 interrupted."
            ),
        )
    )
    add_demo_arguments(
        commands.add_parser(
            "demo",
            help="run a batch against a fake Cronofy on loopback (needs cronofy-async[cli])",
            description="Start a fake Cronofy, write a sample input and run the batch on it.",
        )
    )
    _query.add_arguments(
        commands.add_parser(
            "query",
            help="what became of scheduling requests (did the recipient pick a time?)",
            description="Query scheduling requests by id. Exit status: 0 every id found, "
            "1 some id not found or a query failed, 2 could not start.",
        )
    )
    _cancel.add_arguments(
        commands.add_parser(
            "cancel",
            help="cancel scheduling requests (safe to run again)",
            description="Cancel scheduling requests by id; cancelling twice is not an error. "
            "Exit status: 0 every id cancelled, 1 some id not, 2 could not start.",
        )
    )
    _members.add_arguments(
        commands.add_parser(
            "members",
            help="list the Organizational Unit's members (or --resources)",
            description="List who can host, over every page: a table, or --json lines.",
        )
    )
    from ..testing._cli import add_arguments as add_fake_arguments

    add_fake_arguments(
        commands.add_parser(
            "fake-server",
            help="serve a fake Cronofy on loopback (needs cronofy-async[testing])",
            description="Serve a fake Cronofy for manual tests and demos.",
        )
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``cronofy-async`` command; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.command == "fake-server":
        from ..testing._cli import run_from_arguments

        return run_from_arguments(args)
    run: Coroutine[Any, Any, int]
    if getattr(args, "run", None) is not None:  # query, cancel, members
        run = args.run(args)
    else:
        run = run_batch(args) if args.command == "batch" else run_demo(args)
    try:
        return asyncio.run(run)
    except (KeyboardInterrupt, asyncio.CancelledError):
        # Everything that completed, and every row in flight (as unknown), is in the results.
        return EXIT_INTERRUPTED
