"""
Traces and metrics (issue 24), unit level: respx answers, the SDK's in-memory exporter reads.

Against the fake over loopback, on both backends, see test_telemetry_fake.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import respx
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from cronofy_async import (
    APITimeoutError,
    AsyncSchedulerAPI,
    ConfigurationError,
    Event,
    Host,
    MemoryLedger,
    NewSchedulerRequest,
    NewSchedulingRequest,
    RateLimit,
    Recipient,
    RetryPolicy,
    ValidationError,
)

from .conftest import CREATE_URL, SECRET, ok_response, seed_request
from .helpers import FakeClock, until, use_clock
from .otel_support import Telemetry, everything_exported, otel
from .test_retry import sequence

__all__ = ["otel"]  # the fixture, imported for the tests below

NO_JITTER = RetryPolicy(wait_jitter=0)
SCHEDULING_URL = "https://api.cronofy.com/v1/scheduling_requests"
QUERY_URL = "https://api.cronofy.com/v1/scheduling_requests/query"
CANCEL_URL = "https://api.cronofy.com/v1/scheduling_requests/cancel"


@pytest.fixture
async def traced(otel: Telemetry, clock: FakeClock) -> AsyncIterator[Callable[..., Any]]:
    """Build API objects that report to the test's providers, on virtual time."""
    made: list[AsyncSchedulerAPI] = []

    def build(**options: Any) -> AsyncSchedulerAPI:
        options.setdefault("retry", NO_JITTER)
        api = AsyncSchedulerAPI(SECRET, **otel.options, **options)
        use_clock(api, clock)
        made.append(api)
        return api

    yield build
    for api in made:
        await api.aclose()


def attempts_of(otel: Telemetry, call: ReadableSpan) -> list[ReadableSpan]:
    kids = otel.children(call)
    assert all(kid.kind is SpanKind.CLIENT for kid in kids)
    return kids


# -- a created call ---------------------------------------------------------------------------


async def test_a_created_call_is_one_internal_span_with_one_client_span_per_attempt(
    otel: Telemetry, traced: Callable[..., AsyncSchedulerAPI], mock: respx.MockRouter
) -> None:
    mock.post(CREATE_URL).mock(return_value=ok_response())
    api = traced(data_center="us")
    created = await api.create_scheduler_request(seed_request())

    call = otel.span("cronofy.create_scheduler_request")
    assert call.kind is SpanKind.INTERNAL
    assert call.status.status_code is StatusCode.UNSET
    assert call.attributes is not None
    assert call.attributes["cronofy.operation"] == "create_scheduler_request"
    assert call.attributes["cronofy.data_center"] == "us"
    assert call.attributes["cronofy.attempts"] == 1
    assert call.attributes["cronofy.outcome_unknown"] is False
    assert call.attributes["cronofy.outcome"] == "created"
    assert call.attributes["cronofy.request_id"] == created.scheduler_request_id
    assert call.attributes["cronofy.pacing_wait_s"] == 0.0
    assert "error.type" not in call.attributes

    (http,) = attempts_of(otel, call)
    assert http.name == "POST"
    assert http.attributes == {
        "http.request.method": "POST",
        "server.address": "api.cronofy.com",
        "server.port": 443,
        "url.full": CREATE_URL,
        "http.response.status_code": 200,
    }
    assert http.status.status_code is StatusCode.UNSET
    # The HTTP span is the send alone, within the call's.
    assert call.start_time is not None
    assert http.start_time is not None
    assert call.end_time is not None
    assert http.end_time is not None
    assert call.start_time <= http.start_time <= http.end_time <= call.end_time

    attributes = {"cronofy.operation": "create_scheduler_request", "cronofy.data_center": "us"}
    assert (
        otel.total("cronofy.client.requests", **attributes, **{"http.response.status_code": 200})
        == 1
    )
    (duration,) = otel.points("cronofy.client.request.duration")
    assert duration.count == 1
    assert duration.attributes == {
        **attributes,
        "http.request.method": "POST",
        "http.response.status_code": 200,
    }
    (wait,) = otel.points("cronofy.client.rate_limit.wait")
    assert (wait.count, wait.value) == (1, 0.0)
    assert wait.attributes == attributes
    assert len(otel.points("cronofy.client.outcomes")) == 1
    assert otel.total("cronofy.client.outcomes", **{"cronofy.outcome": "created"}) == 1
    assert otel.points("cronofy.client.retries") == []


