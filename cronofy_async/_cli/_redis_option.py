"""
``batch --redis-url URL [--namespace NAME]`` and ``--ledger PATH``: what batch processes share.

Under ``--redis-url`` they share one pace and one idempotency ledger in Redis; ``--ledger``
keeps the ledger in a SQLite file instead, for the processes of one machine. Either way two
processes given overlapping inputs invite each row once.
"""

from __future__ import annotations

import argparse
import os

from .._errors import ConfigurationError
from .._ledger import Ledger
from .._ratelimit import Limiter, RateLimit
from .._sqlite_ledger import SQLiteLedger

__all__ = [
    "DEFAULT_NAMESPACE",
    "REDIS_URL_ENV",
    "aclose",
    "add_arguments",
    "add_ledger_argument",
    "ledger",
    "rate_limit",
]

DEFAULT_NAMESPACE = "cronofy-async"
REDIS_URL_ENV = "CRONOFY_REDIS_URL"
"""Where ``--redis-url`` is read by default: a password in a URL on the command line shows in ps."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--redis-url`` and ``--namespace`` to `parser`."""
    parser.add_argument(
        "--redis-url",
        metavar="URL",
        default=os.environ.get(REDIS_URL_ENV) or None,
        help="share the pace with every process using this Redis and namespace "
        "(needs cronofy-async[redis]); give every process the same --per-second/--per-minute. "
        f"Default ${REDIS_URL_ENV}, which keeps a password out of ps",
    )
    parser.add_argument(
        "--namespace",
        default=DEFAULT_NAMESPACE,
        metavar="NAME",
        help=f"the shared budget's name in Redis (default {DEFAULT_NAMESPACE})",
    )


def add_ledger_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--ledger PATH`` to `parser`."""
    parser.add_argument(
        "--ledger",
        metavar="PATH",
        default=None,
        help="keep each row's idempotency key in this SQLite file, so that batch processes "
        "of this machine given overlapping inputs invite each row once (under --redis-url "
        "the keys are kept in Redis instead)",
    )


def ledger(args: argparse.Namespace) -> Ledger | None:
    """The idempotency ledger the batch shares: Redis under ``--redis-url``, else ``--ledger``."""
    url = getattr(args, "redis_url", None)
    path = getattr(args, "ledger", None)
    if url is not None and path is not None:
        raise ConfigurationError(
            "--ledger and --redis-url: under --redis-url the idempotency keys are kept in "
            "Redis; give one of them"
        )
    if url is not None:
        try:
            from ..redis import RedisLedger
        except ImportError:  # pragma: no cover - exercised only without the extra
            raise ConfigurationError(
                "--redis-url needs redis-py: pip install 'cronofy-async[redis]'"
            ) from None
        return RedisLedger(url, namespace=args.namespace)
    if path is not None:
        return SQLiteLedger(path)
    return None


def ledger_given(args: argparse.Namespace) -> bool:
    """Whether the batch keeps idempotency keys in a shared ledger (Redis or ``--ledger``)."""
    return getattr(args, "redis_url", None) is not None or getattr(args, "ledger", None) is not None


def rate_limit(args: argparse.Namespace, limit: RateLimit | None) -> RateLimit | Limiter | None:
    """`limit` as the batch paces by: shared through Redis when ``--redis-url`` is given."""
    url = getattr(args, "redis_url", None)  # the demo builds its own arguments, without it
    if url is None:
        return limit
    if limit is None:
        raise ConfigurationError("--redis-url shares the pace: it cannot go with --no-pacing")
    try:
        from ..redis import RedisLimiter
    except ImportError:  # pragma: no cover - exercised only without the extra
        raise ConfigurationError(
            "--redis-url needs redis-py: pip install 'cronofy-async[redis]'"
        ) from None
    return RedisLimiter(url, limit, namespace=args.namespace)


async def aclose(*opened: RateLimit | Limiter | Ledger | None) -> None:
    """Close what `rate_limit` and `ledger` opened (a Redis connection, a SQLite file)."""
    for thing in opened:
        close = getattr(thing, "aclose", None)
        if close is not None:
            await close()
