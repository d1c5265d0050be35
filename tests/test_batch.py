"""Batch creation against FakeCronofy over loopback: every item accounted for, none sent twice."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any, cast

import httpx
import pytest
import respx

from cronofy_async import (
    DEFAULT_CONCURRENCY,
    APIError,
    AsyncSchedulerAPI,
    AuthenticationError,
    BatchInputError,
    BatchResult,
    ConfigurationError,
    Event,
    Host,
    NewSchedulerRequest,
    Outcome,
    PayloadError,
    PermissionDeniedError,
    RateLimit,
    Recipient,
    SchedulerRequest,
    ValidationError,
)
from cronofy_async._batch import outcome_of
from cronofy_async.testing import FakeCronofy, Fault, Faults

from .conftest import CREATE_URL, SECRET, ok_response
from .helpers import FakeClock, use_clock


def invite(i: int, host: str = "acc_1") -> NewSchedulerRequest:
    return NewSchedulerRequest(
        host=Host(sub=host),
        recipients=[Recipient(email=f"person{i}@example.com")],
        event=Event(summary="Intro call"),
    )


def invites(count: int) -> Iterator[NewSchedulerRequest]:
    return (invite(i) for i in range(count))


@pytest.fixture
def fake(loopback_fake: FakeCronofy) -> FakeCronofy:
    return loopback_fake


@pytest.fixture
def base_url(loopback_url: str) -> str:
    return loopback_url


@pytest.fixture
async def api(fake: FakeCronofy, base_url: str) -> AsyncIterator[AsyncSchedulerAPI]:
    async with AsyncSchedulerAPI(fake.secret, base_url=base_url, rate_limit=None) as api:
        use_clock(api, FakeClock())
        yield api


async def test_report_in_input_order_with_counts(api: AsyncSchedulerAPI, fake: FakeCronofy) -> None:
    report = await api.batch_create_scheduler_requests(invites(60), concurrency=7)
    assert [r.index for r in report.results] == list(range(60))
    assert [r.request.recipients[0].email for r in report.results] == [
        f"person{i}@example.com" for i in range(60)
    ]
    assert report.counts == {
        Outcome.CREATED: 60,
        Outcome.FAILED: 0,
        Outcome.UNKNOWN: 0,
        Outcome.NOT_SENT: 0,
    }
    assert report.all_created
    ids = {r.scheduler_request.scheduler_request_id for r in report.results if r.scheduler_request}
    assert ids == {entry.scheduler_request_id for entry in fake.created}
    assert all(r.attempts == 1 and r.error is None for r in report.results)


async def test_results_stream_as_they_complete(mock: respx.MockRouter) -> None:
    # Item 0 is answered only once the consumer holds item 1's result: a stream that buffered
    # results (until all were done, or in input order) would never get there.
    seen_one = asyncio.Event()

    async def respond(request: httpx.Request) -> httpx.Response:
        if json.loads(request.content)["recipients"][0]["email"] == "person0@example.com":
            await seen_one.wait()
        return ok_response()

    mock.post(CREATE_URL).mock(side_effect=respond)
    order: list[int] = []
    async with (
        asyncio.timeout(10),  # a guard against a hang, not a timing assertion
        AsyncSchedulerAPI(SECRET, rate_limit=None) as api,
        api.iter_create_scheduler_requests(invites(2), concurrency=2) as results,
    ):
        async for result in results:
            order.append(result.index)
            if result.index == 1:
                seen_one.set()
    assert order == [1, 0]


async def test_a_result_is_yielded_while_the_input_waits(api: AsyncSchedulerAPI) -> None:
    # A slow input (a queue, a paged read): the next item comes only after the consumer has
    # the previous item's result. A stream that waited for its input before yielding would
    # hang here.
    got = asyncio.Queue[int]()

    async def source() -> AsyncIterator[NewSchedulerRequest]:
        for i in range(3):
            yield invite(i)
            assert await got.get() == i

    seen: list[int] = []
    async with asyncio.timeout(10), api.iter_create_scheduler_requests(source()) as results:
        async for result in results:
            assert result.outcome is Outcome.CREATED
            seen.append(result.index)
            got.put_nowait(result.index)
    assert seen == [0, 1, 2]


async def test_a_401_is_yielded_at_once_while_the_input_waits(
    fake: FakeCronofy, base_url: str
) -> None:
    forever = asyncio.Event()

    async def source() -> AsyncIterator[NewSchedulerRequest]:
        yield invite(0)
        await forever.wait()  # the input has nothing more for now
        yield invite(1)  # pragma: no cover - never reached

    async with (
        asyncio.timeout(10),
        AsyncSchedulerAPI("sk_revoked", base_url=base_url, rate_limit=None) as api,
        api.iter_create_scheduler_requests(source()) as results,
    ):
        first = await anext(results)
        assert isinstance(results.stopped_by, AuthenticationError)
        results.stop()  # and the input is left where it is: the iteration ends
        rest = [result async for result in results]
    assert first.outcome is Outcome.FAILED
    assert isinstance(first.error, AuthenticationError)
    assert rest == []
    assert fake.received == 1


async def test_stop_ends_the_iteration_while_the_input_waits(api: AsyncSchedulerAPI) -> None:
    forever = asyncio.Event()

    async def source() -> AsyncIterator[NewSchedulerRequest]:
        yield invite(0)
        await forever.wait()
        yield invite(1)  # pragma: no cover - never reached

    async with asyncio.timeout(10), api.iter_create_scheduler_requests(source()) as results:
        first = await anext(results)
        results.stop()
        rest = [result async for result in results]
    assert first.outcome is Outcome.CREATED
    assert rest == []


async def test_an_async_iterable_input(api: AsyncSchedulerAPI) -> None:
    async def source() -> AsyncIterator[NewSchedulerRequest]:
        for i in range(12):
            await asyncio.sleep(0)
            yield invite(i)

    report = await api.batch_create_scheduler_requests(source(), concurrency=4)
    assert report.counts[Outcome.CREATED] == 12


async def test_each_outcome(api: AsyncSchedulerAPI, fake: FakeCronofy) -> None:
    fake.inject(Fault.DROP_AFTER)  # the first request to arrive: may exist
    items: list[Any] = [
        invite(0),
        invite(1, host="acc_stranger"),  # 422: refused by Cronofy
        NewSchedulerRequest(  # no host on a call that is not impersonated: refused unsent
            recipients=[Recipient(email="x@example.com")], event=Event(summary="x")
        ),
        "not a request",
        invite(4),
    ]
    report = await api.batch_create_scheduler_requests(items, concurrency=1)
    outcomes = [r.outcome for r in report.results]
    assert outcomes == [
        Outcome.UNKNOWN,
        Outcome.FAILED,
        Outcome.FAILED,
        Outcome.FAILED,
        Outcome.CREATED,
    ]
    unknown, rejected, hostless, garbage, created = report.results
    assert unknown.error is not None
    assert unknown.attempts == 1
    assert isinstance(rejected.error, ValidationError)
    assert isinstance(hostless.error, PayloadError)
    assert hostless.attempts == 0
    assert isinstance(garbage.error, PayloadError)
    assert garbage.request == cast(object, "not a request")
    assert created.scheduler_request is not None
    assert report.with_outcome(Outcome.FAILED) == [rejected, hostless, garbage]


async def test_a_401_stops_the_batch_and_every_other_item_is_not_sent(
    fake: FakeCronofy, base_url: str
) -> None:
    async with AsyncSchedulerAPI("sk_revoked", base_url=base_url, rate_limit=None) as api:
        stream = api.iter_create_scheduler_requests(invites(500), concurrency=5)
        results = [result async for result in stream]
    assert sorted(r.index for r in results) == list(range(500))
    failed = [r for r in results if r.outcome is Outcome.FAILED]
    not_sent = [r for r in results if r.outcome is Outcome.NOT_SENT]
    assert 1 <= len(failed) <= 5  # only what was already sent
    assert len(failed) + len(not_sent) == 500
    assert fake.received == len(failed)
    assert isinstance(stream.stopped_by, AuthenticationError)
    assert all(r.error is stream.stopped_by for r in not_sent)


async def test_a_fatal_error_lets_what_was_sent_finish(mock: respx.MockRouter) -> None:
    # Item 0 is refused with a 403 once items 1 and 2 are on the wire; 3..9 are never sent.
    on_the_wire = 0
    both_sent, release = asyncio.Event(), asyncio.Event()

    async def respond(request: httpx.Request) -> httpx.Response:
        nonlocal on_the_wire
        email = json.loads(request.content)["recipients"][0]["email"]
        if email == "person0@example.com":
            await both_sent.wait()
            release.set()
            return httpx.Response(403, json={"error": "forbidden"})
        on_the_wire += 1
        if on_the_wire == 2:
            both_sent.set()
        await release.wait()
        return ok_response()

    route = mock.post(CREATE_URL).mock(side_effect=respond)
    async with AsyncSchedulerAPI(SECRET, rate_limit=None) as api:
        report = await api.batch_create_scheduler_requests(invites(10), concurrency=3)
    outcomes = [r.outcome for r in report.results]
    assert outcomes == [Outcome.FAILED, Outcome.CREATED, Outcome.CREATED] + [Outcome.NOT_SENT] * 7
    assert isinstance(report.results[0].error, PermissionDeniedError)
    assert all(r.error is report.results[0].error for r in report.results[3:])
    assert route.call_count == 3


async def test_a_huge_generator_is_read_lazily(fake: FakeCronofy) -> None:
    produced = itertools.count()

    def endless() -> Iterator[NewSchedulerRequest]:
        for i in range(1_000_000):
            next(produced)
            yield invite(i)

    async with fake.api(rate_limit=None) as api:
        stream = api.iter_create_scheduler_requests(endless(), concurrency=8)
        taken = 0
        async with stream:
            async for _ in stream:
                taken += 1
                if taken == 200:
                    break
    read = next(produced)
    assert 200 <= read <= 200 + 8
    # What was read but not yielded is accounted for, not lost.
    assert taken + len(stream.unfinished) == read


async def test_a_failing_input_yields_what_was_read_then_raises(api: AsyncSchedulerAPI) -> None:
    def broken() -> Iterator[NewSchedulerRequest]:
        yield invite(0)
        yield invite(1)
        raise OSError("the CSV went away")

    seen: list[BatchResult[NewSchedulerRequest, SchedulerRequest]] = []

    async def consume() -> None:
        async for result in api.iter_create_scheduler_requests(broken(), concurrency=5):
            seen.append(result)

    with pytest.raises(BatchInputError, match="the CSV went away") as info:
        await consume()
    assert sorted(r.index for r in seen) == [0, 1]
    assert all(r.outcome is Outcome.CREATED for r in seen)
    assert isinstance(info.value.__cause__, OSError)
    assert info.value.read == 2
    assert info.value.report.results == ()  # every result was yielded before the error


@pytest.mark.parametrize("asynchronous", [False, True], ids=["iterable", "async-iterable"])
async def test_batch_create_keeps_every_result_when_the_input_raises(
    api: AsyncSchedulerAPI, fake: FakeCronofy, asynchronous: bool
) -> None:
    items: list[Any] = [invite(0), invite(1, host="acc_stranger"), "not a request", invite(3)]

    def broken() -> Iterator[NewSchedulerRequest]:
        yield from items
        raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")

    async def broken_async() -> AsyncIterator[NewSchedulerRequest]:
        for item in broken():
            await asyncio.sleep(0)
            yield item

    source = broken_async() if asynchronous else broken()
    with pytest.raises(BatchInputError) as info:
        await api.batch_create_scheduler_requests(source, concurrency=3)
    error = info.value
    assert isinstance(error.__cause__, UnicodeDecodeError)
    assert error.read == 4
    assert "after 4 items" in str(error)
    report = error.report
    assert [r.index for r in report.results] == [0, 1, 2, 3]
    assert [r.outcome for r in report.results] == [
        Outcome.CREATED,
        Outcome.FAILED,  # 422
        Outcome.FAILED,  # refused before sending
        Outcome.CREATED,
    ]
    created = {
        r.scheduler_request.scheduler_request_id for r in report.results if r.scheduler_request
    }
    assert created == {entry.scheduler_request_id for entry in fake.created}


async def test_an_input_that_fails_at_once(api: AsyncSchedulerAPI) -> None:
    def broken() -> Iterator[NewSchedulerRequest]:
        raise OSError("no such table")
        yield  # pragma: no cover

    with pytest.raises(BatchInputError, match="after 0 items") as info:
        await api.batch_create_scheduler_requests(broken())
    assert info.value.report.results == ()
    assert isinstance(info.value.__cause__, OSError)


@pytest.mark.real_time
async def test_cancelling_mid_batch_accounts_for_every_item_and_leaks_nothing() -> None:
    # 5 requests in flight (answered after 0.5 s), 5 more held back by pacing at 5/s: cancel
    # once the first 5 have reached the server.
    fake = FakeCronofy(members=["acc_1"], rate_limit=None, faults=Faults(latency=0.5))
    async with fake.serve() as url:
        api = AsyncSchedulerAPI(
            fake.secret,
            base_url=url,
            rate_limit=RateLimit(per_second=5, per_minute=None, burst=True),
        )
        stream = api.iter_create_scheduler_requests(invites(100), concurrency=10)
        seen: list[BatchResult[NewSchedulerRequest, SchedulerRequest]] = []

        async def consume() -> None:
            async for result in stream:
                seen.append(result)

        task = asyncio.ensure_future(consume())
        while fake.received < 5:  # noqa: ASYNC110 - polling the fake's counter is the point
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

        assert seen == []
        outcomes = sorted((r.index, r.outcome) for r in stream.unfinished)
        assert outcomes == [(i, Outcome.UNKNOWN) for i in range(5)] + [
            (i, Outcome.NOT_SENT) for i in range(5, 10)
        ]
        assert all(
            r.attempts == (1 if r.outcome is Outcome.UNKNOWN else 0) for r in stream.unfinished
        )
        # No task of the batch is left behind, and the pool still works.
        leftovers = [t for t in asyncio.all_tasks() if "BatchStream" in repr(t.get_coro())]
        assert leftovers == []
        api.with_data_center("us")  # still open
        await api.aclose()


async def test_a_5000_item_batch_through_faults_never_duplicates(
    fake: FakeCronofy, api: AsyncSchedulerAPI
) -> None:
    fake.faults = Faults(
        seed=42,
        rate_limited=0.05,
        unavailable=0.02,
        drop_before=0.02,
        error_after_create=0.02,
        drop_after=0.02,
        retry_after=0,
    )
    report = await api.batch_create_scheduler_requests(invites(5000), concurrency=10)
    assert [r.index for r in report.results] == list(range(5000))
    counts = report.counts
    assert sum(counts.values()) == 5000
    assert counts[Outcome.CREATED] > 4500
    # Every fault but the (retried) 429 may have created the invite: unknown, never failed.
    assert counts[Outcome.UNKNOWN] > 0
    assert fake.duplicates() == {}
    ledger: dict[str, int] = {}
    for entry in fake.created:
        ledger[entry.email] = ledger.get(entry.email, 0) + 1
    for result in report.results:
        email = result.request.recipients[0].email
        if result.outcome is Outcome.CREATED:
            assert ledger.get(email) == 1
        elif result.outcome in (Outcome.FAILED, Outcome.NOT_SENT):
            assert email not in ledger, result
        else:
            assert ledger.get(email, 0) <= 1
            assert isinstance(result.error, APIError)
            assert result.error.outcome_unknown


@pytest.mark.parametrize("concurrency", [0, -1, 1.5, True, 10_001, "5"])
async def test_concurrency_is_validated(api: AsyncSchedulerAPI, concurrency: Any) -> None:
    with pytest.raises(ConfigurationError, match="concurrency must be a whole number"):
        api.iter_create_scheduler_requests([], concurrency=concurrency)


async def test_an_empty_batch(api: AsyncSchedulerAPI) -> None:
    report = await api.batch_create_scheduler_requests([])
    assert report.results == ()
    assert report.all_created
    assert DEFAULT_CONCURRENCY == 20


def test_outcome_of_an_unforeseen_error_assumes_the_worst() -> None:
    assert outcome_of(RuntimeError("bug")) is Outcome.UNKNOWN