async def test_each_operation_has_its_span(
    otel: Telemetry, traced: Callable[..., AsyncSchedulerAPI], mock: respx.MockRouter
) -> None:
    body = json.loads(ok_response().content)["scheduler_request"]
    scheduling = {"scheduling_request": {**body, "scheduling_request_id": "sch_1"}}
    mock.post(SCHEDULING_URL).mock(return_value=httpx.Response(200, json=scheduling))
    mock.post(QUERY_URL).mock(return_value=httpx.Response(200, json={"scheduling_requests": []}))
    mock.post(CANCEL_URL).mock(return_value=httpx.Response(202))
    api = traced()
    await api.create_scheduling_request(
        NewSchedulingRequest(
            host=Host(sub="acc_1"),
            recipients=[Recipient(email="doc@evenitron.com")],
            event=Event(summary="Intro"),
        )
    )
    await api.query_scheduling_requests(["sch_1"])
    await api.cancel_scheduling_request("sch_1")
    names = [s.name for s in otel.spans() if s.kind is SpanKind.INTERNAL]
    assert names == [
        "cronofy.create_scheduling_request",
        "cronofy.query_scheduling_requests",
        "cronofy.cancel_scheduling_request",
    ]
    cancel = otel.span("cronofy.cancel_scheduling_request")
    assert cancel.attributes is not None
    assert "cronofy.outcome" not in cancel.attributes  # outcomes are what became of a create
    (http,) = attempts_of(otel, cancel)
    assert http.attributes is not None
    assert http.attributes["http.response.status_code"] == 202
    assert otel.total("cronofy.client.outcomes") == 1


# -- retries, 429s, pacing --------------------------------------------------------------------


async def test_a_retried_connect_error_is_an_event_and_a_resent_attempt(
    otel: Telemetry, traced: Callable[..., AsyncSchedulerAPI], mock: respx.MockRouter
) -> None:
    mock.post(CREATE_URL).mock(side_effect=sequence(httpx.ConnectError("refused")))
    api = traced()
    await api.create_scheduler_request(seed_request())

    call = otel.span("cronofy.create_scheduler_request")
    assert call.attributes is not None
    assert call.attributes["cronofy.attempts"] == 2
    assert call.attributes["cronofy.outcome"] == "created"
    (retry,) = [e for e in call.events if e.name == "cronofy.retry"]
    assert retry.attributes == {
        "cronofy.attempt": 1,
        "cronofy.retry.delay_s": 0.5,
        "cronofy.retry.reason": "not sent (ConnectError)",
        "error.type": "httpx.ConnectError",
    }
    first, second = attempts_of(otel, call)
    assert first.attributes is not None
    assert second.attributes is not None
    assert first.attributes["error.type"] == "httpx.ConnectError"
    assert "http.response.status_code" not in first.attributes
    assert "http.request.resend_count" not in first.attributes
    assert first.status.status_code is StatusCode.ERROR
    assert second.attributes["http.request.resend_count"] == 1
    assert second.attributes["http.response.status_code"] == 200

    assert otel.total("cronofy.client.retries", **{"error.type": "httpx.ConnectError"}) == 1
    assert otel.total("cronofy.client.requests", **{"error.type": "httpx.ConnectError"}) == 1
    assert otel.total("cronofy.client.requests", **{"http.response.status_code": 200}) == 1


async def test_a_429_pause_is_an_event_and_counts_as_waiting(
    otel: Telemetry, traced: Callable[..., AsyncSchedulerAPI], mock: respx.MockRouter
) -> None:
    mock.post(CREATE_URL).mock(
        side_effect=sequence(httpx.Response(429, headers={"Retry-After": "2"}))
    )
    api = traced(rate_limit=None)
    await api.create_scheduler_request(seed_request())

    call = otel.span("cronofy.create_scheduler_request")
    assert call.attributes is not None
    assert call.attributes["cronofy.attempts"] == 2
    assert call.attributes["cronofy.pacing_wait_s"] == pytest.approx(2.0)
    events = {e.name: e for e in call.events}
    assert events["cronofy.retry"].attributes == {
        "cronofy.attempt": 1,
        "cronofy.retry.delay_s": 2.0,
        "cronofy.retry.reason": "rate limited (429)",
        "error.type": "429",
    }
    pause = events["cronofy.rate_limit_pause"]
    assert pause.attributes is not None
    assert pause.attributes["cronofy.attempt"] == 2  # the attempt it held back
    assert pause.attributes["cronofy.wait_s"] == pytest.approx(2.0)
    first, _ = attempts_of(otel, call)
    assert first.attributes is not None
    assert first.attributes["http.response.status_code"] == 429
    assert first.attributes["error.type"] == "429"
    assert first.status.status_code is StatusCode.ERROR

    assert otel.total("cronofy.client.requests", **{"http.response.status_code": 429}) == 1
    (wait,) = otel.points("cronofy.client.rate_limit.wait")
    assert wait.value == pytest.approx(2.0)
    assert otel.total("cronofy.client.retries", **{"error.type": "429"}) == 1


