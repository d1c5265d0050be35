"""
What an idempotency ledger costs a batch (issue 22): CPU per create and throughput, per ledger.

Every create of the batch API under its own idempotency key, with no ledger (no keys), a
`MemoryLedger`, a `SQLiteLedger` (a fresh file on local disk, WAL, full sync) and a
`RedisLedger` (a redis-server on loopback; its own CPU is not counted, the client's
redis-py is). Each configuration in a fresh process pinned to the client cores, interleaved,
repeated; medians and min..max. Targets: SQLiteLedger adds at most 0.5x to the CPU per
create at C=10 with no server delay, and keeps >= 0.9x the throughput at C=50 with a 50 ms
server. Prints the report's lines::

    python -m bench.ledger [--backends httpx,aiohttp]
"""

from __future__ import annotations

import argparse
import statistics
from collections import defaultdict
from typing import Any

from tests.redis_server import running_redis

from .client import LEDGERS
from .fake_server import start_fake
from .runs import client_cores, fmt, progress, run_client

BACKENDS = {"httpx": "cronofy-batch", "aiohttp": "cronofy-aiohttp-batch"}
CONFIGS = ((0.0, 10), (0.05, 50))


def main() -> None:
    """Run every configuration; print the report's lines."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backends", default="httpx,aiohttp")
    parser.add_argument("--requests", type=int, default=4000, help="per run with no delay")
    parser.add_argument("--slow-requests", type=int, default=2000, help="per run at 50 ms")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    cores, server_core = client_cores()
    backends = args.backends.split(",")
    results: dict[tuple[str, float, str], list[dict[str, Any]]] = defaultdict(list)
    with running_redis() as redis:
        for delay, concurrency in CONFIGS:
            extra = ["--no-rate-limit"] + (["--latency", str(delay)] if delay else [])
            process, url = start_fake(server_core, extra)
            try:
                requests = args.requests if delay == 0 else args.slow_requests
                for repeat in range(args.repeats if delay == 0 else 3):
                    for backend in backends:
                        for ledger in LEDGERS:  # interleaved: each repeat runs them all
                            result = run_client(
                                BACKENDS[backend], url, concurrency, requests, cores,
                                "--ledger", ledger, "--redis-url", redis.url,
                            )  # fmt: skip
                            results[(backend, delay, ledger)].append(result)
                            progress(
                                f"[{repeat + 1}] {backend} delay {delay * 1000:.0f} ms "
                                f"C={concurrency} {ledger}",
                                result,
                            )
            finally:
                process.terminate()
                process.wait()
    for line in report(results, backends):
        print(line)


def report(
    results: dict[tuple[str, float, str], list[dict[str, Any]]], backends: list[str]
) -> list[str]:
    """The markdown table: CPU at C=10 no delay, throughput at C=50 50 ms, ratios to none."""
    lines = [
        "| backend | ledger | CPU/create C=10, 0 ms (us) | x no ledger | "
        "creates/s C=50, 50 ms | x no ledger | errors |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for backend in backends:
        base_cpu = statistics.median(r["cpu_us"] for r in results[(backend, 0.0, "none")])
        base_rps = statistics.median(r["rps"] for r in results[(backend, 0.05, "none")])
        for ledger in LEDGERS:
            fast = results[(backend, 0.0, ledger)]
            slow = results[(backend, 0.05, ledger)]
            cpu = [r["cpu_us"] for r in fast]
            rps = [r["rps"] for r in slow]
            errors = sum(r["errors"] for r in fast + slow)
            lines.append(
                f"| {backend} | {ledger} | {fmt(cpu)} | "
                f"{statistics.median(cpu) / base_cpu:.2f} | {fmt(rps)} | "
                f"{statistics.median(rps) / base_rps:.2f} | {errors} |"
            )
    return lines


if __name__ == "__main__":
    main()
