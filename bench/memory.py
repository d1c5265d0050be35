"""
Scale in N (target T4): peak RSS growth and steady throughput for N lazily generated creates.

Streams N creates through ``api.iter_create_scheduler_requests`` against the in-process fake
(ledger off, pacing off) in a fresh process, and reports how far the peak resident set grew
over the process's size once warmed up, and the throughput of the first and last tenth of the
run, per second of wall time and per second of the process's CPU. Run for 10,000 and
1,000,000 to show both are flat::

    python -m bench.memory --creates 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import resource
import time
from collections.abc import Iterator
from typing import Any

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


async def run(creates: int) -> dict[str, Any]:
    """Stream `creates` creates; the peak RSS growth, the count created, the throughput."""
    fake = FakeCronofy(members=["acc_1"], rate_limit=None, record=False)
    tenth = max(1, creates // 10)
    marks: list[float] = []
    cpu_marks: list[float] = []
    async with fake.api(rate_limit=None) as api:
        # Warm up (imports, pool, caches, and a machine that speeds up under load for the first
        # seconds): 2% of the run, at least 500 and at most 20,000 items.
        warm_up = min(max(500, creates // 50), 20_000)
        async for _ in api.iter_create_scheduler_requests(invites(warm_up)):
            pass
        baseline = peak_rss_mb()
        created = 0
        done = 0
        marks.append(time.perf_counter())
        cpu_marks.append(time.process_time())
        async for result in api.iter_create_scheduler_requests(invites(creates)):
            created += result.outcome is Outcome.CREATED
            done += 1
            if done % tenth == 0:
                marks.append(time.perf_counter())
                cpu_marks.append(time.process_time())
        growth = peak_rss_mb() - baseline
    first = tenth / (marks[1] - marks[0])
    last = tenth / (marks[10] - marks[9]) if len(marks) > 10 else first
    # The same per second of the process's own CPU: the run is CPU-bound (the fake is in
    # process), and a shared machine's wall clock also counts time other tenants took.
    first_cpu = tenth / (cpu_marks[1] - cpu_marks[0])
    last_cpu = tenth / (cpu_marks[10] - cpu_marks[9]) if len(cpu_marks) > 10 else first_cpu
    return {
        "creates": creates,
        "created": created,
        "baseline_mb": baseline,
        "growth_mb": growth,
        "first_tenth_rps": first,
        "last_tenth_rps": last,
        "last_over_first": last / first,
        "first_tenth_per_cpu_s": first_cpu,
        "last_tenth_per_cpu_s": last_cpu,
        "last_over_first_cpu": last_cpu / first_cpu,
        "per_cpu_s_by_tenth": [tenth / (b - a) for a, b in itertools.pairwise(cpu_marks)],
    }


def main() -> None:
    """Run once and print a JSON line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--creates", type=int, default=100_000)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.creates))))


if __name__ == "__main__":
    main()