async def test_pacing_is_measured_per_call(
    otel: Telemetry, traced: Callable[..., AsyncSchedulerAPI], mock: respx.MockRouter
) -> None:
    mock.post(CREATE_URL).mock(return_value=ok_response())
    api = traced(rate_limit=RateLimit(per_second=1, per_minute=None, margin=0))
    await api.create_scheduler_request(seed_request())
    await api.create_scheduler_request(seed_request())
    first, second = otel.spans("cronofy.create_scheduler_request")
    assert first.attributes is not None
    assert second.attributes is not None
    assert first.attributes["cronofy.pacing_wait_s"] == 0.0
    assert second.attributes["cronofy.pacing_wait_s"] == pytest.approx(1.0)
    (wait,) = otel.points("cronofy.client.rate_limit.wait")
    assert wait.count == 2
    assert wait.value == pytest.approx(1.0)


# -- failures ---------------------------------------------------------------------------------


async def test_an_unknown_outcome_is_on_the_span_and_counted(
    otel: Telemetry, traced: Callable[..., AsyncSchedulerAPI], mock: respx.MockRouter
) -> None:
    mock.post(CREATE_URL).mock(side_effect=httpx.ReadTimeout("slow"))
    api = traced()
    with pytest.raises(APITimeoutError):
        await api.create_scheduler_request(seed_request())
    call = otel.span("cronofy.create_scheduler_request")
    assert call.attributes is not None
    assert call.attributes["cronofy.outcome_unknown"] is True
    assert call.attributes["cronofy.outcome"] == "unknown"
    assert call.attributes["error.type"] == "cronofy_async.APITimeoutError"
    assert call.status.status_code is StatusCode.ERROR
    (http,) = attempts_of(otel, call)
    assert http.attributes is not None
    assert http.attributes["error.type"] == "httpx.ReadTimeout"
    assert otel.total("cronofy.client.outcomes", **{"cronofy.outcome": "unknown"}) == 1


async def test_a_refusal_names_its_status_and_says_nothing_of_the_body(
    otel: Telemetry, traced: Callable[..., AsyncSchedulerAPI], mock: respx.MockRouter
) -> None:
    echo = {
        "errors": {"recipients": [{"key": "errors.invalid", "description": "doc@evenitron.com"}]}
    }
    mock.post(CREATE_URL).mock(return_value=httpx.Response(422, json=echo))
    api = traced()
    with pytest.raises(ValidationError):
        await api.create_scheduler_request(seed_request())
    call = otel.span("cronofy.create_scheduler_request")
    assert call.attributes is not None
    assert call.attributes["error.type"] == "cronofy_async.ValidationError"
    assert call.attributes["cronofy.outcome"] == "failed"
    assert call.status.description == "cronofy_async.ValidationError"
    assert call.events == ()  # no exception event: its message may quote the body
    (http,) = attempts_of(otel, call)
    assert http.attributes is not None
    assert http.attributes["error.type"] == "422"
    assert "doc@evenitron.com" not in everything_exported(otel)


async def test_cancelled_mid_request_ends_both_spans_with_an_error(
    otel: Telemetry, traced: Callable[..., AsyncSchedulerAPI], mock: respx.MockRouter
) -> None:
    arrived = asyncio.Event()

    async def hang(request: httpx.Request) -> httpx.Response:
        arrived.set()
        await asyncio.Event().wait()
        raise AssertionError("never answered")

    mock.post(CREATE_URL).mock(side_effect=hang)
    api = traced()
    task = asyncio.ensure_future(api.create_scheduler_request(seed_request()))
    await arrived.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    call = otel.span("cronofy.create_scheduler_request")
    (http,) = attempts_of(otel, call)
    for span in (call, http):
        assert span.end_time is not None
        assert span.status.status_code is StatusCode.ERROR
        assert span.attributes is not None
        assert span.attributes["error.type"] == "asyncio.CancelledError"
    assert call.attributes is not None
    assert call.attributes["cronofy.outcome_unknown"] is True  # it was on the wire
    assert call.attributes["cronofy.outcome"] == "unknown"
    # Nothing of the cancelled call stays current in the task that awaited it.
    from opentelemetry import trace

    assert not trace.get_current_span().get_span_context().is_valid


