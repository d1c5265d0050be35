"""The fake server's command line, shared by ``cronofy-async fake-server``."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Sequence

from .._ratelimit import RateLimit
from ._fake import DEFAULT_SECRET, FakeCronofy
from ._faults import Faults

__all__ = ["add_arguments", "main", "run_from_arguments"]

_FAULTS = ("rate_limited", "unavailable", "drop_before", "error_after_create", "drop_after", "slow")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the fake server's options to `parser`."""
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8000, help="port (0 for any free one)")
    parser.add_argument(
        "--secret",
        action="append",
        dest="secrets",
        metavar="SECRET",
        help=f"an accepted client secret (repeatable; default {DEFAULT_SECRET})",
    )
    parser.add_argument(
        "--member",
        action="append",
        dest="members",
        metavar="SUB",
        help="an account sub of the Organizational Unit (repeatable; default: accept any)",
    )
    parser.add_argument(
        "--group-rule",
        action="append",
        dest="group_rules",
        metavar="ID",
        help="a known group rule id (repeatable; default: accept any)",
    )
    parser.add_argument("--per-second", type=int, default=50, help="rate limit per second")
    parser.add_argument("--per-minute", type=int, default=500, help="rate limit per minute")
    parser.add_argument("--no-rate-limit", action="store_true", help="enforce no rate limit")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to answers")
    parser.add_argument("--seed", type=int, default=0, help="seed for random faults")
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="KIND=P",
        help=f"inject a fault with probability P; KIND is one of: {', '.join(_FAULTS)}",
    )
    parser.add_argument(
        "--no-ledger", action="store_true", help="keep counts only (flat memory for benchmarks)"
    )
    parser.add_argument(
        "--compress", action="store_true", help="gzip answers to clients that accept it"
    )
    parser.add_argument(
        "--no-retry-after",
        action="store_true",
        help="send no Retry-After with a 429 (Cronofy documents none)",
    )


def build(args: argparse.Namespace) -> FakeCronofy:
    """The fake the parsed arguments describe."""
    probabilities: dict[str, float] = {}
    for item in args.fault:
        kind, _, value = item.partition("=")
        if kind not in _FAULTS or not value:
            raise SystemExit(
                f"--fault takes KIND=P with KIND one of {', '.join(_FAULTS)}: {item!r}"
            )
        probabilities[kind] = float(value)
    rate_limit = (
        None
        if args.no_rate_limit
        else RateLimit(per_second=args.per_second, per_minute=args.per_minute)
    )
    return FakeCronofy(
        args.secrets or [DEFAULT_SECRET],
        members=args.members,
        group_rules=args.group_rules,
        rate_limit=rate_limit,
        faults=Faults(seed=args.seed, latency=args.latency, **probabilities),
        record=not args.no_ledger,
        compress=args.compress,
        retry_after=not args.no_retry_after,
    )


def run_from_arguments(args: argparse.Namespace) -> int:
    """Serve the fake the arguments describe until interrupted."""
    from ._server import run

    fake = build(args)
    print(f"client secret: {fake.secret}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        run(fake, host=args.host, port=args.port)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m cronofy_async.testing``."""
    parser = argparse.ArgumentParser(
        prog="python -m cronofy_async.testing", description="Serve a fake Cronofy on loopback."
    )
    add_arguments(parser)
    return run_from_arguments(parser.parse_args(argv))
