"""
Telemetry at its edges, from a hostile review of issue 24: what is counted once, what is found
late, what is left to the application's instrumentation, and what is never exported.

Sync tests driving asyncio.run (the fake in process or on loopback), and subprocesses where
global providers or the logging set-up must start fresh.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Literal

import pytest
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.trace import SpanKind

from cronofy_async import (
    APIConnectionError,
    AsyncSchedulerAPI,
    Event,
    Host,
    MemoryLedger,
    NewSchedulerRequest,
    OutcomeUnknownError,
    PaginationError,
    Recipient,
    ResponseFormatError,
)
from cronofy_async.testing import FakeCronofy, Fault
from tests.helpers import http_response, raw_server
from tests.otel_support import Telemetry, in_memory

Backend = Literal["httpx", "aiohttp"]
MAIN = Path(__file__).resolve().parent.parent


def make_otel() -> Telemetry:
    return in_memory()


def invite(i: int = 0) -> NewSchedulerRequest:
    return NewSchedulerRequest(
        host=Host(sub="acc_1"),
        recipients=[Recipient(email=f"person{i}@example.com")],
        event=Event(summary="Intro call"),
    )


# -- cronofy.client.outcomes counts each create once ------------------------------------------


def test_a_replayed_keyed_create_is_not_counted_as_created_again() -> None:
    otel = make_otel()
    fake = FakeCronofy(members=["acc_1"], rate_limit=None)

    async def main() -> None:
        api = fake.api(rate_limit=None, ledger=MemoryLedger(), **otel.options)
        for _ in range(3):  # one send, then two answers from the ledger
            await api.create_scheduler_request(invite(0), idempotency_key="order-1")
        await api.aclose()

    asyncio.run(main())
    assert fake.created_count == 1
    replayed = [
        s.attributes.get("cronofy.replayed")
        for s in otel.spans("cronofy.create_scheduler_request")
        if s.attributes
    ]
    assert replayed == [False, True, True]  # the spans do say so...
    # ...but the outcome counter says three invites were created: a dashboard of "created"
    # triples, and cannot tell a replay from a creation (no attribute says replayed).
    assert otel.total("cronofy.client.outcomes", **{"cronofy.outcome": "created"}) == 1


def test_an_unknown_outcome_refused_again_from_the_ledger_is_not_a_new_unknown() -> None:
    otel = make_otel()
    fake = FakeCronofy(members=["acc_1"], rate_limit=None)
    fake.inject(Fault.DROP_AFTER)

    async def main() -> None:
        api = fake.api(rate_limit=None, ledger=MemoryLedger(), **otel.options)
        with pytest.raises(APIConnectionError):
            await api.create_scheduler_request(invite(0), idempotency_key="order-2")
        for _ in range(2):  # refused from the ledger: nothing sent
            with pytest.raises(OutcomeUnknownError):
                await api.create_scheduler_request(invite(0), idempotency_key="order-2")
        await api.aclose()

    asyncio.run(main())
    assert fake.received == 1
    # One ambiguous invite, counted as three unknown outcomes.
    assert otel.total("cronofy.client.outcomes", **{"cronofy.outcome": "unknown"}) == 1


# -- meter_provider= alone leaves HTTP spans to the application's instrumentation -----------


def test_a_meter_only_api_object_does_not_hide_the_httpx_instrumentations_spans() -> None:
    otel = make_otel()
    fake = FakeCronofy(members=["acc_1"], rate_limit=None)
    instrumentor = HTTPXClientInstrumentor()
    instrumentor.instrument(tracer_provider=otel.tracer_provider)

    async def main() -> None:
        async with fake.serve() as url:
            # Metrics from the library, traces from the app's httpx instrumentation.
            api = AsyncSchedulerAPI(
                fake.secret, base_url=url, rate_limit=None, meter_provider=otel.meter_provider
            )
            await api.create_scheduler_request(invite(0))
            await api.aclose()

    try:
        asyncio.run(main())
    finally:
        instrumentor.uninstrument()
    assert otel.total("cronofy.client.requests") == 1  # the library reported its metric
    # The library made no CLIENT span (no tracer), yet suppressed the instrumentation's:
    # the request is in no trace at all. Without meter_provider= the instrumentation reports it.
    client = [s for s in otel.spans() if s.kind is SpanKind.CLIENT]
    assert len(client) == 1, [s.name for s in otel.spans()]


# -- a page link's token is never exported ------------------------------------------------


def test_a_page_links_token_is_not_exported_in_url_full() -> None:
    otel = make_otel()
    fake = FakeCronofy(members=["acc_1", "acc_2", "acc_3"], rate_limit=None, page_size=1)

    async def main() -> None:
        api = fake.api(rate_limit=None, **otel.options)
        members = [m async for m in api.iter_organizational_unit_members()]
        assert len(members) == 3
        await api.aclose()

    asyncio.run(main())
    urls = [
        str(s.attributes["url.full"])
        for s in otel.spans()
        if s.kind is SpanKind.CLIENT and s.attributes
    ]
    assert len(urls) == 3
    # Operation.what keeps "its token ... out of every log line", and url.full redacts query
    # values; but the token of a next_page link (in its path) is exported verbatim.
    for url in urls:
        assert "/pages/" not in url or url.endswith("/pages/REDACTED"), url


# -- an unreadable answer keeps its status code, on both backends ---------------------------


@pytest.mark.parametrize("backend", ["httpx", "aiohttp"])
def test_an_undecodable_answer_keeps_its_status_code(backend: Backend) -> None:
    otel = make_otel()

    async def answer(request: bytes) -> bytes:
        return http_response(
            200,
            b"this is not gzip",
            headers=[("Content-Type", "application/json"), ("Content-Encoding", "gzip")],
        )

    async def main() -> None:
        async with raw_server(answer) as url:
            api = AsyncSchedulerAPI(
                "sk_test_x", base_url=url, rate_limit=None, http_backend=backend, **otel.options
            )
            with pytest.raises(ResponseFormatError) as raised:
                await api.create_scheduler_request(invite(0))
            assert getattr(raised.value, "status_code", None) == 200  # the error knows it
            await api.aclose()

    asyncio.run(main())
    (http,) = [s for s in otel.spans() if s.kind is SpanKind.CLIENT]
    assert http.attributes is not None
    assert http.attributes.get("http.response.status_code") == 200, dict(http.attributes)


# -- the refused page link line names the operation ----------------------------------------


def test_the_refused_page_link_line_names_the_operation(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="cronofy_async")
    page = json.dumps(
        {
            "organizational_unit_members": [{"sub": "acc_1", "email": "m@example.com"}],
            "pages": {"current": 1, "total": 2, "next_page": "https://evil.example/x"},
        }
    ).encode()

    async def answer(request: bytes) -> bytes:
        return http_response(200, page, headers=[("Content-Type", "application/json")])

    async def main() -> None:
        async with raw_server(answer) as url:
            api = AsyncSchedulerAPI("sk_test_x", base_url=url, rate_limit=None)
            with pytest.raises(PaginationError):
                _ = [m async for m in api.iter_organizational_unit_members()]
            await api.aclose()

    asyncio.run(main())
    (line,) = [r.getMessage() for r in caplog.records if r.name == "cronofy_async"]
    # Every other line starts with the operation ("create_scheduler_request (POST ...)");
    # this one says "stopped listing /v1/organizational_unit_members after 1 item on 1 page".
    assert "iter_organizational_unit_members" in line, line
    assert "m@example.com" not in caplog.text