async def test_cancelled_while_paced_is_not_sent(
    otel: Telemetry, traced: Callable[..., AsyncSchedulerAPI], mock: respx.MockRouter
) -> None:
    mock.post(CREATE_URL).mock(return_value=ok_response())
    api = traced(rate_limit=RateLimit(per_second=1, per_minute=None, margin=0))
    await api.create_scheduler_request(seed_request())
    held = asyncio.Event()
    clock: FakeClock = api._shared.clock  # type: ignore[assignment]

    async def stall(seconds: float) -> None:
        held.set()
        await asyncio.Event().wait()

    clock.sleep = stall  # type: ignore[method-assign]
    task = asyncio.ensure_future(api.create_scheduler_request(seed_request()))
    await held.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    _, second = otel.spans("cronofy.create_scheduler_request")
    assert second.attributes is not None
    assert second.attributes["cronofy.outcome"] == "not_sent"
    assert second.attributes["cronofy.outcome_unknown"] is False
    assert second.attributes["cronofy.attempts"] == 0
    assert otel.children(second) == []
    assert otel.total("cronofy.client.outcomes", **{"cronofy.outcome": "not_sent"}) == 1


# -- idempotency keys -------------------------------------------------------------------------


async def test_a_keyed_create_answered_from_the_ledger_is_a_span_with_nothing_sent(
    otel: Telemetry, traced: Callable[..., AsyncSchedulerAPI], mock: respx.MockRouter
) -> None:
    route = mock.post(CREATE_URL).mock(return_value=ok_response())
    api = traced(ledger=MemoryLedger())
    await api.create_scheduler_request(seed_request(), idempotency_key="doc@evenitron.com")
    await api.create_scheduler_request(seed_request(), idempotency_key="doc@evenitron.com")
    assert route.call_count == 1
    sent, replayed = otel.spans("cronofy.create_scheduler_request")
    assert sent.attributes is not None
    assert replayed.attributes is not None
    assert sent.attributes["cronofy.replayed"] is False
    assert len(otel.children(sent)) == 1
    assert replayed.attributes["cronofy.replayed"] is True
    assert replayed.attributes["cronofy.attempts"] == 0
    assert otel.children(replayed) == []
    # One invite: a replay is not a second create (it was counted when it was sent).
    assert otel.total("cronofy.client.outcomes", **{"cronofy.outcome": "created"}) == 1
    # The key is the caller's and may be an email: it is never exported.
    assert "doc@evenitron.com" not in everything_exported(otel)


# -- what is never exported, and what may be ---------------------------------------------------


async def test_recipients_are_exported_only_when_asked(
    otel: Telemetry, traced: Callable[..., AsyncSchedulerAPI], mock: respx.MockRouter
) -> None:
    mock.post(CREATE_URL).mock(return_value=ok_response())
    await traced().create_scheduler_request(seed_request())
    assert "doc@evenitron.com" not in everything_exported(otel)
    await traced(record_recipients=True).create_scheduler_request(seed_request())
    _, asked = otel.spans("cronofy.create_scheduler_request")
    assert asked.attributes is not None
    assert asked.attributes["cronofy.recipients"] == ("doc@evenitron.com",)
    (http,) = attempts_of(otel, asked)
    assert http.attributes is not None
    assert "doc@evenitron.com" not in str(dict(http.attributes))


def test_record_recipients_must_be_a_bool() -> None:
    with pytest.raises(ConfigurationError, match="record_recipients"):
        AsyncSchedulerAPI(SECRET, record_recipients="yes")  # type: ignore[arg-type]


def test_providers_must_be_providers() -> None:
    with pytest.raises(ConfigurationError, match="tracer_provider"):
        AsyncSchedulerAPI(SECRET, tracer_provider=object())  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="meter_provider"):
        AsyncSchedulerAPI(SECRET, meter_provider=object())  # type: ignore[arg-type]


async def test_url_full_never_carries_userinfo_or_the_secret(
    otel: Telemetry, traced: Callable[..., AsyncSchedulerAPI], mock: respx.MockRouter
) -> None:
    # A proxy's credentials in the base URL, and the secret itself where no secret belongs.
    base = f"https://user:{SECRET}@proxy.example:8443/cronofy"
    mock.post("https://proxy.example:8443/cronofy/v1/scheduler_requests").mock(
        return_value=ok_response()
    )
    await traced(base_url=base).create_scheduler_request(seed_request())
    (http,) = [s for s in otel.spans() if s.kind is SpanKind.CLIENT]
    assert http.attributes is not None
    assert http.attributes["url.full"] == (
        "https://REDACTED:REDACTED@proxy.example:8443/cronofy/v1/scheduler_requests"
    )
    assert http.attributes["server.address"] == "proxy.example"
    assert http.attributes["server.port"] == 8443
    assert SECRET not in everything_exported(otel)


