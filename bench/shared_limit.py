"""
One rate budget shared by several processes through Redis (issue 14).

A fake Cronofy (in this process, on loopback) enforces one limit by arrivals across every
client; a real redis-server is started on a free port. Reported:

1. Several client processes (4 by default) creating invites at once: the fraction of the
   limit reached and the 429s, when they share a `RedisLimiter`, when each paces alone (the
   failure the shared limiter fixes), and when they share pyrate-limiter 4's Redis bucket
   (the other candidate).
2. What one acquire costs: client CPU and latency (a Redis round trip), against the
   in-process limiter and pyrate-limiter's Redis bucket.
3. The distributed example: N taskiq workers, one SIGKILLed mid-batch; duplicates in the
   fake's ledger and invites unaccounted for.

    python -m bench.shared_limit [--processes 4] [--creates 60] [--per-second 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import redis.asyncio

from cronofy_async import (
    AsyncSchedulerAPI,
    Event,
    Host,
    Limiter,
    NewSchedulerRequest,
    RateLimit,
    Recipient,
)
from cronofy_async._ratelimit import SlidingWindowLimiter
from cronofy_async.redis import RedisLimiter
from cronofy_async.testing import FakeCronofy
from tests.redis_server import running_redis

ROOT = Path(__file__).resolve().parent.parent
SECRET = "sk_bench_shared"
MODES = ("redis", "alone", "pyrate")
LABELS = {
    "redis": "shared RedisLimiter",
    "alone": "each process pacing alone",
    "pyrate": "shared pyrate-limiter RedisBucket",
}


def invite(tag: str, i: int) -> NewSchedulerRequest:
    """The i-th create of one client process."""
    return NewSchedulerRequest(
        host=Host(sub="acc_1"),
        recipients=[Recipient(email=f"{tag}-{i}@example.com")],
        event=Event(summary="Shared limit benchmark"),
    )


class TimedFake(FakeCronofy):
    """The fake, noting when each request it creates from arrived (its own clock)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.arrivals: list[float] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Serve as the fake does; note the arrival of each request answered 200."""
        arrived = time.monotonic()

        async def noting(message: Any) -> None:
            if message["type"] == "http.response.start" and message["status"] == 200:
                self.arrivals.append(arrived)
            await send(message)

        await super().__call__(scope, receive, noting)


class PyrateLimiter:
    """pyrate-limiter 4's Redis bucket behind the `Limiter` protocol, margin included."""

    def __init__(self, client: redis.asyncio.Redis, limit: RateLimit, key: str) -> None:
        self._client, self._limit, self._key = client, limit, key
        self._limiter: Any = None

    async def acquire(self) -> None:
        """Wait until pyrate-limiter admits one more (it polls, 50 ms past the wait)."""
        if self._limiter is None:
            from pyrate_limiter import Limiter as Pyrate
            from pyrate_limiter import Rate, RedisBucket

            rates = [Rate(count, round(seconds * 1000)) for count, seconds in self._limit.windows()]
            self._limiter = Pyrate(await RedisBucket.init(rates, self._client, self._key))
        await self._limiter.try_acquire_async(self._key)


async def client(args: argparse.Namespace) -> dict[str, Any]:
    """One client process: create `creates` invites at once from `start_at`; its figures."""
    limit = RateLimit(per_second=args.per_second, per_minute=None, margin=args.margin)
    connection = redis.asyncio.Redis.from_url(args.redis_url)
    limiter: Limiter | RateLimit
    if args.mode == "redis":
        limiter = RedisLimiter(connection, limit, namespace=args.namespace)
    elif args.mode == "pyrate":
        limiter = PyrateLimiter(connection, limit, f"pyrate-{args.namespace}")
    else:
        limiter = limit
    tag = uuid.uuid4().hex[:8]
    async with AsyncSchedulerAPI(SECRET, base_url=args.url, rate_limit=limiter) as api:
        # A process's first request pays for lazy imports and its first connection (70-100 ms
        # here), more than the 50 ms margin: arriving that late, it bunches with the requests
        # after it and can draw a 429. Warm up on a path the fake does not count (a 404), as a
        # long-running service is warm; the cold start is reported apart.
        if not args.cold:
            await api.http_client.get(f"{args.url}/warm-up")
        await asyncio.sleep(max(0.0, args.start_at - time.time()))
        started = time.time()
        async with api.iter_create_scheduler_requests(
            (invite(tag, i) for i in range(args.creates)), concurrency=10
        ) as stream:
            results = [result async for result in stream]
        finished = time.time()
    await connection.aclose()
    return {
        "created": sum(1 for r in results if r.error is None),
        "errors": sum(1 for r in results if r.error is not None),
        "started": started,
        "finished": finished,
    }


