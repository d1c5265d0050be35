"""
When a request counts as sent: at the last moment before its bytes go out, on both backends.

Everything before that (waiting for pacing, for the 429 pause, for an in-flight slot) is
"not sent": a batch stopped or cancelled there reports `Outcome.NOT_SENT` and sends nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any, Literal

import httpx
import pytest

from cronofy_async import (
    AsyncSchedulerAPI,
    BatchInputError,
    BatchResult,
    Event,
    Host,
    NewSchedulerRequest,
    Outcome,
    PermissionDeniedError,
    RateLimitError,
    Recipient,
    SchedulerRequest,
)
from cronofy_async._batch import BatchStream

from .conftest import SEED_RESPONSE
from .helpers import FakeClock, HeldServer, http_response, raw_server, until, use_clock

Backend = Literal["httpx", "aiohttp"]
OK = http_response(200, SEED_RESPONSE.encode())


@pytest.fixture(params=["httpx", "aiohttp"])
def backend(request: pytest.FixtureRequest) -> Backend:
    name: Backend = request.param
    return name


def invite(i: int) -> NewSchedulerRequest:
    return NewSchedulerRequest(
        host=Host(sub="acc_1"),
        recipients=[Recipient(email=f"person{i}@example.com")],
        event=Event(summary="Intro call"),
    )


def invites(count: int) -> Iterator[NewSchedulerRequest]:
    return (invite(i) for i in range(count))


class GatedLimiter:
    """A pace that lets `free` requests through, then holds every other until opened."""

    def __init__(self, free: int) -> None:
        self.free = free
        self.opened = asyncio.Event()
        self.waiting = 0

    async def acquire(self) -> None:
        if self.free > 0:
            self.free -= 1
            return
        self.waiting += 1
        try:
            await self.opened.wait()
        finally:
            self.waiting -= 1


def connect(
    url: str, backend: Backend, *, clock: FakeClock | None = None, **options: Any
) -> AsyncSchedulerAPI:
    options.setdefault("rate_limit", None)
    api = AsyncSchedulerAPI("sk_test", base_url=url, http_backend=backend, **options)
    use_clock(api, clock or FakeClock())
    return api


@pytest.fixture
async def held() -> AsyncIterator[tuple[HeldServer, str]]:
    server = HeldServer(OK)
    async with raw_server(server) as url:
        yield server, url
        server.release()


async def test_a_request_waiting_for_an_in_flight_slot_is_not_yet_sent(
    backend: Backend, held: tuple[HeldServer, str]
) -> None:
    server, url = held
    counted = 0

    def on_send() -> None:
        nonlocal counted
        counted += 1

    async with connect(url, backend, max_in_flight=1) as api:
        calls = [asyncio.ensure_future(api._create(invite(i), on_send)) for i in range(2)]
        await until(lambda: server.arrived == 1)
        for _ in range(20):
            await asyncio.sleep(0)
        assert counted == 1  # the second waits for the slot: it has not gone out
        server.release()
        await asyncio.gather(*calls)
    assert counted == 2
    assert server.arrived == 2


async def test_a_request_waiting_for_pacing_is_not_yet_sent(
    backend: Backend, held: tuple[HeldServer, str]
) -> None:
    server, url = held
    server.release()
    counted = 0

    def on_send() -> None:
        nonlocal counted
        counted += 1

    limiter = GatedLimiter(free=1)
    async with connect(url, backend, rate_limit=limiter) as api:
        calls = [asyncio.ensure_future(api._create(invite(i), on_send)) for i in range(2)]
        await until(lambda: server.arrived == 1 and limiter.waiting == 1)
        assert counted == 1
        limiter.opened.set()
        await asyncio.gather(*calls)
    assert counted == 2


async def test_a_429_arriving_while_a_request_waits_for_pacing_holds_it_too(
    backend: Backend,
) -> None:
    clock = FakeClock()
    arrivals: list[float] = []

    async def answer(request: bytes) -> bytes:
        arrivals.append(clock.now)
        if len(arrivals) == 1:
            return http_response(429, b"{}", headers=[("Retry-After", "5")])
        return OK

    limiter = GatedLimiter(free=1)
    async with (
        raw_server(answer) as url,
        connect(url, backend, clock=clock, rate_limit=limiter, retry=None) as api,
    ):
        first = asyncio.ensure_future(api.create_scheduler_request(invite(0)))
        second = asyncio.ensure_future(api.create_scheduler_request(invite(1)))
        with pytest.raises(RateLimitError):
            await first  # its 429 pauses every request of the API object for 5 s
        paused_at = clock.now
        assert limiter.waiting == 1
        limiter.opened.set()  # the second is paced through during the pause...
        await second
    assert len(arrivals) == 2
    assert arrivals[1] >= paused_at + 5  # ...and still waits it out before it goes


async def test_a_batch_cancelled_counts_only_what_reached_the_server_as_unknown(
    backend: Backend, held: tuple[HeldServer, str]
) -> None:
    server, url = held
    async with connect(url, backend, max_in_flight=2) as api:
        stream = api.iter_create_scheduler_requests(invites(10), concurrency=10)
        seen: list[BatchResult[NewSchedulerRequest, SchedulerRequest]] = []

        async def consume() -> None:
            async for result in stream:
                seen.append(result)

        task = asyncio.ensure_future(consume())
        await until(lambda: server.arrived == 2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert seen == []
    outcomes = sorted((r.index, r.outcome) for r in stream.unfinished)
    unknown = [i for i, outcome in outcomes if outcome is Outcome.UNKNOWN]
    assert len(unknown) == 2
    assert [o for _, o in outcomes].count(Outcome.NOT_SENT) == 8
    assert len(outcomes) == 10
    assert server.arrived == 2


async def test_stop_sends_nothing_that_waits_for_an_in_flight_slot(
    backend: Backend, held: tuple[HeldServer, str]
) -> None:
    server, url = held
    read: list[NewSchedulerRequest] = []

    def counted() -> Iterator[NewSchedulerRequest]:
        for request in invites(10):
            read.append(request)
            yield request

    async with connect(url, backend, max_in_flight=2) as api:
        stream = api.iter_create_scheduler_requests(counted(), concurrency=10)
        results: list[BatchResult[NewSchedulerRequest, SchedulerRequest]] = []

        async def consume() -> None:
            async for result in stream:
                results.append(result)

        task = asyncio.ensure_future(consume())
        # Every item read: two on the wire, eight waiting for an in-flight slot.
        await until(lambda: server.arrived == 2 and len(read) == 10)
        await asyncio.sleep(0.05)
        stream.stop()
        server.release()
        await task
    outcomes = [r.outcome for r in sorted(results, key=lambda r: r.index)]
    assert outcomes.count(Outcome.CREATED) == 2
    assert outcomes.count(Outcome.NOT_SENT) == 8
    assert len(outcomes) == 10
    assert server.arrived == 2
    assert all(r.attempts == 0 for r in results if r.outcome is Outcome.NOT_SENT)


async def test_stop_sends_nothing_that_waits_for_pacing(
    backend: Backend, held: tuple[HeldServer, str]
) -> None:
    server, url = held
    limiter = GatedLimiter(free=2)
    async with connect(url, backend, rate_limit=limiter) as api:
        stream = api.iter_create_scheduler_requests(invites(10), concurrency=10)
        results: list[BatchResult[NewSchedulerRequest, SchedulerRequest]] = []

        async def consume() -> None:
            async for result in stream:
                results.append(result)

        task = asyncio.ensure_future(consume())
        await until(lambda: server.arrived == 2 and limiter.waiting == 8)
        stream.stop()
        limiter.opened.set()  # too late: they were cancelled while waiting
        server.release()
        await task
    outcomes = [r.outcome for r in results]
    assert outcomes.count(Outcome.CREATED) == 2
    assert outcomes.count(Outcome.NOT_SENT) == 8
    assert server.arrived == 2


def send_failing(at: str, error: BaseException) -> Any:
    """A batch sender that fails before or after its item counts as sent."""

    async def send(item: int, on_send: Any) -> str:
        await asyncio.sleep(0)
        if at == "after":
            on_send()
        raise error

    return send


@pytest.mark.parametrize(
    ("at", "error", "outcome"),
    [
        ("before", RuntimeError("a bug before sending"), Outcome.FAILED),
        ("before", UnicodeEncodeError("utf-8", "x", 0, 1, "surrogate"), Outcome.FAILED),
        ("before", ValueError("Out of range float values are not JSON compliant"), Outcome.FAILED),
        ("after", RuntimeError("a bug after sending"), Outcome.UNKNOWN),
        ("after", UnicodeEncodeError("utf-8", "x", 0, 1, "surrogate"), Outcome.UNKNOWN),
    ],
)
async def test_an_item_s_outcome_follows_the_send_counter_not_the_exception_type(
    at: str, error: BaseException, outcome: Outcome
) -> None:
    stream: BatchStream[int, str] = BatchStream(
        None, [0], concurrency=1, send=send_failing(at, error)
    )
    results = [result async for result in stream]
    assert [r.outcome for r in results] == [outcome]
    assert results[0].error is error
    assert results[0].attempts == (1 if at == "after" else 0)


async def test_what_stops_a_batch_can_be_chosen() -> None:
    response = httpx.Response(403, request=httpx.Request("POST", "https://x/"))
    error = PermissionDeniedError("Cronofy answered", response=response, outcome_unknown=False)
    # By default a 403 stops the batch: nothing after it is sent.
    default: BatchStream[int, str] = BatchStream(
        None, range(3), concurrency=1, send=send_failing("before", error)
    )
    assert [r.outcome async for r in default] == [Outcome.FAILED, *[Outcome.NOT_SENT] * 2]
    assert default.stopped_by is error
    # A caller who knows a 403 is one item's problem says which stop it, and when.
    chosen: BatchStream[int, str] = BatchStream(
        None,
        range(3),
        concurrency=1,
        send=send_failing("before", error),
        stops_batch=lambda item, failure: item == 1 and failure is error,
    )
    assert [r.outcome async for r in chosen] == [*[Outcome.FAILED] * 2, Outcome.NOT_SENT]
    assert chosen.stopped_by is error


async def test_stop_then_cancel_leaves_nothing_unaccounted(
    backend: Backend, held: tuple[HeldServer, str]
) -> None:
    server, url = held
    async with connect(url, backend, max_in_flight=2) as api:
        stream = api.iter_create_scheduler_requests(invites(6), concurrency=6)
        task = asyncio.ensure_future(anext(stream))
        await until(lambda: server.arrived == 2)
        stream.stop()
        task.cancel()  # and the batch is abandoned before the stop could finish
        with pytest.raises(asyncio.CancelledError):
            await task
        await stream.aclose()
    outcomes = sorted((r.index, r.outcome) for r in stream.unfinished)
    assert len(outcomes) == 6
    assert [o for _, o in outcomes].count(Outcome.UNKNOWN) == 2
    assert [o for _, o in outcomes].count(Outcome.NOT_SENT) == 4
    assert server.arrived == 2


class Boom(BaseException):
    """Not an Exception: nothing in the batch may swallow it."""


async def test_a_crash_in_a_worker_is_raised_not_hung_on() -> None:
    async def send(item: int, on_send: Any) -> str:
        await asyncio.sleep(0)
        raise Boom

    stream: BatchStream[int, str] = BatchStream(None, range(3), concurrency=2, send=send)
    with pytest.raises(Boom):
        async with asyncio.timeout(10):
            _ = [result async for result in stream]


@pytest.mark.parametrize("concurrency", [2, 3])
async def test_a_crash_in_the_input_is_raised_not_hung_on(concurrency: int) -> None:
    # With 3, another worker finds the input ended before the crash reaches the results.
    def source() -> Iterator[int]:
        yield 0
        raise Boom

    async def send(item: int, on_send: Any) -> str:
        on_send()
        return "ok"

    stream: BatchStream[int, str] = BatchStream(None, source(), concurrency=concurrency, send=send)
    with pytest.raises(Boom):
        async with asyncio.timeout(10):
            _ = [result async for result in stream]


class HeldClock(FakeClock):
    """Virtual time whose sleeps never end on their own: a caller waits until cancelled."""

    def __init__(self) -> None:
        super().__init__()
        self.sleeping = 0

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.sleeping += 1
        try:
            await asyncio.Event().wait()
        finally:
            self.sleeping -= 1


WHERE = ["429-pause", "pacing", "in-flight-slot", "answer", "retry-pause", "retry-backoff"]


@pytest.mark.parametrize("where", WHERE)
async def test_a_call_cancelled_at_any_await_counts_exactly_what_reached_the_server(
    backend: Backend, where: str
) -> None:
    # The invariant behind every batch outcome: a request counted as sent reached the server,
    # and one that reached the server was counted, wherever the caller gives up.
    from cronofy_async import RetryPolicy

    clock = HeldClock()
    first = {
        "retry-pause": http_response(429, b"{}", headers=[("Retry-After", "5")]),
        "retry-backoff": http_response(503, b"{}"),
    }.get(where, OK)
    server = HeldServer(first, OK)
    if where != "answer" and where != "in-flight-slot":
        server.release()
    options: dict[str, Any] = {"retry": RetryPolicy(retry_unsafe=True)}
    limiter = GatedLimiter(free=0 if where == "pacing" else 10)
    options["rate_limit"] = limiter
    if where == "in-flight-slot":
        options["max_in_flight"] = 1
    counted: list[int] = []
    async with raw_server(server) as url, connect(url, backend, clock=clock, **options) as api:
        api._shared.limiter = limiter
        if where == "429-pause":
            cause = RateLimitError("429", response=httpx.Response(429), retry_after=5)
            api._shared.gate.pause(5, cause=cause)
        blocker = None
        if where == "in-flight-slot":
            blocker = asyncio.ensure_future(api._create(invite(9), lambda: counted.append(9)))
            await until(lambda: server.arrived == 1)
        call = asyncio.ensure_future(api._create(invite(0), lambda: counted.append(0)))
        waiting = {
            "429-pause": lambda: clock.sleeping == 1,
            "pacing": lambda: limiter.waiting == 1,
            "in-flight-slot": lambda: len(api._shared.in_flight._waiters) == 1,
            "answer": lambda: server.arrived == 1,
            "retry-pause": lambda: server.arrived == 1 and clock.sleeping == 1,
            "retry-backoff": lambda: server.arrived == 1 and clock.sleeping == 1,
        }[where]
        await until(waiting, what=f"the call waiting at {where}")
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        if blocker is not None:
            server.release()
            await blocker
    reached = [r for r in server.requests if b"person0@" in r]
    assert counted.count(0) == len(reached)
    assert len(reached) == (1 if where in ("answer", "retry-pause", "retry-backoff") else 0)


def sender_blocking_on(blocked: set[int]) -> Any:
    """A batch sender: items in `blocked` wait forever before going out; others are created."""

    async def send(item: int, on_send: Any) -> str:
        await asyncio.sleep(0)
        if item in blocked:
            await asyncio.Event().wait()
        on_send()
        return f"created {item}"

    return send


async def _four() -> AsyncIterator[int]:
    for i in range(4):
        yield i


@pytest.mark.parametrize("how", ["stop", "close"])
@pytest.mark.parametrize("kind", ["async", "plain"])
async def test_an_item_read_but_not_yet_picked_up_is_not_sent(how: str, kind: str) -> None:
    # Item 2 is read just before the stop or the close: an async input's reader queues it for
    # a worker; a plain one's worker reads it itself and is about to send it.
    source = _four() if kind == "async" else iter(range(4))
    stream: BatchStream[int, str] = BatchStream(
        None, source, concurrency=2, send=sender_blocking_on({1})
    )
    first = await anext(stream)
    assert first.index == 0
    for _ in range(100):  # one step at a time: catch the moment item 2 has just been read
        if stream._read == 3:
            break
        await asyncio.sleep(0)
    assert stream._read == 3
    if kind == "async":
        assert stream._todo.qsize() == 1
    if how == "stop":
        stream.stop()
        rest = [result async for result in stream]
    else:
        await stream.aclose()
        rest = stream.unfinished
    assert sorted((r.index, r.outcome) for r in rest) == [
        (1, Outcome.NOT_SENT),
        (2, Outcome.NOT_SENT),
    ]


async def test_stop_before_the_first_result_reads_nothing() -> None:
    read: list[int] = []

    def source() -> Iterator[int]:
        for i in range(3):
            read.append(i)
            yield i

    stream: BatchStream[int, str] = BatchStream(
        None, source(), concurrency=2, send=sender_blocking_on(set())
    )
    stream.stop()
    stream.stop()  # twice is harmless
    assert [result async for result in stream] == []
    assert read == []


@pytest.mark.parametrize("steps", [0, 1, 2, 3])
async def test_stop_ends_an_async_input_stream_whenever_it_comes(steps: int) -> None:
    # The stream's first step starts a reader task for an async input; a stop() before that
    # task ever ran cancels it without its clean-up, and the stream must end all the same.
    async def source() -> AsyncIterator[int]:
        for i in range(3):
            yield i

    async def send(item: int, on_send: Any) -> str:
        on_send()
        return "ok"

    stream: BatchStream[int, str] = BatchStream(None, source(), concurrency=2, send=send)

    async def consume() -> list[BatchResult[int, str]]:
        return [result async for result in stream]

    task = asyncio.ensure_future(consume())
    for _ in range(steps):
        await asyncio.sleep(0)
    stream.stop()
    results = await asyncio.wait_for(task, 5)
    # Read and sent before the stop: created; read but not yet sent: never sent at all.
    assert all(
        (result.outcome, result.attempts) in {(Outcome.CREATED, 1), (Outcome.NOT_SENT, 0)}
        for result in results
    )
    assert sorted(result.index for result in results) == list(range(len(results)))
    assert stream.unfinished == []


def test_what_an_exception_amounts_to_by_the_send_counter() -> None:
    from cronofy_async import ClientClosedError
    from cronofy_async._batch import outcome_of

    closed = ClientClosedError("closed")
    assert outcome_of(closed, sent=0) is Outcome.NOT_SENT
    assert outcome_of(asyncio.CancelledError(), sent=0) is Outcome.NOT_SENT
    assert outcome_of(asyncio.CancelledError(), sent=1) is Outcome.UNKNOWN
    assert outcome_of(RuntimeError("bug"), sent=0) is Outcome.FAILED
    assert outcome_of(RuntimeError("bug")) is Outcome.UNKNOWN  # by default: it may have gone


async def test_an_iterable_whose_iter_raises_is_the_inputs_failure() -> None:
    class Table:
        def __iter__(self) -> Iterator[int]:
            raise OSError("no such table")

    stream: BatchStream[int, str] = BatchStream(
        None, Table(), concurrency=2, send=sender_blocking_on(set())
    )
    with pytest.raises(BatchInputError, match="after 0 items") as raised:
        _ = [result async for result in stream]
    assert isinstance(raised.value.__cause__, OSError)


async def test_an_iterable_is_not_touched_before_the_stream_is_read() -> None:
    opened: list[int] = []

    class Table:
        def __iter__(self) -> Iterator[int]:
            opened.append(1)
            return iter(range(3))

    stream: BatchStream[int, str] = BatchStream(
        None, Table(), concurrency=2, send=sender_blocking_on(set())
    )
    assert opened == []
    stream.stop()
    assert [result async for result in stream] == []
    assert opened == []


@pytest.mark.parametrize("concurrency", [1, 3, 16, 40])
async def test_reading_stays_within_concurrency_of_what_was_received(concurrency: int) -> None:
    # At most `concurrency` and a tenth more are read and not yet received. A result handed
    # to a reader already waiting for it counts as received: its worker may read the next item
    # before the loop body runs, never more than that.
    bound = concurrency + concurrency // 10
    received = 0
    ahead: list[int] = []

    def source() -> Iterator[int]:
        for i in range(400):
            ahead.append(i + 1 - received)  # read, counting this one, and not yet received
            yield i

    async def send(item: int, on_send: Any) -> str:
        on_send()
        for _ in range(item % 4):
            await asyncio.sleep(0)
        return "ok"

    stream: BatchStream[int, str] = BatchStream(None, source(), concurrency=concurrency, send=send)
    async for _ in stream:
        received += 1
        assert stream._read - received <= bound  # in the loop body: within the bound
    assert received == 400
    assert max(ahead) <= bound + 1


@pytest.mark.parametrize("concurrency", [1, 4, 20, 200])
async def test_a_reader_that_stops_reading_holds_the_input_at_the_bound(concurrency: int) -> None:
    # Results not taken yet keep their slots: a reader busy elsewhere lets the batch read
    # `concurrency` and a tenth more, no further, however fast the answers come back.
    read = 0

    def source() -> Iterator[int]:
        nonlocal read
        for i in range(10 * concurrency + 10):
            read += 1
            yield i

    async def send(item: int, on_send: Any) -> str:
        on_send()
        await asyncio.sleep(0)
        return "ok"

    stream: BatchStream[int, str] = BatchStream(None, source(), concurrency=concurrency, send=send)
    async with stream:
        first = await anext(stream)
        for _ in range(concurrency + 50):  # answers keep coming; nobody takes them
            await asyncio.sleep(0)
        assert read == 1 + concurrency + concurrency // 10
        assert len(stream._busy) == 0  # every read item finished: only the reader holds it up
    assert first.index == 0


async def test_a_cancel_in_the_step_of_a_hand_over_loses_nothing() -> None:
    # The result handed to the waiting reader, and the item its worker read next, both end up
    # in `unfinished` with their real outcomes when the reader is cancelled in that step.
    consumer: asyncio.Task[Any] | None = None
    release = asyncio.Event()

    def source() -> Iterator[int]:
        yield 0
        assert consumer is not None
        consumer.cancel()  # the step in which item 0's result is handed over
        yield 1
        yield 2

    async def send(item: int, on_send: Any) -> str:
        if item == 0:
            await asyncio.sleep(0)
            on_send()
            return "ok"
        await release.wait()
        return "never"

    stream: BatchStream[int, str] = BatchStream(None, source(), concurrency=1, send=send)

    async def consume() -> list[Any]:
        return [result async for result in stream]

    consumer = asyncio.ensure_future(consume())
    with pytest.raises(asyncio.CancelledError):
        await consumer
    outcomes = [(r.index, r.outcome) for r in stream.unfinished]
    assert outcomes == [(0, Outcome.CREATED), (1, Outcome.NOT_SENT)]
