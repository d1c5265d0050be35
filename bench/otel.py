"""
What OpenTelemetry costs a create (issue 24): absent, installed with no provider, reporting.

Single `create_scheduler_request` calls at C=10 against the fake on loopback with no server
delay, on each HTTP backend, in three states: ``absent`` (``import opentelemetry`` fails, as
without the ``otel`` extra), ``no-provider`` (installed, no provider set: the default of an
application that does not use it) and ``provider`` (the SDK's tracer and meter providers set
globally; spans go through a ``BatchSpanProcessor`` to an exporter that drops them, so the cost
is the library's and the SDK's, not a network's). Each run in a fresh process pinned to the
client cores, the states interleaved, repeated; medians and min..max. Target: ``no-provider``
within 3% of ``absent``. Prints the report's lines::

    python -m bench.otel [--backends httpx,aiohttp] [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
from collections import defaultdict
from typing import Any

from .client import OTEL_MODES
from .fake_server import start_fake
from .runs import client_cores, fmt, progress, run_client

BACKENDS = {"httpx": "cronofy", "aiohttp": "cronofy-aiohttp"}
CONCURRENCY = 10


def main() -> None:
    """Run every configuration; print the report's lines."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backends", default="httpx,aiohttp")
    parser.add_argument("--requests", type=int, default=5000, help="per run")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    cores, server_core = client_cores()
    backends = args.backends.split(",")
    results: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    process, url = start_fake(server_core, ["--no-rate-limit"])
    try:
        for repeat in range(args.repeats):
            for backend in backends:
                for mode in OTEL_MODES:  # interleaved: each repeat runs them all
                    result = run_client(
                        BACKENDS[backend], url, CONCURRENCY, args.requests, cores, "--otel", mode
                    )
                    results[(backend, mode)].append(result)
                    progress(f"[{repeat + 1}] {backend} {mode}", result)
    finally:
        process.terminate()
        process.wait()
    for line in report(results, backends):
        print(line)


def report(results: dict[tuple[str, str], list[dict[str, Any]]], backends: list[str]) -> list[str]:
    """The markdown table: CPU per create and throughput per state, as ratios to ``absent``."""
    lines = [
        "| backend | OpenTelemetry | CPU/create C=10, 0 ms (us) | x absent | creates/s | "
        "x absent | errors |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for backend in backends:
        base_cpu = statistics.median(r["cpu_us"] for r in results[(backend, "absent")])
        base_rps = statistics.median(r["rps"] for r in results[(backend, "absent")])
        for mode in OTEL_MODES:
            runs = results[(backend, mode)]
            cpu = [r["cpu_us"] for r in runs]
            rps = [r["rps"] for r in runs]
            lines.append(
                f"| {backend} | {mode} | {fmt(cpu)} | {statistics.median(cpu) / base_cpu:.3f} | "
                f"{fmt(rps)} | {statistics.median(rps) / base_rps:.3f} | "
                f"{sum(r['errors'] for r in runs)} |"
            )
    return lines


if __name__ == "__main__":
    main()