def run_clients(
    url: str, redis_url: str, mode: str, args: argparse.Namespace
) -> list[dict[str, Any]]:
    """Start every client process together; their figures."""
    start_at = time.time() + 2.0  # after the interpreters have started
    namespace = f"bench-{uuid.uuid4().hex}"
    command = [
        sys.executable, "-m", "bench.shared_limit", "client", "--url", url, "--redis-url",
        redis_url, "--mode", mode, "--namespace", namespace, "--creates", str(args.creates),
        "--per-second", str(args.per_second), "--start-at", str(start_at),
        "--margin", str(args.margin), *(["--cold"] if args.cold else []),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    processes = [
        subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT, env=env)
        for _ in range(args.processes)
    ]
    outputs = [process.communicate()[0] for process in processes]
    if any(process.returncode for process in processes):
        raise RuntimeError(f"a client process failed in mode {mode}")
    return [json.loads(output.strip().splitlines()[-1]) for output in outputs]


async def shared_limit(redis_url: str, args: argparse.Namespace) -> list[str]:
    """Part 1: several processes, one limit the fake enforces by arrivals."""
    lines = []
    for mode in args.modes:
        fake = TimedFake(
            [SECRET],
            rate_limit=RateLimit(per_second=args.per_second, per_minute=None),
            record=False,
        )
        async with fake.serve() as url:
            figures = await asyncio.to_thread(run_clients, url, redis_url, mode, args)
        created = len(fake.arrivals)
        elapsed = fake.arrivals[-1] - fake.arrivals[0]
        # The rate the server saw. Paced smoothly, every arrival but the first counts toward
        # it; pyrate-limiter bursts, and the server's first window is then a free burst.
        free = args.per_second if mode == "pyrate" else 1
        fraction = (created - free) / elapsed / args.per_second
        lines.append(
            f"{LABELS[mode]}{' (cold start)' if args.cold else ''}"
            f"{f' (margin {args.margin:g} s)' if args.margin != 0.05 else ''}: "
            f"{args.processes} processes x {args.creates} creates, arriving over "
            f"{elapsed:.2f} s: {fraction:.3f} of the {args.per_second}/s limit, "
            f"429s {fake.outcomes['429']}, failed {sum(f['errors'] for f in figures)}"
        )
        print(lines[-1], flush=True)
    return lines


async def acquire_cost(redis_url: str, acquires: int) -> list[str]:
    """Part 2: client CPU and latency of one acquire that does not wait."""
    limit = RateLimit(per_second=1_000_000, per_minute=None, burst=True)
    connection = redis.asyncio.Redis.from_url(redis_url)
    candidates: list[tuple[str, Any]] = [
        ("in-process SlidingWindowLimiter", SlidingWindowLimiter(limit)),
        ("RedisLimiter (Lua script)", RedisLimiter(connection, limit, namespace="cost")),
        ("pyrate-limiter RedisBucket", PyrateLimiter(connection, limit, "pyrate-cost")),
    ]
    lines = []
    for label, limiter in candidates:
        for _ in range(200):  # warm up: connection, script cache
            await limiter.acquire()
        latencies = []
        cpu = time.process_time()
        for _ in range(acquires):
            start = time.perf_counter()
            await limiter.acquire()
            latencies.append(time.perf_counter() - start)
        cpu = time.process_time() - cpu
        latencies.sort()
        lines.append(
            f"{label}: client CPU {cpu / acquires * 1e6:.0f} us/acquire, latency p50 "
            f"{statistics.median(latencies) * 1e6:.0f} us, p99 "
            f"{latencies[int(len(latencies) * 0.99)] * 1e6:.0f} us ({acquires} acquires)"
        )
        print(lines[-1], flush=True)
    await connection.aclose()
    return lines


