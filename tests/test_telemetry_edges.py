"""
Telemetry at its edges, from a hostile review of issue 24: what is counted once, what is found
late, what is left to the application's instrumentation, and what is never exported.

Sync tests driving asyncio.run (the fake in process or on loopback), and subprocesses where
global providers or the logging set-up must start fresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
from pathlib import Path
from typing import Literal

import pytest
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.trace import SpanKind

from cronofy_async import (
    APIConnectionError,
    APIError,
    AsyncSchedulerAPI,
    Event,
    Host,
    LedgerEntry,
    MemoryLedger,
    NewSchedulerRequest,
    OutcomeUnknownError,
    PaginationError,
    Recipient,
    ResponseFormatError,
    _logs,
)
from cronofy_async.testing import FakeCronofy, Fault
from tests.helpers import http_response, raw_server, run_python
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


# -- what the ledger answered is counted once, and only once ---------------------------------


class RecordingLedger(MemoryLedger):
    """A MemoryLedger that remembers the fingerprint of each claim."""

    prints: list[str]

    async def claim(
        self, key: str, fingerprint: str, *, owner: str, resend_unknown: bool = False
    ) -> LedgerEntry:
        self.prints = [*getattr(self, "prints", []), fingerprint]
        return await super().claim(key, fingerprint, owner=owner, resend_unknown=resend_unknown)


def test_a_send_whose_holder_died_is_counted_once_as_unknown() -> None:
    """
    A process claims the key, sends, and dies (OOM kill, deploy) before its call ends: it
    never counted an outcome. The first call to find the lapsed lease counts it as unknown,
    once, although it sends nothing.
    """
    otel = in_memory()
    fake = FakeCronofy(members=["acc_1"], rate_limit=None)
    ledger = RecordingLedger(lease=0.05, wait=0.5)

    async def main() -> None:
        api = fake.api(rate_limit=None, ledger=ledger, **otel.options)
        await api.create_scheduler_request(invite(0), idempotency_key="probe")  # learn the print
        print_ = ledger.prints[-1]
        # The dead process: claimed "order-9" (and sent it), then died; its lease lapses.
        await ledger.claim("order-9", print_, owner="4242-deadbeef0000")
        await asyncio.sleep(0.1)
        with pytest.raises(OutcomeUnknownError):
            await api.create_scheduler_request(invite(0), idempotency_key="order-9")
        await api.aclose()

    asyncio.run(main())
    assert otel.total("cronofy.client.outcomes", **{"cronofy.outcome": "unknown"}) == 1


def test_a_ledger_refusal_records_no_rate_limit_wait_as_a_replay_does_not() -> None:
    """A call the ledger refuses meets no limiter, as a replay does not: no wait is recorded."""
    from cronofy_async import APIConnectionError
    from cronofy_async.testing import Fault

    otel = in_memory()
    fake = FakeCronofy(members=["acc_1"], rate_limit=None)
    fake.inject(Fault.DROP_AFTER)

    async def main() -> None:
        api = fake.api(rate_limit=None, retry=None, ledger=MemoryLedger(), **otel.options)
        with pytest.raises(APIConnectionError):
            await api.create_scheduler_request(invite(0), idempotency_key="order-3")
        for _ in range(2):
            with pytest.raises(OutcomeUnknownError):
                await api.create_scheduler_request(invite(0), idempotency_key="order-3")
        await api.aclose()

    asyncio.run(main())
    assert fake.received == 1
    (point,) = otel.points("cronofy.client.rate_limit.wait")
    assert point.count == 1, f"{point.count} wait observations for 1 send"


# -- a batch counts to the telemetry of the moment -------------------------------------------


def test_a_batch_started_before_the_global_meter_provider_counts_its_outcomes() -> None:
    """
    A batch made while only a tracer provider is set counts each item to the telemetry of
    the moment it ends: items after the meter provider appears are in
    cronofy.client.outcomes.
    """
    done = run_python(
        """
        import asyncio
        from opentelemetry import metrics, trace
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from cronofy_async import Event, Host, NewSchedulerRequest, Recipient, _otel
        from cronofy_async.testing import FakeCronofy

        _otel.GLOBAL_CHECK_INTERVAL = 0.0
        fake = FakeCronofy(members=["acc_1"], rate_limit=None)
        api = fake.api(rate_limit=None)
        trace.set_tracer_provider(TracerProvider())
        reader = InMemoryMetricReader()

        def req(i):
            return NewSchedulerRequest(host=Host(sub="acc_1"),
                recipients=[Recipient(email=f"p{i}@example.com")], event=Event(summary="x"))

        async def main():
            stream = api.iter_create_scheduler_requests([req(i) for i in range(3)], concurrency=1)
            async with stream:
                async for result in stream:
                    if result.index == 0:  # metrics configured while the batch runs
                        metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
            await api.aclose()
            total = lambda name, **a: sum(
                p.value
                for rm in reader.get_metrics_data().resource_metrics
                for sm in rm.scope_metrics for m in sm.metrics if m.name == name
                for p in m.data.data_points
                if all(p.attributes.get(k) == v for k, v in a.items()))
            print(int(total("cronofy.client.requests")), int(total("cronofy.client.outcomes")))

        asyncio.run(main())
        """
    )
    assert done.returncode == 0, done.stderr
    requests, outcomes = map(int, done.stdout.split())
    # Items 1 and 2 end after the switch: both counted (item 1 may have been sent before it).
    assert outcomes == 2, f"{requests} requests counted, {outcomes} outcomes"
    assert requests >= 1


# -- page links: below the list's path is the token ------------------------------------------


@pytest.mark.parametrize(
    "tail", ["Pages/tok-SECRET123", "pages;v=1/tok-SECRET123", "tok-SECRET123"]
)
def test_any_accepted_page_link_keeps_its_token_out_of_url_full(tail: str) -> None:
    """Any link below the list's path is followed; below that path is its token: not exported."""
    otel = in_memory()
    served: list[bytes] = []

    async def answer(request: bytes) -> bytes:
        served.append(request)
        first = len(served) == 1
        pages: dict[str, object] = {"current": 1 if first else 2, "total": 2}
        if first:
            pages["next_page"] = f"/v1/organizational_unit_members/{tail}"
        body = {
            "organizational_unit_members": [
                {"sub": f"acc_{len(served)}", "email": "m@example.com"}
            ],
            "pages": pages,
        }
        return http_response(
            200, json.dumps(body).encode(), headers=[("Content-Type", "application/json")]
        )

    async def main() -> None:
        async with raw_server(answer) as url:
            api = AsyncSchedulerAPI("sk_test_x", base_url=url, rate_limit=None, **otel.options)
            members = [m async for m in api.iter_organizational_unit_members()]
            assert len(members) == 2
            await api.aclose()

    asyncio.run(main())
    assert b"tok-SECRET123" in served[1]  # the link was followed
    urls = [
        str(s.attributes["url.full"])
        for s in otel.spans()
        if s.kind is SpanKind.CLIENT and s.attributes
    ]
    assert len(urls) == 2
    assert not any("SECRET123" in u for u in urls), urls