async def test_query_values_of_a_page_link_are_redacted(
    otel: Telemetry, traced: Callable[..., AsyncSchedulerAPI], mock: respx.MockRouter
) -> None:
    members = "https://api.cronofy.com/v1/organizational_unit_members"
    page = {"sub": "acc_1", "email": "marty@example.com"}
    mock.get(members).mock(
        return_value=httpx.Response(
            200,
            json={
                "organizational_unit_members": [page],
                "pages": {"current": 1, "total": 2, "next_page": f"{members}/pages/t2?sig=abc"},
            },
        )
    )
    mock.get(f"{members}/pages/t2").mock(
        return_value=httpx.Response(
            200,
            json={
                "organizational_unit_members": [{**page, "sub": "acc_2"}],
                "pages": {"current": 2, "total": 2},
            },
        )
    )
    listed = [m async for m in traced().iter_organizational_unit_members()]
    assert len(listed) == 2
    calls = otel.spans("cronofy.iter_organizational_unit_members")
    assert len(calls) == 2  # one per page
    urls = [
        s.attributes["url.full"]
        for s in otel.spans()
        if s.kind is SpanKind.CLIENT and s.attributes is not None
    ]
    # Below the list's path is the link's token, which reads the page: never exported.
    assert urls == [members, f"{members}/REDACTED"]
    assert "marty@example.com" not in everything_exported(otel)


# -- no provider -------------------------------------------------------------------------------


async def test_without_a_provider_nothing_is_built_per_call(mock: respx.MockRouter) -> None:
    # No test sets the global providers: this API object finds none and reports nothing.
    mock.post(CREATE_URL).mock(return_value=ok_response())
    async with AsyncSchedulerAPI(SECRET) as api:
        await api.create_scheduler_request(seed_request())
        assert api._shared.telemetry is None


async def test_only_a_meter_provider_reports_metrics(
    otel: Telemetry, mock: respx.MockRouter
) -> None:
    mock.post(CREATE_URL).mock(return_value=ok_response())
    async with AsyncSchedulerAPI(SECRET, meter_provider=otel.meter_provider) as api:
        await api.create_scheduler_request(seed_request())
    assert otel.spans() == []
    assert otel.total("cronofy.client.requests") == 1


async def test_views_report_their_own_data_center(
    otel: Telemetry, traced: Callable[..., AsyncSchedulerAPI], mock: respx.MockRouter
) -> None:
    mock.post("https://api-uk.cronofy.com/v1/scheduler_requests").mock(return_value=ok_response())
    api = traced()
    await (
        api.with_data_center("uk")
        .impersonate("acc_1")
        .create_scheduler_request(
            NewSchedulerRequest(
                recipients=[Recipient(email="doc@evenitron.com")], event=Event(summary="x")
            )
        )
    )
    call = otel.span("cronofy.create_scheduler_request")
    assert call.attributes is not None
    assert call.attributes["cronofy.data_center"] == "uk"
    (http,) = attempts_of(otel, call)
    assert http.attributes is not None
    assert http.attributes["server.address"] == "api-uk.cronofy.com"


async def test_the_callers_span_is_the_parent(
    otel: Telemetry, traced: Callable[..., AsyncSchedulerAPI], mock: respx.MockRouter
) -> None:
    mock.post(CREATE_URL).mock(return_value=ok_response())
    api = traced()
    tracer = otel.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("send invites") as outer:
        await api.create_scheduler_request(seed_request())
        from opentelemetry import trace

        assert trace.get_current_span() is outer  # the call's span is not left current
    (app,) = otel.spans("send invites")
    assert [s.name for s in otel.children(app)] == ["cronofy.create_scheduler_request"]


async def test_concurrent_calls_keep_their_own_spans(
    otel: Telemetry, traced: Callable[..., AsyncSchedulerAPI], mock: respx.MockRouter
) -> None:
    started = 0
    release = asyncio.Event()

    async def slow(request: httpx.Request) -> httpx.Response:
        nonlocal started
        started += 1
        await release.wait()
        return ok_response()

    mock.post(CREATE_URL).mock(side_effect=slow)
    api = traced(rate_limit=None)
    tasks = [asyncio.ensure_future(api.create_scheduler_request(seed_request())) for _ in range(5)]
    await until(lambda: started == 5, what="five requests in flight")
    release.set()
    await asyncio.gather(*tasks)
    calls = otel.spans("cronofy.create_scheduler_request")
    assert len(calls) == 5
    for call in calls:
        assert call.parent is None
        assert len(otel.children(call)) == 1