async def distributed(redis_url: str, args: argparse.Namespace) -> list[str]:
    """Part 3: the distributed example with a worker SIGKILLed mid-batch."""
    from examples.distributed.__main__ import produce
    from examples.distributed.ledger import FINAL, Invite, Ledger, State

    namespace = f"bench-dist-{uuid.uuid4().hex}"
    count = args.invites
    fake = FakeCronofy(
        [SECRET], members=["acc_1"], rate_limit=RateLimit(per_second=args.per_second * 2)
    )
    invites = [
        Invite(id=f"inv-{i:05}", email=f"d{i}@example.com", host="acc_1", summary="Hi")
        for i in range(count)
    ]
    connection = redis.asyncio.Redis.from_url(redis_url)
    ledger = Ledger(connection, namespace)
    async with fake.serve() as url:
        await produce(redis_url, namespace, iter(invites))
        command = [
            sys.executable, "-m", "examples.distributed", "worker", "--redis-url", redis_url,
            "--namespace", namespace, "--per-second", str(args.per_second * 2),
            "--per-minute", "none", "--reclaim-after", "5", "--lease", "5", "--base-url", url,
        ]  # fmt: skip
        env = {**os.environ, "CRONOFY_CLIENT_SECRET": SECRET, "PYTHONPATH": str(ROOT)}
        started = time.monotonic()
        workers = [
            await asyncio.create_subprocess_exec(*command, env=env, cwd=ROOT, stderr=-3, stdout=-3)
            for _ in range(args.workers)
        ]
        while fake.created_count < count // 2:  # noqa: ASYNC110 - polling the fake's count
            await asyncio.sleep(0.05)
        workers[0].kill()
        await workers[0].wait()
        while True:
            states = [invite.state async for invite in ledger.all()]
            if len(states) == count and set(states) <= FINAL:
                break
            await asyncio.sleep(0.2)
        elapsed = time.monotonic() - started
        for worker in workers[1:]:
            worker.terminate()
            await worker.wait()
    await connection.aclose()
    tally = ", ".join(f"{state}={states.count(state)}" for state in State if states.count(state))
    line = (
        f"{args.workers} workers, {count} invites, worker 1 SIGKILLed at half: "
        f"{elapsed:.1f} s, ledger: {tally}; duplicates in the fake's ledger "
        f"{len(fake.duplicates())}, accounted for {len(states)}/{count}, "
        f"429s {fake.outcomes['429']}"
    )
    print(line, flush=True)
    return [line]


async def main_async(args: argparse.Namespace) -> None:
    """Every part, against one redis-server started for the run."""
    with running_redis() as server:
        print(f"redis-server: {server.binary}", flush=True)
        await shared_limit(server.url, args)
        await acquire_cost(server.url, args.acquires)
        if args.invites:
            await distributed(server.url, args)


def main() -> None:
    """Parse the command line and run (or run one client process)."""
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command")
    one = sub.add_parser("client")
    one.add_argument("--url", required=True)
    one.add_argument("--redis-url", required=True)
    one.add_argument("--mode", choices=MODES, required=True)
    one.add_argument("--namespace", required=True)
    one.add_argument("--creates", type=int, required=True)
    one.add_argument("--per-second", type=int, required=True)
    one.add_argument("--start-at", type=float, required=True)
    one.add_argument("--cold", action="store_true")
    one.add_argument("--margin", type=float, required=True)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--creates", type=int, default=60, help="per process")
    parser.add_argument("--per-second", type=int, default=20)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--acquires", type=int, default=3000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--invites", type=int, default=400, help="0 skips the example")
    parser.add_argument("--cold", action="store_true", help="no warm-up request first")
    parser.add_argument("--margin", type=float, default=0.05, help="RateLimit.margin")
    args = parser.parse_args()
    if args.command == "client":
        print(json.dumps(asyncio.run(client(args))))
        return
    args.modes = args.modes.split(",")
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
