"""
Memory of a long streamed batch (target T4): peak RSS growth for N creates.

Streams N creates through ``api.iter_create_scheduler_requests`` against the in-process fake
(ledger off, pacing off) in a fresh process, and reports how far the peak resident set grew
over the process's size once warmed up. Run for 10,000 and 100,000 to show it is flat::

    python -m bench.memory --creates 100000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
from collections.abc import Iterator

from cronofy_async import Event, Host, NewSchedulerRequest, Outcome, Recipient
from cronofy_async.testing import FakeCronofy


def invites(count: int) -> Iterator[NewSchedulerRequest]:
    """A generator: the input is never held in memory."""
    for i in range(count):
        yield NewSchedulerRequest(
            host=Host(sub="acc_1"),
            recipients=[Recipient(email=f"person{i}@example.com")],
            event=Event(summary="Memory benchmark"),
        )


def peak_rss_mb() -> float:
    """The process's peak resident set so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def run(creates: int) -> dict[str, float]:
    """Stream `creates` creates; return the peak RSS growth and the count created."""
    fake = FakeCronofy(members=["acc_1"], rate_limit=None, record=False)
    async with fake.api(rate_limit=None) as api:
        async for _ in api.iter_create_scheduler_requests(invites(500)):
            pass  # warm up: imports, pool, caches
        baseline = peak_rss_mb()
        created = 0
        async for result in api.iter_create_scheduler_requests(invites(creates)):
            created += result.outcome is Outcome.CREATED
        growth = peak_rss_mb() - baseline
    return {"creates": creates, "created": created, "baseline_mb": baseline, "growth_mb": growth}


def main() -> None:
    """Run once and print a JSON line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--creates", type=int, default=100_000)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.creates))))


if __name__ == "__main__":
    main()
