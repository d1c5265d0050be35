"""
Traces and metrics (issue 24) against FakeCronofy over loopback, on both HTTP backends.

A created call, a retried connect error, a 429 pause, an unknown outcome, a batch; a search of
everything exported for the secret and the emails; the httpx instrumentation alongside; a
second event loop; a global provider set after the first call; no opentelemetry at all.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.trace import SpanKind, StatusCode

from cronofy_async import (
    APIConnectionError,
    AsyncSchedulerAPI,
    Event,
    Host,
    NewSchedulerRequest,
    Outcome,
    Recipient,
    RetryPolicy,
)
from cronofy_async.testing import FakeCronofy, Fault
from cronofy_async.testing._server import listening_socket

from .helpers import FakeClock, run_python, use_clock
from .otel_support import Telemetry, everything_exported, otel

__all__ = ["otel"]

Backend = Literal["httpx", "aiohttp"]
ROOT = Path(__file__).resolve().parent.parent


def invite(i: int) -> NewSchedulerRequest:
    return NewSchedulerRequest(
        host=Host(sub="acc_1"),
        recipients=[Recipient(email=f"person{i}@example.com", display_name=f"Person {i}")],
        event=Event(summary="Intro call"),
    )


@pytest.fixture(params=["httpx", "aiohttp"])
def backend(request: pytest.FixtureRequest) -> Backend:
    name: Backend = request.param
    return name


@pytest.fixture
def fake(loopback_fake: FakeCronofy) -> FakeCronofy:
    return loopback_fake


def connect(otel: Telemetry, fake: FakeCronofy, url: str, **options: Any) -> AsyncSchedulerAPI:
    options.setdefault("rate_limit", None)
    options.setdefault("retry", RetryPolicy(wait_jitter=0))
    api = AsyncSchedulerAPI(fake.secret, base_url=url, **otel.options, **options)
    use_clock(api, FakeClock())
    return api


def calls(otel: Telemetry) -> list[Any]:
    return otel.spans("cronofy.create_scheduler_request")


async def test_a_created_call(
    otel: Telemetry, fake: FakeCronofy, loopback_url: str, backend: Backend
) -> None:
    async with connect(otel, fake, loopback_url, http_backend=backend) as api:
        created = await api.create_scheduler_request(invite(0))
    (call,) = calls(otel)
    assert call.attributes is not None
    assert call.attributes["cronofy.request_id"] == created.scheduler_request_id
    assert call.attributes["cronofy.attempts"] == 1
    (http,) = otel.children(call)
    assert http.kind is SpanKind.CLIENT
    port = int(loopback_url.rsplit(":", 1)[1])
    assert http.attributes == {
        "http.request.method": "POST",
        "server.address": "127.0.0.1",
        "server.port": port,
        "url.full": f"{loopback_url}/v1/scheduler_requests",
        "http.response.status_code": 200,
    }
    assert otel.total("cronofy.client.requests", **{"http.response.status_code": 200}) == 1


async def test_a_retried_connect_error(otel: Telemetry, backend: Backend) -> None:
    sock = listening_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    fake = FakeCronofy()
    async with connect(otel, fake, f"http://127.0.0.1:{port}", http_backend=backend) as api:
        with pytest.raises(APIConnectionError):
            await api.create_scheduler_request(invite(0))
    (call,) = calls(otel)
    assert call.attributes is not None
    assert call.attributes["cronofy.attempts"] == 3
    assert call.attributes["cronofy.outcome"] == "failed"
    assert call.attributes["cronofy.outcome_unknown"] is False
    assert call.attributes["error.type"] == "cronofy_async.APIConnectionError"
    retries = [e for e in call.events if e.name == "cronofy.retry"]
    assert [e.attributes["cronofy.attempt"] for e in retries if e.attributes] == [1, 2]
    attempts = otel.children(call)
    assert len(attempts) == 3
    for number, http in enumerate(attempts):
        assert http.attributes is not None
        assert http.attributes["error.type"] == "httpx.ConnectError"
        assert http.attributes.get("http.request.resend_count") == (number or None)
        assert http.status.status_code is StatusCode.ERROR
    assert otel.total("cronofy.client.retries") == 2
    assert otel.total("cronofy.client.outcomes", **{"cronofy.outcome": "failed"}) == 1


async def test_a_429_pause(
    otel: Telemetry, fake: FakeCronofy, loopback_url: str, backend: Backend
) -> None:
    fake.inject(Fault.RATE_LIMITED)
    async with connect(otel, fake, loopback_url, http_backend=backend) as api:
        await api.create_scheduler_request(invite(0))
    (call,) = calls(otel)
    assert call.attributes is not None
    assert call.attributes["cronofy.attempts"] == 2
    assert call.attributes["cronofy.pacing_wait_s"] == pytest.approx(1.0)
    assert [e.name for e in call.events] == ["cronofy.retry", "cronofy.rate_limit_pause"]
    statuses = [
        s.attributes["http.response.status_code"] for s in otel.children(call) if s.attributes
    ]
    assert statuses == [429, 200]
    assert otel.total("cronofy.client.requests", **{"http.response.status_code": 429}) == 1


async def test_an_unknown_outcome(
    otel: Telemetry, fake: FakeCronofy, loopback_url: str, backend: Backend
) -> None:
    fake.inject(Fault.DROP_AFTER)
    async with connect(otel, fake, loopback_url, http_backend=backend) as api:
        with pytest.raises(APIConnectionError):
            await api.create_scheduler_request(invite(0))
    (call,) = calls(otel)
    assert call.attributes is not None
    assert call.attributes["cronofy.outcome"] == "unknown"
    assert call.attributes["cronofy.outcome_unknown"] is True
    (http,) = otel.children(call)
    assert http.attributes is not None
    assert str(http.attributes["error.type"]).startswith("httpx.")
    assert otel.total("cronofy.client.outcomes", **{"cronofy.outcome": "unknown"}) == 1


async def test_a_batch_is_one_span_over_its_items(
    otel: Telemetry, fake: FakeCronofy, loopback_url: str, backend: Backend
) -> None:
    fake.inject(Fault.RATE_LIMITED)
    fake.inject(Fault.DROP_AFTER)
    tracer = otel.tracer_provider.get_tracer("app")
    async with connect(otel, fake, loopback_url, http_backend=backend) as api:
        with tracer.start_as_current_span("send invites") as outer:
            report = await api.batch_create_scheduler_requests(
                [invite(i) for i in range(6)], concurrency=3
            )
            assert trace.get_current_span() is outer  # no worker's span leaks out
    assert report.counts[Outcome.CREATED] == 5
    assert report.counts[Outcome.UNKNOWN] == 1

    batch = otel.span("cronofy.batch_create_scheduler_requests")
    (app,) = otel.spans("send invites")
    assert batch.parent is not None
    assert app.context is not None
    assert batch.parent.span_id == app.context.span_id
    assert batch.kind is SpanKind.INTERNAL
    assert batch.attributes is not None
    assert {k: v for k, v in batch.attributes.items() if k.startswith("cronofy.batch.")} == {
        "cronofy.batch.concurrency": 3,
        "cronofy.batch.items": 6,
        "cronofy.batch.created": 5,
        "cronofy.batch.failed": 0,
        "cronofy.batch.from_ledger": 0,
        "cronofy.batch.unknown": 1,
        "cronofy.batch.not_sent": 0,
    }
    assert batch.status.status_code is StatusCode.UNSET
    items = otel.children(batch)
    assert [s.name for s in items] == ["cronofy.create_scheduler_request"] * 6
    for item in items:
        assert item.context is not None
        assert batch.context is not None
        assert item.context.trace_id == batch.context.trace_id
        assert item.attributes is not None
        assert len(otel.children(item)) == item.attributes["cronofy.attempts"]
    outcomes = sorted(str(s.attributes["cronofy.outcome"]) for s in items if s.attributes)
    assert outcomes == ["created"] * 5 + ["unknown"]
    # Each item counted once, by the batch: not again by its call.
    assert otel.total("cronofy.client.outcomes", **{"cronofy.outcome": "created"}) == 5
    assert otel.total("cronofy.client.outcomes", **{"cronofy.outcome": "unknown"}) == 1


async def test_a_batch_closed_early_ends_its_span_with_what_it_left(
    otel: Telemetry, fake: FakeCronofy, loopback_url: str
) -> None:
    async with connect(otel, fake, loopback_url) as api:
        async with api.iter_create_scheduler_requests(
            (invite(i) for i in range(100)), concurrency=2
        ) as results:
            async for _ in results:
                break
        left = len(results.unfinished)
    batch = otel.span("cronofy.batch_create_scheduler_requests")
    assert batch.end_time is not None
    assert batch.attributes is not None
    counted = sum(int(str(batch.attributes[f"cronofy.batch.{o.value}"])) for o in Outcome)
    assert counted == 1 + left
    assert otel.total("cronofy.client.outcomes") == counted


async def test_a_batch_cancelled_ends_its_span_with_an_error(
    otel: Telemetry, fake: FakeCronofy, loopback_url: str
) -> None:
    async with connect(otel, fake, loopback_url) as api:
        seen = asyncio.Event()

        async def consume() -> None:
            async with api.iter_create_scheduler_requests(
                (invite(i) for i in range(1000)), concurrency=2
            ) as results:
                async for _ in results:
                    seen.set()

        task = asyncio.ensure_future(consume())
        await seen.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    batch = otel.span("cronofy.batch_create_scheduler_requests")
    assert batch.status.status_code is StatusCode.ERROR
    assert batch.attributes is not None
    assert batch.attributes["error.type"] == "asyncio.CancelledError"
    for item in otel.children(batch):
        assert item.end_time is not None


async def test_nothing_exported_or_logged_holds_the_secret_or_an_email(
    otel: Telemetry,
    loopback_url: str,
    fake: FakeCronofy,
    backend: Backend,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="cronofy_async")
    fake.inject(Fault.RATE_LIMITED)
    fake.inject(Fault.UNAVAILABLE)
    fake.inject(Fault.DROP_AFTER)
    policy = RetryPolicy(wait_jitter=0, retry_unsafe=True, attempts=4)
    async with connect(otel, fake, loopback_url, http_backend=backend, retry=policy) as api:
        await api.create_scheduler_request(invite(0))
        await api.create_scheduler_request(invite(1), idempotency_key="person1@example.com")
        await api.create_scheduler_request(invite(1), idempotency_key="person1@example.com")
        await api.batch_create_scheduler_requests([invite(i) for i in range(2, 8)])
        fake.inject(Fault.DROP_AFTER)
        await api.batch_create_scheduler_requests([invite(8)], key=lambda r: r.recipients[0].email)
        members = [m.email async for m in api.iter_organizational_unit_members()]
        bad = NewSchedulerRequest(
            host=Host(sub="acc_unknown"),
            recipients=[Recipient(email="person9@example.com")],
            event=Event(summary="Intro call"),
        )
        with pytest.raises(Exception):  # noqa: B017 - the fake's refusal, whichever
            await api.create_scheduler_request(bad)
    exported = everything_exported(otel)
    assert "cronofy.create_scheduler_request" in exported  # the search reads something
    assert members
    emails = [f"person{i}@example.com" for i in range(10)]
    secrets = [str(fake.secret), *(str(m) for m in members), *emails]
    for secret in secrets:
        assert secret not in exported, secret
        assert secret not in caplog.text, secret
    assert "Bearer" not in exported
    assert "authorization" not in exported.lower()


@pytest.fixture
def httpx_instrumented(otel: Telemetry) -> Iterator[None]:
    """opentelemetry-instrumentation-httpx on, reporting to the test's tracer provider."""
    instrumentor = HTTPXClientInstrumentor()
    instrumentor.instrument(tracer_provider=otel.tracer_provider)
    try:
        yield
    finally:
        instrumentor.uninstrument()


