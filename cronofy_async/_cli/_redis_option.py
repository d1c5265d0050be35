"""``batch --redis-url URL [--namespace NAME]``: several batch processes share one budget."""

from __future__ import annotations

import argparse
import os

from .._errors import ConfigurationError
from .._ratelimit import Limiter, RateLimit

__all__ = ["DEFAULT_NAMESPACE", "REDIS_URL_ENV", "aclose", "add_arguments", "rate_limit"]

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


async def aclose(limiter: RateLimit | Limiter | None) -> None:
    """Close the Redis connection `rate_limit` opened, if it opened one."""
    close = getattr(limiter, "aclose", None)
    if close is not None:
        await close()
