"""
The benchmark suite: ``nox -s bench`` (or ``python -m bench.run``).

A fake Cronofy per server delay runs in its own process, pinned to the last core; every
configuration runs in a fresh client process pinned to the others, configurations interleaved,
each repeated. Medians and min..max are reported, with the server's own CPU per request so it
can be seen not to be the bottleneck. Writes ``docs/benchmarks.md`` and ``docs/benchmarks.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from .fake_server import cpu_seconds, start_fake
from .runs import client_cores, run_client

DOCS = Path(__file__).resolve().parent.parent / "docs"
CLIENTS = (
    "aiohttp",
    "httpx",
    "cronofy",
    "cronofy-batch",
    "cronofy-aiohttp",
    "cronofy-aiohttp-batch",
)
LABELS = {
    "aiohttp": "raw aiohttp",
    "httpx": "stock httpx",
    "cronofy": "default, single calls",
    "cronofy-batch": "default, batch API",
    "cronofy-aiohttp": "fast path, single calls",
    "cronofy-aiohttp-batch": "fast path, batch API",
}
MEMORY_SIZES = (10_000, 1_000_000)
OPERATIONS = ("cronofy", "cronofy-query", "cronofy-cancel")
"""Single calls of each operation on the default backend, at C=10 with no delay."""
OPERATION_LABELS = {
    "cronofy": "create_scheduler_request",
    "cronofy-query": "query_scheduling_requests (1 id)",
    "cronofy-cancel": "cancel_scheduling_request",
}
LEDGER_SECTION = [
    "## Idempotency ledgers (issue 22)",
    "",
    "`python -m bench.ledger`: the batch API with every create under its own idempotency key, "
    "against the fake on loopback, with each ledger; CPU per create at C=10 with no server "
    "delay (the client process's CPU, its database thread and redis-py included; "
    "redis-server's own not), and throughput at C=50 with a 50 ms server. Medians "
    "(min..max) of 5 and 3 interleaved runs. Targets: `SQLiteLedger` adds at most 0.5x to the "
    "CPU per create, and keeps >= 0.9x of the throughput. `SQLiteLedger`'s CPU varies from "
    "run to run more than the other ledgers': a busy machine spreads a burst's claims over "
    "more commits, and each commit is a disk sync.",
]
OTEL_SECTION = [
    "## OpenTelemetry (issue 24)",
    "",
    "`python -m bench.otel`: single `create_scheduler_request` calls at C=10 against the fake "
    "on loopback with no server delay, with OpenTelemetry absent (`import opentelemetry` "
    "fails, as without the `otel` extra), installed with no provider set, and reporting (the "
    "SDK's providers set globally, spans batched to an exporter that drops them, metrics in an "
    "in-memory reader). CPU per create is the client process's, the SDK's export thread "
    "included. Medians (min..max) of 7 interleaved runs. Target: no provider within 3% of absent.",
]
OVERHEAD = [(0.0, 1), (0.0, 10)]
SCALING = [(0.05, 10), (0.05, 50), (0.05, 100), (0.05, 200)]


def run_one(
    client: str, url: str, concurrency: int, requests: int, cores: set[int]
) -> dict[str, Any]:
    """One configuration in a fresh process; its JSON result."""
    return run_client(client, url, concurrency, requests, cores)


def _stats(values: list[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


def _fmt(values: list[float], digits: int = 0) -> str:
    median, low, high = _stats(values)
    return f"{median:.{digits}f} ({low:.{digits}f}..{high:.{digits}f})"


def main() -> None:
    """Run every scenario and write the report."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000, help="per run at 50 ms delay")
    parser.add_argument(
        "--overhead-requests",
        type=int,
        default=10_000,
        help="per run with no delay: runs of a second or two are at the mercy of a noisy machine",
    )
    parser.add_argument("--repeats", type=int, default=3, help="per configuration at 50 ms delay")
    parser.add_argument(
        "--overhead-repeats",
        type=int,
        default=7,
        help="per configuration with no delay: CPU per request drifts by 10-20%% between runs "
        "on a shared machine, so its median needs more runs than throughput at 50 ms does",
    )
    parser.add_argument("--clients", default=",".join(CLIENTS))
    parser.add_argument("--skip-slow", action="store_true", help="no pacing or memory runs")
    parser.add_argument("--skip-operations", action="store_true", help="no query/cancel runs")
    args = parser.parse_args()
    clients = args.clients.split(",")
    cores, server_core = client_cores()

    results: dict[tuple[str, float, int], list[dict[str, Any]]] = defaultdict(list)
    server_cpu: dict[float, list[float]] = defaultdict(list)
    for delay in sorted({d for d, _ in OVERHEAD + SCALING}):
        extra = ["--no-rate-limit"] + (["--latency", str(delay)] if delay else [])
        process, url = start_fake(server_core, extra)
        try:
            configs = [(c, n) for d, n in OVERHEAD + SCALING if d == delay for c in clients]
            if delay == 0.0 and not args.skip_operations:
                configs += [(c, 10) for c in OPERATIONS if c not in clients]
            repeats = args.overhead_repeats if delay == 0.0 else args.repeats
            for repeat in range(repeats):
                for client, concurrency in configs:  # interleaved: each repeat runs them all
                    before = cpu_seconds(process.pid)
                    requests = args.overhead_requests if delay == 0.0 else args.requests
                    result = run_one(client, url, concurrency, requests, cores)
                    served = requests + min(requests // 10, 200)
                    server_cpu[delay].append((cpu_seconds(process.pid) - before) / served * 1e6)
                    results[(client, delay, concurrency)].append(result)
                    where = f"delay {delay * 1000:.0f} ms C={concurrency} {client}"
                    print(
                        f"[{repeat + 1}/{repeats}] {where}: {result['rps']:.0f} req/s, "
                        f"{result['cpu_us']:.0f} us/req, errors {result['errors']}",
                        flush=True,
                    )
        finally:
            process.terminate()
            process.wait()

    pacing: list[str] = []
    shared: list[str] = []
    memory: dict[int, dict[str, Any]] = {}
    own: dict[str, dict[str, Any]] = {}
    if not args.skip_operations:
        output = subprocess.run(
            [sys.executable, "-m", "bench.operations"],
            check=True, capture_output=True, text=True,
            preexec_fn=lambda: os.sched_setaffinity(0, cores),
        ).stdout  # fmt: skip
        own = json.loads(output.strip().splitlines()[-1])
    ledgers: list[str] = []
    otel: list[str] = []
    if not args.skip_slow:
        ledgers = subprocess.run(
            [sys.executable, "-m", "bench.ledger"], check=True, capture_output=True, text=True
        ).stdout.splitlines()
        otel = subprocess.run(
            [sys.executable, "-m", "bench.otel"], check=True, capture_output=True, text=True
        ).stdout.splitlines()
        shared = subprocess.run(
            [sys.executable, "-m", "bench.shared_limit"], check=True, capture_output=True, text=True
        ).stdout.splitlines()
        for backend in ("httpx", "aiohttp"):
            pacing += subprocess.run(
                [sys.executable, "-m", "bench.pacing", "--backend", backend],
                check=True,
                capture_output=True,
                text=True,
            ).stdout.splitlines()
        for creates in MEMORY_SIZES:
            output = subprocess.run(
                [sys.executable, "-m", "bench.memory", "--creates", str(creates)],
                check=True, capture_output=True, text=True,
            ).stdout  # fmt: skip
            memory[creates] = json.loads(output.strip().splitlines()[-1])

    write_report(args, clients, results, server_cpu, pacing, memory, shared, own, ledgers, otel)
    write_plot(clients, results)


def write_report(
    args: argparse.Namespace,
    clients: list[str],
    results: dict[tuple[str, float, int], list[dict[str, Any]]],
    server_cpu: dict[float, list[float]],
    pacing: list[str],
    memory: dict[int, dict[str, Any]],
    shared: list[str] = [],  # noqa: B006 - read only
    own: dict[str, dict[str, Any]] | None = None,
    ledgers: list[str] = [],  # noqa: B006 - read only
    otel: list[str] = [],  # noqa: B006 - read only
) -> None:
    """docs/benchmarks.md: the tables, the targets, the machine, how to reproduce."""

    def rps(client: str, delay: float, c: int) -> float:
        return float(statistics.median(r["rps"] for r in results[(client, delay, c)]))

    def cpu(client: str, delay: float, c: int) -> float:
        return float(statistics.median(r["cpu_us"] for r in results[(client, delay, c)]))

    lines = [
        "# Benchmarks",
        "",
        "Produced by `nox -s bench` (`python -m bench.run`); every figure below comes from one "
        "run, so compare them as ratios. Do not edit by hand.",
        "",
        f"Machine: {os.cpu_count()} cores ({platform.machine()}), {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}. A fake Cronofy "
        "(`python -m cronofy_async.testing`, uvicorn + httptools, ledger off) runs in its own "
        "process pinned to one core; each configuration runs in a fresh client process pinned "
        f"to the other(s): {args.overhead_requests} creates of the seed's body with no server "
        f"delay and {args.requests} with 50 ms, after a warm-up, repeated interleaved "
        f"({args.overhead_repeats} times with no delay, {args.repeats} with 50 ms). "
        "Medians, with min..max.",
        "",
        "Clients: *raw aiohttp* (``session.post``) and *stock httpx* (``client.post``) send the "
        "seed's bytes; *single calls* are ``api.create_scheduler_request`` from C workers; "
        "*batch API* is ``api.iter_create_scheduler_requests(requests, concurrency=C)`` with a "
        "new ``NewSchedulerRequest`` built per item, as users call it for volume. *default* is "
        'the httpx backend, *fast path* ``http_backend="aiohttp"``.',
        "",
    ]
    for title, scenario in (
        ("Overhead: no server delay", OVERHEAD),
        ("Scaling: 50 ms server delay, pacing off", SCALING),
    ):
        # Two narrow tables rather than one wide one: each fits a 1280 px page.
        lines += [f"## {title}", "", "| C | client | req/s | of C/delay | CPU us/req |"]
        lines.append("| --- | --- | --- | --- | --- |")
        for delay, c in scenario:
            for client in clients:
                runs = results[(client, delay, c)]
                bound = f"{rps(client, delay, c) / (c / delay):.2f}" if delay else "n/a"
                cells = [
                    str(c),
                    LABELS[client],
                    _fmt([r["rps"] for r in runs]),
                    bound,
                    _fmt([r["cpu_us"] for r in runs]),
                ]
                lines.append("| " + " | ".join(cells) + " |")
        lines += [
            "",
            "| C | client | p50 ms | p99 ms | errors |",
            "| --- | --- | --- | --- | --- |",
        ]
        for delay, c in scenario:
            for client in clients:
                runs = results[(client, delay, c)]
                cells = [
                    str(c),
                    LABELS[client],
                    _fmt([r["p50_ms"] for r in runs], 1),
                    _fmt([r["p99_ms"] for r in runs], 1),
                    str(sum(r["errors"] for r in runs)),
                ]
                lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    if all((op, 0.0, 10) in results for op in OPERATIONS):
        lines += [
            "## Operations: one pipeline",
            "",
            "Single calls from 10 workers, no server delay, default backend.",
            "",
            "| operation | req/s | CPU us/req |",
            "| --- | --- | --- |",
        ]
        for op in OPERATIONS:
            runs = results[(op, 0.0, 10)]
            lines.append(
                f"| {OPERATION_LABELS[op]} | {_fmt([r['rps'] for r in runs])} | "
                f"{_fmt([r['cpu_us'] for r in runs])} |"
            )
        lines.append("")
    if own:
        lines += [
            "What each operation costs the library itself (`python -m bench.operations`): the "
            "whole pipeline on the fast path, 10 workers, with only the socket replaced by an "
            "answer at once of the bytes the fake Cronofy answers, each create building its "
            "`NewSchedulerRequest`; operations interleaved, "
            f"{len(own['create']['runs_us'])} runs each. End to end, the HTTP stack's own cost "
            "and its run-to-run swings hide what an operation adds.",
            "",
            "| operation | library CPU us/call, median (min..max) |",
            "| --- | --- |",
        ]
        for name, figures in own.items():
            lines.append(f"| {name} | {_fmt(figures['runs_us'], 1)} |")
        lines.append("")
    lines += [
        "Server CPU per request (the fake, its own core): "
        + ", ".join(
            f"{_fmt(values)} us at {delay * 1000:.0f} ms delay"
            for delay, values in sorted(server_cpu.items())
        )
        + "; it is never the bottleneck.",
        "",
        "![throughput against requests in flight](benchmarks.png)",
        "",
        "## Targets",
        "",
        "| target | measured | holds |",
        "| --- | --- | --- |",
    ]

    def verdict(holds: bool) -> str:
        return "yes" if holds else "**no**"

    if "cronofy-batch" in clients and "httpx" in clients:
        ratio = cpu("cronofy-batch", 0.0, 10) / cpu("httpx", 0.0, 10)
        lines.append(
            f"| D2 default backend, batch API, CPU/create at C=10, delay 0: <= 1.0x stock "
            f"httpx | {ratio:.2f}x | {verdict(ratio <= 1.0)} |"
        )
    for client in ("cronofy-batch", "cronofy"):
        if client in clients:
            base = rps(client, 0.05, 10)
            worst = min(rps(client, 0.05, c) for c in (50, 100, 200))
            lines.append(
                f"| D1 {LABELS[client]}: req/s at C=50/100/200 never below C=10 | "
                f"C=10 {base:.0f}, lowest of C=50/100/200 {worst:.0f} | "
                f"{verdict(worst >= base)} |"
            )
    if "cronofy-aiohttp-batch" in clients and "aiohttp" in clients:
        t1 = cpu("cronofy-aiohttp-batch", 0.0, 10) / cpu("aiohttp", 0.0, 10)
        lines.append(
            f"| T1 fast path, batch API, CPU/create at C=10, delay 0: <= 1.2x raw aiohttp | "
            f"{t1:.2f}x | {verdict(t1 <= 1.2)} |"
        )
        ratios = {
            c: rps("cronofy-aiohttp-batch", 0.05, c) / rps("aiohttp", 0.05, c) for _, c in SCALING
        }
        shown = ", ".join(f"C={c}: {r:.2f}" for c, r in ratios.items())
        lines.append(
            f"| T2 fast path, batch API, req/s at 50 ms: >= 0.9x raw aiohttp at every C | "
            f"{shown} | {verdict(all(r >= 0.9 for r in ratios.values()))} |"
        )
    if own:
        create_own = own["create"]["median_us"]
        shown = ", ".join(
            f"{name} {own[name]['median_us'] / create_own:.2f}x" for name in ("query", "cancel")
        )
        if all((op, 0.0, 10) in results for op in OPERATIONS):
            create = cpu("cronofy", 0.0, 10)
            shown += "; end to end (default backend, C=10, delay 0): " + ", ".join(
                f"{OPERATION_LABELS[op].split('_')[0]} {cpu(op, 0.0, 10) / create:.2f}x"
                for op in OPERATIONS[1:]
            )
        holds = all(own[n]["median_us"] <= create_own for n in ("query", "cancel"))
        lines.append(
            "| Q a query or a cancel costs no more CPU than a create (the library's own CPU "
            f"per call, socket stubbed) | {shown} | {verdict(holds)} |"
        )
    errors = {
        client: sum(r["errors"] for key, runs in results.items() if key[0] == client for r in runs)
        for client in dict.fromkeys([*clients, *OPERATIONS])
        if client.startswith("cronofy") and any(key[0] == client for key in results)
    }
    lines.append(f"| T5 zero client-side errors | {errors} | {verdict(not any(errors.values()))} |")
    if memory:
        small, large = memory[MEMORY_SIZES[0]], memory[MEMORY_SIZES[-1]]
        steady = large["last_over_first_cpu"]
        holds = large["growth_mb"] <= 50 and abs(steady - 1) <= 0.1
        lines.append(
            f"| T4 {MEMORY_SIZES[-1]:,} lazily generated items through the batch API: peak RSS "
            f"growth <= 50 MB, last 10% req/s within 10% of the first 10% (per CPU-second; "
            f"wall clock also shown) | "
            f"{MEMORY_SIZES[0]:,}: {small['growth_mb']:.1f} MB; {MEMORY_SIZES[-1]:,}: "
            f"{large['growth_mb']:.1f} MB, last/first {steady:.2f} per CPU-second "
            f"({large['first_tenth_per_cpu_s']:.0f} -> {large['last_tenth_per_cpu_s']:.0f}), "
            f"{large['last_over_first']:.2f} per wall second "
            f"({large['first_tenth_rps']:.0f} -> {large['last_tenth_rps']:.0f} req/s) | "
            f"{verdict(holds)} |"
        )
    if pacing:
        lines.append("| T3 paced run: >= 0.95 of the limit, zero 429 | see below | see below |")
        lines += ["", "## Pacing (T3)", "", "```text", *pacing, "```"]
    if shared:
        end = lines.index("## Targets") + 2
        while end < len(lines) and lines[end].startswith("|"):
            end += 1  # the last row of the targets table
        lines.insert(
            end,
            "| S1 4 processes sharing a RedisLimiter: >= 0.95 of the limit, zero 429 | "
            "see below | see below |",
        )
        lines += [
            "",
            "## One budget shared by several processes through Redis (issue 14)",
            "",
            "`python -m bench.shared_limit`: client processes against one fake enforcing the "
            "limit by arrivals across all of them (the rate is measured at the fake), the cost "
            "of one acquire, and the distributed example with a worker killed mid-batch. "
            "Goal: at least 0.95 of the limit and zero 429 with a shared `RedisLimiter`.",
            "",
            "```text",
            *shared,
            "```",
        ]
    if ledgers:
        lines += ["", *LEDGER_SECTION, "", *ledgers]
    if otel:
        lines += ["", *OTEL_SECTION, "", *otel]
    lines += [
        "",
        "## Reproduce",
        "",
        "```console",
        "python -m pip install nox",
        "nox -s bench",
        "```",
        "",
    ]
    (DOCS / "benchmarks.md").write_text("\n".join(lines), encoding="utf-8")


def write_plot(
    clients: list[str], results: dict[tuple[str, float, int], list[dict[str, Any]]]
) -> None:
    """docs/benchmarks.png: throughput against C at 50 ms, one line per client."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.2))
    levels = [c for _, c in SCALING]
    axes.plot(levels, [c / 0.05 for c in levels], "k:", label="ideal (C / 50 ms)")
    for client in clients:
        medians = [statistics.median(r["rps"] for r in results[(client, 0.05, c)]) for c in levels]
        axes.plot(levels, medians, marker="o", label=LABELS[client])
    axes.set_xlabel("requests in flight (C)")
    axes.set_ylabel("creates per second")
    axes.set_title("Throughput at 50 ms server delay")
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xticks(levels, [str(c) for c in levels])
    axes.legend()
    axes.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    figure.savefig(DOCS / "benchmarks.png", dpi=110)


if __name__ == "__main__":
    main()
