"""
The ``cronofy-async`` command: one module per subcommand, each with its ``COMMAND``.

Exit status of ``batch`` and ``demo``: 0 when every row's invite exists (created now or in an
earlier run), 1 when some row's does not or may not, 2 when the command could not start
(nothing was sent), 130 when interrupted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from .._version import __version__
from . import _batch_command, _cancel, _demo, _fake_server, _mcp, _members, _query
from ._args import Parser
from ._command import Command

__all__ = ["COMMANDS", "main"]

COMMANDS: Final[tuple[Command, ...]] = (
    _batch_command.COMMAND,
    _query.COMMAND,
    _cancel.COMMAND,
    _members.COMMAND,
    _mcp.COMMAND,
    _demo.COMMAND,
    _fake_server.COMMAND,
)
"""Every subcommand, in the order ``--help`` lists them."""


def _parser() -> Parser:
    parser = Parser(
        prog="cronofy-async", description="Cronofy Scheduler API tools from cronofy_async."
    )
    parser.add_argument("--version", action="version", version=f"cronofy-async {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        sub = commands.add_parser(command.name, help=command.help, description=command.description)
        command.add_arguments(sub)
        sub.set_defaults(run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``cronofy-async`` command; returns the exit status."""
    args = _parser().parse_args(argv)
    status: int = args.run(args)
    return status
