"""
How fast FakeCronofy answers over TCP, on one core.

The fake runs in its own process pinned to one core (``python -m cronofy_async.testing``);
a raw-asyncio keep-alive load generator, pinned to the other core where there is one, posts
the seed's create body. The server's CPU time is read from /proc, so the figure is its own
cost per request, whatever the load generator costs.

    python -m bench.fake_server [--requests 20000] [--connections 50]
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

SECRET = "sk_bench"
BODY = json.dumps(
    {
        "host": {"sub": "acc_61815034636bd5c5ce4edd"},
        "recipients": [{"email": "doc@evenitron.com", "display_name": "Dr Emmet Brown"}],
        "event": {"summary": "Driving lessons - Marty & Doc"},
    }
).encode()


def cpu_seconds(pid: int) -> float:
    """User + system CPU of process `pid`, from /proc."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_fake(core: int | None, extra: list[str]) -> tuple[subprocess.Popen[str], str]:
    """Start the fake server on an ephemeral port; return the process and its base URL."""
    limits = extra or ["--no-rate-limit"]
    command = [
        sys.executable, "-m", "cronofy_async.testing", "--port", "0", "--secret", SECRET,
        "--no-ledger", *limits,
    ]  # fmt: skip

    def pin() -> None:
        if core is not None:
            os.sched_setaffinity(0, {core})

    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, preexec_fn=pin)
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("fake Cronofy listening on "):
            return process, line.split()[-1]
    raise RuntimeError("the fake server did not start")


async def load(host: str, port: int, requests: int, connections: int) -> list[float]:
    """Send `requests` creates over `connections` keep-alive connections; return latencies."""
    head = (
        f"POST /v1/scheduler_requests HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Authorization: Bearer {SECRET}\r\nContent-Type: application/json; charset=utf-8\r\n"
        f"Content-Length: {len(BODY)}\r\n\r\n"
    ).encode()
    message = head + BODY
    remaining = requests
    latencies: list[float] = []

    async def worker() -> None:
        nonlocal remaining
        reader, writer = await asyncio.open_connection(host, port)
        while remaining > 0:
            remaining -= 1
            start = time.perf_counter()
            writer.write(message)
            headers = await reader.readuntil(b"\r\n\r\n")
            if not headers.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(headers.decode(errors="replace"))
            length = int(headers.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
        writer.close()

    await asyncio.gather(*(worker() for _ in range(connections)))
    return latencies


def main() -> None:
    """Run the measurement and print one line of results."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    cores = sorted(os.sched_getaffinity(0))
    server_core = cores[-1] if len(cores) > 1 else None
    if server_core is not None:
        os.sched_setaffinity(0, set(cores[:-1]))
    rates, costs = [], []
    for _ in range(args.repeats):
        process, url = start_fake(server_core, [])
        try:
            host, port = url.removeprefix("http://").rsplit(":", 1)
            asyncio.run(load(host, int(port), 500, args.connections))  # warm up
            cpu_before, wall_before = cpu_seconds(process.pid), time.perf_counter()
            latencies = asyncio.run(load(host, int(port), args.requests, args.connections))
            wall = time.perf_counter() - wall_before
            cpu = cpu_seconds(process.pid) - cpu_before
        finally:
            process.terminate()
            process.wait()
        assert len(latencies) == args.requests
        rates.append(args.requests / wall)
        costs.append(cpu / args.requests * 1e6)
    print(
        f"fake server, one core, {args.connections} connections, {args.requests} creates x "
        f"{args.repeats}: {statistics.median(rates):.0f} req/s "
        f"(min {min(rates):.0f}, max {max(rates):.0f}); server CPU "
        f"{statistics.median(costs):.0f} us/request, i.e. at most "
        f"{1e6 / statistics.median(costs):.0f} req/s per core"
    )


if __name__ == "__main__":
    main()
