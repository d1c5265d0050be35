"""
One benchmark configuration, in a fresh process: N creates at C in flight through one client.

Prints one JSON object: req/s, client CPU per request (process time), p50/p99 latency, errors.
Run by ``bench/run.py``; by hand::

    python -m bench.client --client cronofy --url http://127.0.0.1:8000 -c 10 -n 2000
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from .fake_server import BODY, SECRET

URL_PATH = "/v1/scheduler_requests"
HEADERS = {
    "Authorization": f"Bearer {SECRET}",
    "Content-Type": "application/json; charset=utf-8",
    "Accept": "application/json",
}
CLIENTS = (
    "aiohttp",
    "httpx",
    "cronofy",
    "cronofy-aiohttp",
    "cronofy-batch",
    "cronofy-aiohttp-batch",
    "cronofy-query",
    "cronofy-cancel",
)
"""The last two query / cancel one scheduling request per call, on the default backend."""
BATCH_CLIENTS = ("cronofy-batch", "cronofy-aiohttp-batch")


async def _make(
    client: str, url: str, concurrency: int
) -> tuple[Callable[[], Awaitable[Any]], Any]:
    """A `send()` doing one create with `client`, and the object to close afterwards."""
    if client == "aiohttp":
        import aiohttp

        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency))

        async def send_aiohttp() -> Any:
            async with session.post(url + URL_PATH, data=BODY, headers=HEADERS) as response:
                body = await response.read()
                if response.status != 200:
                    raise RuntimeError(response.status)
                return json.loads(body)

        return send_aiohttp, session
    if client == "httpx":
        import httpx

        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        http = httpx.AsyncClient(limits=limits)

        async def send_httpx() -> Any:
            response = await http.post(url + URL_PATH, content=BODY, headers=HEADERS)
            response.raise_for_status()
            return response.json()

        return send_httpx, http

    from cronofy_async import (
        AsyncSchedulerAPI,
        Event,
        Host,
        NewSchedulerRequest,
        Recipient,
    )

    options: dict[str, Any] = {}
    if client == "cronofy-aiohttp":
        options["http_backend"] = "aiohttp"
    api = AsyncSchedulerAPI(SECRET, base_url=url, rate_limit=None, **options)
    request = NewSchedulerRequest(
        host=Host(sub="acc_61815034636bd5c5ce4edd"),
        recipients=[Recipient(email="doc@evenitron.com", display_name="Dr Emmet Brown")],
        event=Event(summary="Driving lessons - Marty & Doc"),
    )

    if client in ("cronofy-query", "cronofy-cancel"):
        from cronofy_async import NewSchedulingRequest

        made = await api.create_scheduling_request(
            NewSchedulingRequest(
                host=request.host, recipients=request.recipients, event=request.event
            )
        )
        ids = [made.scheduling_request_id]

        async def send_query() -> Any:
            return await api.query_scheduling_requests(ids)

        async def send_cancel() -> Any:
            return await api.cancel_scheduling_request(ids[0])  # cancelling again is a no-op

        return (send_query if client == "cronofy-query" else send_cancel), api

    async def send_cronofy() -> Any:
        return await api.create_scheduler_request(request)

    return send_cronofy, api


async def _close(resource: Any) -> None:
    if hasattr(resource, "aclose"):
        await resource.aclose()
    else:
        await resource.close()


@functools.cache
def _builders() -> tuple[Any, Any, Any, Any]:
    # Imported once, on first use: the raw clients' processes never import the library.
    from cronofy_async import Event, Host, NewSchedulerRequest, Recipient

    return Event, Host, NewSchedulerRequest, Recipient


def _new_request(i: int) -> Any:
    event, host, new_request, recipient = _builders()
    return new_request(
        host=host(sub="acc_61815034636bd5c5ce4edd"),
        recipients=[recipient(email=f"person{i}@example.com", display_name="Dr Emmet Brown")],
        event=event(summary="Driving lessons - Marty & Doc"),
    )


OTEL_MODES = ("absent", "no-provider", "provider")
"""``absent``: OpenTelemetry cannot be imported (the extra not installed); ``no-provider``:
installed, no provider set; ``provider``: the SDK's providers set globally, spans batched to an
exporter that drops them, metrics kept by an in-memory reader."""


def _set_up_otel(mode: str) -> None:
    """Make OpenTelemetry absent, present, or reporting, before the library is imported."""
    import sys

    if mode == "absent":
        sys.modules["opentelemetry"] = None  # type: ignore[assignment]  # import fails
        return
    if mode == "provider":
        from collections.abc import Sequence

        from opentelemetry import metrics, trace
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            SpanExporter,
            SpanExportResult,
        )

        class Dropped(SpanExporter):
            def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
                return SpanExportResult.SUCCESS

        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(BatchSpanProcessor(Dropped()))
        trace.set_tracer_provider(tracer_provider)
        metrics.set_meter_provider(MeterProvider(metric_readers=[InMemoryMetricReader()]))


LEDGERS = ("none", "memory", "sqlite", "redis")
"""Where a batch keeps its idempotency keys: ``none`` sends without keys."""


def _ledger(kind: str, redis_url: str | None) -> Any:
    """The ledger of `kind` for one run: a fresh SQLite file, or a fresh Redis namespace."""
    import tempfile
    import uuid

    from cronofy_async import MemoryLedger, SQLiteLedger

    if kind == "memory":
        return MemoryLedger()
    if kind == "sqlite":
        return SQLiteLedger(Path(tempfile.mkdtemp()) / "bench-ledger.db")
    if kind == "redis":
        from cronofy_async.redis import RedisLedger

        assert redis_url is not None, "--ledger redis needs --redis-url"
        return RedisLedger(redis_url, namespace=f"bench-{uuid.uuid4().hex}")
    return None


async def measure_batch(
    client: str,
    url: str,
    concurrency: int,
    requests: int,
    *,
    ledger: str = "none",
    redis_url: str | None = None,
) -> dict[str, Any]:
    """
    The batch API users call for volume: a new `NewSchedulerRequest` per item, built lazily.

    Latency is from the moment the batch reads an item to the moment its result is yielded.
    With a `ledger`, every item is created under its own idempotency key (none repeats).
    """
    from cronofy_async import AsyncSchedulerAPI, Outcome

    options: dict[str, Any] = {}
    if client == "cronofy-aiohttp-batch":
        options["http_backend"] = "aiohttp"
    made = _ledger(ledger, redis_url)
    if made is not None:
        options["ledger"] = made
    api = AsyncSchedulerAPI(SECRET, base_url=url, rate_limit=None, **options)
    read_at: dict[int, float] = {}
    runs = iter(range(1_000_000))

    def items(count: int) -> Any:
        for i in range(count):
            read_at[i] = time.perf_counter()
            yield _new_request(i)

    async def run(count: int) -> tuple[list[float], dict[str, int]]:
        read_at.clear()
        latencies: list[float] = []
        errors: dict[str, int] = {}
        prefix = f"run{next(runs)}-"
        keys: dict[str, Any] = {}
        if made is not None:
            keys["key"] = lambda request: prefix + request.recipients[0].email
        stream = api.iter_create_scheduler_requests(items(count), concurrency=concurrency, **keys)
        async with stream as s:
            async for result in s:
                if result.outcome is Outcome.CREATED:
                    latencies.append(time.perf_counter() - read_at.pop(result.index))
                else:
                    name = type(result.error).__name__
                    errors[name] = errors.get(name, 0) + 1
        return latencies, errors

    await run(min(requests // 10, 200))  # warm up
    cpu, wall = time.process_time(), time.perf_counter()
    latencies, errors = await run(requests)
    wall = time.perf_counter() - wall
    cpu = time.process_time() - cpu
    await api.aclose()
    if made is not None:
        await made.aclose()
    figures = _figures(client, concurrency, requests, latencies, errors, cpu, wall)
    figures["ledger"] = ledger
    return figures


def _figures(
    client: str,
    concurrency: int,
    requests: int,
    latencies: list[float],
    errors: dict[str, int],
    cpu: float,
    wall: float,
) -> dict[str, Any]:
    quantiles = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return {
        "client": client,
        "concurrency": concurrency,
        "requests": requests,
        "rps": len(latencies) / wall,
        "cpu_us": cpu / requests * 1e6,
        "p50_ms": quantiles[49] * 1000,
        "p99_ms": quantiles[98] * 1000,
        "errors": sum(errors.values()),
        "error_kinds": errors,
    }


async def measure(
    client: str,
    url: str,
    concurrency: int,
    requests: int,
    *,
    ledger: str = "none",
    redis_url: str | None = None,
) -> dict[str, Any]:
    """Run the configuration and return its figures."""
    if client in BATCH_CLIENTS:
        return await measure_batch(
            client, url, concurrency, requests, ledger=ledger, redis_url=redis_url
        )
    send, resource = await _make(client, url, concurrency)
    latencies: list[float] = []
    errors: dict[str, int] = {}
    remaining = requests

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            start = time.perf_counter()
            try:
                await send()
            except Exception as error:
                name = type(error).__name__
                errors[name] = errors.get(name, 0) + 1
                continue
            latencies.append(time.perf_counter() - start)

    # Warm up: open the connections, import lazily-imported modules.
    remaining = min(requests // 10, 200)
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    latencies.clear()
    errors.clear()
    remaining = requests
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - wall
    cpu = time.process_time() - cpu
    await _close(resource)
    return _figures(client, concurrency, requests, latencies, errors, cpu, wall)


def main() -> None:
    """Parse the configuration, run it, print its JSON line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--client", choices=CLIENTS, required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("-c", "--concurrency", type=int, default=10)
    parser.add_argument("-n", "--requests", type=int, default=2000)
    parser.add_argument("--ledger", choices=LEDGERS, default="none", help="batch clients only")
    parser.add_argument("--redis-url", help="for --ledger redis")
    parser.add_argument("--otel", choices=OTEL_MODES, help="OpenTelemetry's state (issue 24)")
    args = parser.parse_args()
    if args.otel:
        _set_up_otel(args.otel)
    result = asyncio.run(
        measure(
            args.client,
            args.url,
            args.concurrency,
            args.requests,
            ledger=args.ledger,
            redis_url=args.redis_url,
        )
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
