"""stop() and a 401 send nothing new: an item waiting to retry after a 429 is not on the wire."""

import asyncio
from collections.abc import Callable
from typing import Any

from cronofy_async import AsyncSchedulerAPI, Outcome

from .conftest import SECRET, SEED_RESPONSE, seed_request
from .helpers import http_response, raw_server, until


class GatedLimiter:
    """Admits the first acquire at once; later ones wait until `open` is set."""

    def __init__(self) -> None:
        self.calls = 0
        self.open = asyncio.Event()
        self.waiting = asyncio.Event()

    async def acquire(self) -> None:
        self.calls += 1
        if self.calls > 1:
            self.waiting.set()
            await self.open.wait()


async def stop_while_a_429d_item_waits(
    make_stream: Callable[[AsyncSchedulerAPI], Any],
) -> tuple[list[bytes], list[Any]]:
    """Send one item that gets a 429; stop the stream while it waits to retry; what came?"""
    arrivals: list[bytes] = []

    async def answer(request: bytes) -> bytes:
        arrivals.append(request)
        if len(arrivals) == 1:
            return http_response(
                429, b"{}", reason="Too Many Requests", headers=[("Retry-After", "0")]
            )
        return http_response(200, SEED_RESPONSE.encode())

    limiter = GatedLimiter()
    results: list[Any] = []
    async with raw_server(answer) as url:  # noqa: SIM117 - the server outlives the API
        async with AsyncSchedulerAPI(SECRET, base_url=url, rate_limit=limiter) as api:
            stream = make_stream(api)
            async with stream:

                async def consume() -> None:
                    async for r in stream:
                        results.append(r)

                consumer = asyncio.ensure_future(consume())
                # The item got its 429 and now waits for pacing before its retry.
                await asyncio.wait_for(limiter.waiting.wait(), 5)
                stream.stop()  # "nothing new is ... sent; items waiting for pacing ... NOT_SENT"
                limiter.open.set()
                await asyncio.wait_for(consumer, 5)
    return arrivals, results


async def test_stop_while_a_429d_item_waits_for_pacing_sends_nothing_new() -> None:
    arrivals, results = await stop_while_a_429d_item_waits(
        lambda api: api.iter_create_scheduler_requests([seed_request()], concurrency=1)
    )
    # Promise: after stop(), no byte goes out; the waiting item comes out NOT_SENT.
    assert len(arrivals) == 1, f"{len(arrivals)} requests reached the server; 1 expected"
    assert [r.outcome for r in results] == [Outcome.NOT_SENT]


class GatedAfter(GatedLimiter):
    def __init__(self, free: int) -> None:
        super().__init__()
        self.free = free

    async def acquire(self) -> None:
        self.calls += 1
        if self.calls > self.free:
            self.waiting.set()
            await self.open.wait()


async def test_a_401_stops_the_batch_but_a_429d_item_is_still_sent_after_it() -> None:
    arrivals = []

    async def answer(request: bytes) -> bytes:
        arrivals.append(request)
        if len(arrivals) == 1:
            return http_response(
                429, b"{}", reason="Too Many Requests", headers=[("Retry-After", "0")]
            )
        if len(arrivals) == 2:
            return http_response(401, b"{}", reason="Unauthorized")
        return http_response(200, SEED_RESPONSE.encode())

    limiter = GatedAfter(free=2)
    async with raw_server(answer) as url:  # noqa: SIM117 - the server outlives the API
        async with AsyncSchedulerAPI(SECRET, base_url=url, rate_limit=limiter) as api:
            stream = api.iter_create_scheduler_requests(
                [seed_request(), seed_request()], concurrency=2
            )
            results = []
            async with stream:

                async def consume() -> None:
                    async for r in stream:
                        results.append(r)

                consumer = asyncio.ensure_future(consume())
                await asyncio.wait_for(limiter.waiting.wait(), 5)
                await until(lambda: stream.stopped_by is not None, what="the 401 stop")
                limiter.open.set()
                await asyncio.wait_for(consumer, 5)
    # "A 401 ... dooms every later item: items not yet sent ... are reported NOT_SENT".
    assert len(arrivals) == 2, f"{len(arrivals)} requests reached the server after the 401 stop"


async def test_cancelled_batch_reports_a_429d_item_unknown() -> None:
    """A 429 proves nothing was processed, yet the cancelled item lands in UNKNOWN ('may exist')."""
    arrivals = []

    async def answer(request: bytes) -> bytes:
        arrivals.append(request)
        return http_response(429, b"{}", reason="Too Many Requests", headers=[("Retry-After", "0")])

    limiter = GatedLimiter()
    async with raw_server(answer) as url:  # noqa: SIM117 - the server outlives the API
        async with AsyncSchedulerAPI(SECRET, base_url=url, rate_limit=limiter) as api:
            stream = api.iter_create_scheduler_requests([seed_request()], concurrency=1)

            async def consume() -> None:
                async with stream:
                    async for _ in stream:
                        pass

            consumer = asyncio.ensure_future(consume())
            await asyncio.wait_for(limiter.waiting.wait(), 5)
            consumer.cancel()
            await asyncio.gather(consumer, return_exceptions=True)
    assert len(arrivals) == 1
    [left] = stream.unfinished
    assert left.outcome in (Outcome.NOT_SENT, Outcome.FAILED), left.outcome


async def test_the_commands_sender_lets_stop_hold_back_a_429d_row() -> None:
    # The batch command wraps each item's send counter to record a row as it leaves. The
    # wrapper must pass on that a failed attempt is off the wire: otherwise a first Ctrl-C
    # (stop()) leaves a 429'd row to be sent again after its pause, and a cancel calls it
    # unknown although it provably never got through.
    from types import SimpleNamespace

    from cronofy_async._batch import BatchStream
    from cronofy_async._cli._batch_command import _sender

    sending: list[object] = []
    run = SimpleNamespace(sending=sending.append, args=SimpleNamespace(resend_unknown=False))
    row = SimpleNamespace(invite=SimpleNamespace(impersonate=None), request=seed_request())
    arrivals, results = await stop_while_a_429d_item_waits(
        lambda api: BatchStream(None, [row], concurrency=1, send=_sender(api, run, keyed=False))  # type: ignore[arg-type]
    )
    assert len(arrivals) == 1, f"{len(arrivals)} requests reached the server; 1 expected"
    assert [r.outcome for r in results] == [Outcome.NOT_SENT]
    assert sending == [row]  # recorded as leaving once, when it did