@pytest.mark.usefixtures("httpx_instrumented")
async def test_alongside_the_httpx_instrumentation_one_client_span_per_attempt(
    otel: Telemetry, fake: FakeCronofy, loopback_url: str, backend: Backend
) -> None:
    fake.inject(Fault.RATE_LIMITED)
    async with connect(otel, fake, loopback_url, http_backend=backend) as api:
        await api.create_scheduler_request(invite(0))
        await api.batch_create_scheduler_requests([invite(i) for i in range(1, 4)])
    client_spans = [s for s in otel.spans() if s.kind is SpanKind.CLIENT]
    # Ours only: the instrumentation's would describe the same request a second time.
    assert len(client_spans) == 2 + 3
    for span in client_spans:
        assert span.parent is not None
        (parent,) = [
            s for s in otel.spans() if s.context and s.context.span_id == span.parent.span_id
        ]
        assert parent.name == "cronofy.create_scheduler_request"


@pytest.mark.usefixtures("httpx_instrumented")
async def test_alongside_the_httpx_instrumentation_with_a_callers_client(
    otel: Telemetry, fake: FakeCronofy, loopback_url: str
) -> None:
    async with httpx.AsyncClient() as client:
        api = AsyncSchedulerAPI(
            fake.secret, base_url=loopback_url, http_client=client, **otel.options
        )
        await api.create_scheduler_request(invite(0))
        await api.aclose()
    (call,) = calls(otel)
    assert [s.kind for s in otel.children(call)] == [SpanKind.CLIENT]