def test_a_base_url_with_pages_in_its_path_keeps_the_api_path_in_url_full() -> None:
    """Only a page link's own path is left out: a base URL's "/pages/" stays."""
    otel = in_memory()
    fake = FakeCronofy(members=["acc_1"], rate_limit=None)

    async def main() -> None:
        async with fake.serve() as url:
            # A proxy mounted under /pages/ (any prefix with that segment will do).
            api = AsyncSchedulerAPI(
                fake.secret, base_url=url + "/pages/cronofy", rate_limit=None, **otel.options
            )
            # The fake does not route the prefix: the attempt's span is what matters.
            with contextlib.suppress(APIError):
                await api.create_scheduler_request(invite(0))
            await api.aclose()

    asyncio.run(main())
    (http,) = [s for s in otel.spans() if s.kind is SpanKind.CLIENT]
    assert http.attributes is not None
    full = str(http.attributes["url.full"])
    assert full.endswith("/pages/cronofy/v1/scheduler_requests"), full


# -- CRONOFY_LOG prints what no other handler does -------------------------------------------


@pytest.mark.parametrize("root_handler", ["null", "warning"])
def test_cronofy_log_debug_prints_when_the_root_handler_prints_nothing(root_handler: str) -> None:
    """A NullHandler, or a root handler at WARNING, prints nothing: the console does."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    logger = logging.getLogger(_logs.LOGGER)
    saved_logger = logger.handlers[:], logger.level
    for h in root.handlers[:]:
        root.removeHandler(h)
    for h in logger.handlers[:]:
        logger.removeHandler(h)
    app_out = io.StringIO()
    if root_handler == "null":
        root.addHandler(logging.NullHandler())
    else:
        h = logging.StreamHandler(app_out)
        h.setLevel(logging.WARNING)
        root.addHandler(h)
    try:
        handler = _logs.configure_from_env({"CRONOFY_LOG": "debug"})
        assert handler is not None
        console_out = io.StringIO()
        handler.setStream(console_out)  # type: ignore[attr-defined]
        logger.info("retrying create_scheduler_request in 1.00 s: attempt 1 of 3 failed")
        printed = console_out.getvalue() + app_out.getvalue()
        assert "retrying create_scheduler_request" in printed, "CRONOFY_LOG=debug printed nothing"
    finally:
        for h in logger.handlers[:]:
            logger.removeHandler(h)
        for h in saved_logger[0]:
            logger.addHandler(h)
        logger.setLevel(saved_logger[1])
        for h in root.handlers[:]:
            root.removeHandler(h)
        for h in saved_handlers:
            root.addHandler(h)
        root.setLevel(saved_level)
