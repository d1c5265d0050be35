"""
What every benchmark module shares: the cores, one configuration in a fresh process, a figure.

The fake server is pinned to the last core and each client process to the others, so a client
never competes with the server it measures (on one core, both share it).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from typing import Any


def client_cores() -> tuple[set[int], int | None]:
    """The cores for client processes, and the one for the fake server (``None``: shared)."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) > 1:
        return set(cores[:-1]), cores[-1]
    return set(cores), None


def run_client(
    client: str, url: str, concurrency: int, requests: int, cores: set[int], *options: str
) -> dict[str, Any]:
    """One `bench.client` configuration in a fresh process pinned to `cores`; its JSON."""
    output = subprocess.run(
        [sys.executable, "-m", "bench.client", "--client", client, "--url", url,
         "-c", str(concurrency), "-n", str(requests), *options],
        check=True, capture_output=True, text=True,
        preexec_fn=lambda: os.sched_setaffinity(0, cores),
    ).stdout  # fmt: skip
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    return result


def fmt(values: list[float], digits: int = 0) -> str:
    """``median (min..max)``: the figure every table shows."""
    return (
        f"{statistics.median(values):.{digits}f} "
        f"({min(values):.{digits}f}..{max(values):.{digits}f})"
    )


def progress(label: str, result: dict[str, Any]) -> None:
    """One line on stderr per finished run, for whoever watches a long benchmark."""
    print(
        f"{label}: {result['rps']:.0f} req/s, {result['cpu_us']:.0f} us/req, "
        f"errors {result['errors']}",
        file=sys.stderr,
        flush=True,
    )
