"""
Pacing against a server that enforces a rate limit by arrivals (issue targets T3).

The fake Cronofy runs in its own process on its own core, enforcing per-second and per-minute
limits scaled up so the run is short; the client creates N requests with pacing on (the default
headroom) and off. Reported: achieved rate against the binding limit, and the count of 429s.

    python -m bench.pacing [--creates 1000] [--per-second 100] [--per-minute 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from typing import Literal

from cronofy_async import AsyncSchedulerAPI, Event, Host, NewSchedulerRequest, RateLimit, Recipient

from .fake_server import SECRET, start_fake


def invite(i: int) -> NewSchedulerRequest:
    """The i-th create of the run."""
    return NewSchedulerRequest(
        host=Host(sub="acc_1"),
        recipients=[Recipient(email=f"person{i}@example.com")],
        event=Event(summary="Pacing benchmark"),
    )


Backend = Literal["httpx", "aiohttp"]


async def run(
    url: str, creates: int, rate_limit: RateLimit | None, backend: Backend
) -> tuple[float, int, int]:
    """Create `creates` requests; return (seconds, 429s seen, errors)."""
    async with AsyncSchedulerAPI(
        SECRET, base_url=url, rate_limit=rate_limit, http_backend=backend
    ) as api:
        results = []
        start = time.monotonic()
        async with api.iter_create_scheduler_requests(
            (invite(i) for i in range(creates)), concurrency=20
        ) as stream:
            results = [result async for result in stream]
        elapsed = time.monotonic() - start
    errors = sum(1 for r in results if r.error is not None)
    retried = sum(r.attempts - 1 for r in results)
    return elapsed, retried, errors


def main() -> None:
    """Run pacing on and off against the same enforced limit; print one line each."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--creates", type=int, default=1000)
    parser.add_argument("--per-second", type=int, default=100)
    parser.add_argument("--per-minute", type=int, default=3000)
    parser.add_argument("--backend", choices=("httpx", "aiohttp"), default="httpx")
    args = parser.parse_args()
    cores = sorted(os.sched_getaffinity(0))
    server_core = cores[-1] if len(cores) > 1 else None
    if server_core is not None:
        os.sched_setaffinity(0, set(cores[:-1]))
    limits = ["--per-second", str(args.per_second), "--per-minute", str(args.per_minute)]
    # In a run shorter than a minute the per-minute limit is a burst allowance, not a rate.
    bound = args.per_second if args.creates <= args.per_minute else args.per_minute / 60
    for label, rate_limit in (
        ("pacing on ", RateLimit(per_second=args.per_second, per_minute=args.per_minute)),
        ("pacing off", None),
    ):
        process, url = start_fake(server_core, limits)
        try:
            elapsed, retried, errors = asyncio.run(run(url, args.creates, rate_limit, args.backend))
        finally:
            process.terminate()
            process.wait()
        # Paced (smoothly), every request counts toward the rate; unpaced, the server's first
        # window is a free burst, and the steady rate is what comes after it.
        steady = (args.creates - (1 if rate_limit else args.per_second)) / elapsed
        print(
            f"{args.backend} {label}: {args.creates} creates in {elapsed:.2f} s, "
            f"steady {steady:.1f}/s = "
            f"{steady / bound:.3f} of the {bound:g}/s limit, 429s retried {retried}, "
            f"errors {errors}"
        )


if __name__ == "__main__":
    main()
