"""What the query, cancel and members commands share: where to connect, and how to say it."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Final

from .._client import SECRET_ENV, AsyncSchedulerAPI
from .._ratelimit import RateLimit
from ._args import RefuseSecret, read_secret_file

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "add_connection_arguments",
    "describe",
    "open_api",
]

EXIT_OK: Final = 0
"""Everything asked for was done."""
EXIT_FAILED: Final = 1
"""Something asked for was not done (not found, refused, failed); the output says what."""
EXIT_USAGE: Final = 2
"""The command could not start: bad options, no secret, a malformed id."""


def add_connection_arguments(parser: argparse.ArgumentParser, *, json: bool = True) -> None:
    """Where to send, and with which secret (never on the command line); ``--json`` too."""
    parser.add_argument("--data-center", help="us, au, ca, de, sg or uk (default: us)")
    parser.add_argument("--base-url", help="send to this URL instead (a proxy, a fake server)")
    parser.add_argument(
        "--client-secret-file",
        type=Path,
        metavar="PATH",
        help=f"read the secret here, not {SECRET_ENV}",
    )
    parser.add_argument("--client-secret", action=RefuseSecret, help=argparse.SUPPRESS)
    if json:
        parser.add_argument("--json", action="store_true", help="one JSON object per line")


def open_api(args: argparse.Namespace, *, secret: str | None = None) -> AsyncSchedulerAPI:
    """
    The API object the options describe, paced at Cronofy's limits.

    Raises `CronofyError` (no secret, bad data center) or ``OSError`` (unreadable secret file).
    """
    if secret is None and args.client_secret_file is not None:
        secret = read_secret_file(args.client_secret_file)
    if secret is None:
        secret = os.environ.get(SECRET_ENV)
    return AsyncSchedulerAPI(
        secret, data_center=args.data_center, base_url=args.base_url, rate_limit=RateLimit()
    )


def describe(error: BaseException) -> str:
    """An error as one line of output."""
    return " ".join((str(error) or type(error).__name__).split())