@pytest.mark.usefixtures("httpx_instrumented")
async def test_the_httpx_instrumentation_still_reports_when_the_library_does_not(
    otel: Telemetry, fake: FakeCronofy, loopback_url: str
) -> None:
    # No provider for the library (none global, none given): the instrumentation's span is
    # the only one, and nothing breaks.
    async with AsyncSchedulerAPI(fake.secret, base_url=loopback_url, rate_limit=None) as api:
        await api.create_scheduler_request(invite(0))
        assert api._shared.telemetry is None
    (http,) = otel.spans()
    assert http.kind is SpanKind.CLIENT
    assert http.parent is None


def test_a_second_event_loop_reports_too(otel: Telemetry) -> None:
    fake = FakeCronofy(members=["acc_1"], rate_limit=None)
    api = fake.api(rate_limit=None, **otel.options)

    async def one(i: int) -> None:
        await api.create_scheduler_request(invite(i))

    asyncio.run(one(0))
    asyncio.run(one(1))  # the API object's own client is rebuilt in the new loop
    asyncio.run(api.aclose())
    first, second = calls(otel)
    for call in (first, second):
        assert call.parent is None
        (http,) = otel.children(call)
        assert http.attributes is not None
        assert http.attributes["http.response.status_code"] == 200
    assert first.context is not None
    assert second.context is not None
    assert first.context.trace_id != second.context.trace_id


