"""
A process that books slots in a shared `RedisLimiter` as fast as it can, for the tests.

    python -m tests.redis_booker URL NAMESPACE COUNT PER_SECOND PER_MINUTE BURST START_AT

Waits until the wall clock reaches START_AT (so every process starts together), books COUNT
slots without waiting for them (the limiter's own booking step), and prints them as JSON.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from cronofy_async import RateLimit
from cronofy_async.redis import RedisLimiter


def _limit(text: str) -> int | None:
    return None if text == "none" else int(text)


async def book(url: str, namespace: str, count: int, limit: RateLimit, start_at: float) -> None:
    """Book `count` slots from `start_at` on; print their admissions (us, Redis's clock)."""
    async with RedisLimiter(url, limit, namespace=namespace) as limiter:
        await limiter._reserve("warm-up", 0)  # connect before the start line
        await limiter._connection().client.zrem(limiter.keys.log, "warm-up")
        await asyncio.sleep(max(0.0, start_at - time.time()))
        admits = [
            (await limiter._reserve(f"{namespace}-{i}-{time.perf_counter_ns()}", 0))[1]
            for i in range(count)
        ]
    print(json.dumps(admits))


if __name__ == "__main__":
    url, namespace, count, per_second, per_minute, burst, start_at = sys.argv[1:8]
    limit = RateLimit(
        per_second=_limit(per_second), per_minute=_limit(per_minute), burst=burst == "burst"
    )
    asyncio.run(book(url, namespace, int(count), limit, float(start_at)))