# A fresh process: the global providers can be set once in each. Indented as the tests' own
# code is, so that the two dedent as one.
FRESH_PROCESS = """
        import asyncio
        from opentelemetry import metrics, trace
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from cronofy_async import Event, Host, NewSchedulerRequest, Recipient, _otel
        from cronofy_async.testing import FakeCronofy

        _otel.GLOBAL_CHECK_INTERVAL = 0.0  # look at every call, not once a second
        fake = FakeCronofy(members=["acc_1"], rate_limit=None)
        api = fake.api(rate_limit=None)
        request = NewSchedulerRequest(
            host=Host(sub="acc_1"),
            recipients=[Recipient(email="a@example.com")],
            event=Event(summary="x"),
        )
        """


def test_a_global_provider_set_after_the_first_call_is_picked_up() -> None:
    done = run_python(
        FRESH_PROCESS
        + """
        async def main():
            await api.create_scheduler_request(request)
            assert api._shared.telemetry is None
            exporter = InMemorySpanExporter()
            provider = TracerProvider()
            provider.add_span_processor(SimpleSpanProcessor(exporter))
            trace.set_tracer_provider(provider)
            reader = InMemoryMetricReader()
            metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
            await api.create_scheduler_request(request)
            await api.aclose()
            names = [s.name for s in exporter.get_finished_spans()]
            assert names == ["POST", "cronofy.create_scheduler_request"], names
            data = reader.get_metrics_data().to_json()
            assert "cronofy.client.requests" in data
            print("ok")

        asyncio.run(main())
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_a_global_meter_provider_set_after_the_tracer_provider_is_picked_up() -> None:
    done = run_python(
        FRESH_PROCESS
        + """
        async def main():
            exporter = InMemorySpanExporter()
            provider = TracerProvider()
            provider.add_span_processor(SimpleSpanProcessor(exporter))
            trace.set_tracer_provider(provider)          # tracing configured first...
            await api.create_scheduler_request(request)  # ...a call (a warm-up, a health check)
            reader = InMemoryMetricReader()
            metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))  # ...then metrics
            await api.create_scheduler_request(request)
            await api.aclose()
            data = reader.get_metrics_data()
            print("metrics" if data is not None and "cronofy.client.requests" in data.to_json()
                  else "no metrics")

        asyncio.run(main())
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "metrics"


def test_without_opentelemetry_the_library_runs_and_says_what_is_missing() -> None:
    done = run_python(
        """
        import asyncio, sys
        sys.modules["opentelemetry"] = None  # as if not installed: importing it fails
        from cronofy_async import (
            ConfigurationError, Event, Host, NewSchedulerRequest, Recipient,
        )
        from cronofy_async.testing import FakeCronofy

        fake = FakeCronofy(members=["acc_1"], rate_limit=None)
        api = fake.api(rate_limit=None, record_recipients=True)

        async def main():
            request = NewSchedulerRequest(
                host=Host(sub="acc_1"),
                recipients=[Recipient(email="a@example.com")],
                event=Event(summary="x"),
            )
            await api.create_scheduler_request(request)
            report = await api.batch_create_scheduler_requests([request, request])
            assert report.all_created
            await api.aclose()

        asyncio.run(main())
        assert api._shared.telemetry is None
        try:
            fake.api(tracer_provider=object())
        except ConfigurationError as error:
            assert "cronofy-async[otel]" in str(error), error
        else:
            raise AssertionError("a tracer_provider without opentelemetry was accepted")
        assert "opentelemetry" not in [m for m in sys.modules if sys.modules[m] is not None]
        print("ok")
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
