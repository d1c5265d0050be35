"""
Idempotency keys: at most one send per key, with each of the three ledgers.

Against FakeCronofy, whose own ledger (`scheduling_requests`, `created`) counts what was
really created: in process, and over loopback TCP on both HTTP backends. Redis is a real
redis-server on loopback, started by the tests.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
import respx

from cronofy_async import (
    APIConnectionError,
    APITimeoutError,
    AsyncSchedulerAPI,
    AuthenticationError,
    ConfigurationError,
    CronofyError,
    Event,
    Host,
    IdempotencyConflictError,
    Ledger,
    LedgerState,
    LedgerUnavailableError,
    MemoryLedger,
    NewSchedulerRequest,
    NewSchedulingRequest,
    Outcome,
    OutcomeUnknownError,
    PayloadError,
    Recipient,
    RetryPolicy,
    ServerError,
    SQLiteLedger,
    ValidationError,
)
from cronofy_async.redis import RedisLedger
from cronofy_async.testing import FakeCronofy, Fault

from .conftest import SECRET
from .helpers import FakeClock, use_clock
from .redis_server import running_redis

LedgerKind = Literal["memory", "sqlite", "redis"]


def invite(email: str = "doc@evenitron.com", summary: str = "Intro call") -> NewSchedulingRequest:
    return NewSchedulingRequest(
        host=Host(sub="acc_1"),
        recipients=[Recipient(email=email)],
        event=Event(summary=summary),
    )


def scheduler_invite(email: str = "doc@evenitron.com") -> NewSchedulerRequest:
    return NewSchedulerRequest(
        host=Host(sub="acc_1"),
        recipients=[Recipient(email=email)],
        event=Event(summary="Intro call"),
    )


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Ledger]:
    """Each of the three ledgers, fresh."""
    kind: LedgerKind = request.param
    made: Ledger
    if kind == "memory":
        made = MemoryLedger()
    elif kind == "sqlite":
        made = SQLiteLedger(tmp_path / "ledger.db")
    else:
        url = request.getfixturevalue("redis_url")
        namespace = request.getfixturevalue("redis_namespace")
        made = RedisLedger(url, namespace=namespace)
    try:
        yield made
    finally:
        await made.aclose()


@pytest.fixture
def fake() -> FakeCronofy:
    return FakeCronofy(members=["acc_1"], rate_limit=None)


def api_for(fake: FakeCronofy, ledger: Ledger | None, **options: Any) -> AsyncSchedulerAPI:
    api = fake.api(ledger=ledger, **options)
    use_clock(api, FakeClock())
    return api


# -- the five outcomes -----------------------------------------------------------------------


async def test_a_created_key_is_answered_from_the_ledger(fake: FakeCronofy, ledger: Ledger) -> None:
    async with api_for(fake, ledger) as api:
        first = await api.create_scheduling_request(invite(), idempotency_key="order-42")
        received = fake.received
        again = await api.create_scheduling_request(invite(), idempotency_key="order-42")
        entry = await api.ledger.get("order-42")
    assert again == first
    assert again.raw == first.raw
    assert again.select_url == first.select_url
    assert fake.received == received  # nothing sent
    assert len(fake.scheduling_requests) == 1
    assert entry is not None
    assert (entry.state, entry.request_id) == (LedgerState.CREATED, first.scheduling_request_id)
    assert entry.created_at <= entry.updated_at


async def test_a_replay_takes_no_rate_limit_slot(fake: FakeCronofy, ledger: Ledger) -> None:
    class Counting:
        acquired = 0

        async def acquire(self) -> None:
            Counting.acquired += 1

    async with api_for(fake, ledger, rate_limit=Counting()) as api:
        await api.create_scheduler_request(scheduler_invite(), idempotency_key="k")
        await api.create_scheduler_request(scheduler_invite(), idempotency_key="k")
    assert Counting.acquired == 1
    assert fake.created_count == 1


@pytest.mark.parametrize("fault", [Fault.ERROR_AFTER_CREATE, Fault.DROP_AFTER])
async def test_an_unknown_outcome_is_never_resent_by_itself(
    fake: FakeCronofy, ledger: Ledger, fault: Fault
) -> None:
    fake.inject(fault)
    async with api_for(fake, ledger) as api:
        with pytest.raises((ServerError, APIConnectionError)) as first:
            await api.create_scheduling_request(invite(), idempotency_key="k")
        assert first.value.outcome_unknown is True
        received = fake.received
        with pytest.raises(OutcomeUnknownError) as info:
            await api.create_scheduling_request(invite(), idempotency_key="k")
        assert fake.received == received
        assert info.value.outcome_unknown is True
        assert info.value.key == "k"
        assert "'k'" in str(info.value)
        assert SECRET not in str(info.value)
        entry = await api.ledger.get("k")
        assert entry is not None
        assert entry.state is LedgerState.UNKNOWN
        # Asked for, it is sent again.
        again = await api.create_scheduling_request(
            invite(), idempotency_key="k", resend_unknown=True
        )
        entry = await api.ledger.get("k")
    assert entry is not None
    assert (entry.state, entry.request_id) == (LedgerState.CREATED, again.scheduling_request_id)
    assert len(fake.scheduling_requests) == 2  # the one the fault hid, and the resend


async def test_a_timeout_after_sending_is_unknown(ledger: Ledger) -> None:
    with respx.mock(assert_all_mocked=True) as mock:
        route = mock.post("https://api.cronofy.com/v1/scheduling_requests").mock(
            side_effect=httpx.ReadTimeout("slow")
        )
        async with AsyncSchedulerAPI(SECRET, ledger=ledger, rate_limit=None) as api:
            with pytest.raises(APITimeoutError):
                await api.create_scheduling_request(invite(), idempotency_key="k")
            with pytest.raises(OutcomeUnknownError):
                await api.create_scheduling_request(invite(), idempotency_key="k")
    assert route.call_count == 1


async def test_a_proven_failure_frees_the_key(fake: FakeCronofy, ledger: Ledger) -> None:
    async with api_for(fake, ledger) as api:
        with pytest.raises(ValidationError):
            await api.create_scheduling_request(
                NewSchedulingRequest(
                    host=Host(sub="acc_stranger"),
                    recipients=[Recipient(email="doc@evenitron.com")],
                    event=Event(summary="Intro call"),
                ),
                idempotency_key="k",
            )
        entry = await api.ledger.get("k")
        assert entry is not None
        assert entry.state is LedgerState.FAILED
        created = await api.create_scheduling_request(invite(), idempotency_key="k")
    assert fake.scheduling_requests[-1].scheduling_request_id == created.scheduling_request_id


async def test_a_connection_never_made_frees_the_key(ledger: Ledger) -> None:
    with respx.mock(assert_all_mocked=True) as mock:
        route = mock.post("https://api.cronofy.com/v1/scheduling_requests").mock(
            side_effect=[httpx.ConnectError("refused")] * 3
            + [httpx.Response(200, json={"scheduling_request": {"scheduling_request_id": "s"}})]
        )
        api = AsyncSchedulerAPI(SECRET, ledger=ledger, rate_limit=None)
        use_clock(api, FakeClock())
        async with api:
            with pytest.raises(APIConnectionError) as info:
                await api.create_scheduling_request(invite(), idempotency_key="k")
            assert info.value.outcome_unknown is False
            entry = await api.ledger.get("k")
            assert entry is not None
            assert entry.state is LedgerState.FAILED
            created = await api.create_scheduling_request(invite(), idempotency_key="k")
    assert created.scheduling_request_id == "s"
    assert route.call_count == 4


async def test_a_429_after_retries_frees_the_key(ledger: Ledger) -> None:
    with respx.mock(assert_all_mocked=True) as mock:
        route = mock.post("https://api.cronofy.com/v1/scheduling_requests").mock(
            return_value=httpx.Response(429, headers={"retry-after": "0"})
        )
        api = AsyncSchedulerAPI(SECRET, ledger=ledger, rate_limit=None)
        use_clock(api, FakeClock())
        async with api:
            with pytest.raises(CronofyError):
                await api.create_scheduling_request(invite(), idempotency_key="k")
            entry = await api.ledger.get("k")
            assert entry is not None
            assert entry.state is LedgerState.FAILED
            with pytest.raises(CronofyError):
                await api.create_scheduling_request(invite(), idempotency_key="k")
    assert route.call_count == 6  # 3 attempts each time: the key was free again


async def test_another_request_under_a_used_key_is_a_conflict(
    fake: FakeCronofy, ledger: Ledger
) -> None:
    async with api_for(fake, ledger) as api:
        await api.create_scheduling_request(invite(), idempotency_key="k")
        received = fake.received
        for other in (
            api.create_scheduling_request(invite(email="marty@evenitron.com"), idempotency_key="k"),
            api.create_scheduling_request(invite(summary="Other"), idempotency_key="k"),
            api.with_data_center("de").create_scheduling_request(invite(), idempotency_key="k"),
            api.impersonate("acc_1").create_scheduling_request(invite(), idempotency_key="k"),
            api.create_scheduler_request(scheduler_invite(), idempotency_key="k"),
        ):
            with pytest.raises(IdempotencyConflictError) as info:
                await other
            assert info.value.key == "k"
    assert fake.received == received


async def test_the_order_of_extra_fields_does_not_make_another_request(
    fake: FakeCronofy, ledger: Ledger
) -> None:
    def with_extra(extra: dict[str, Any]) -> NewSchedulingRequest:
        return NewSchedulingRequest(
            host=Host(sub="acc_1"),
            recipients=[Recipient(email="doc@evenitron.com")],
            event=Event(summary="Intro call"),
            extra=extra,
        )

    async with api_for(fake, ledger) as api:
        first = await api.create_scheduling_request(
            with_extra({"a": 1, "b": 2}), idempotency_key="k"
        )
        again = await api.create_scheduling_request(
            with_extra({"b": 2, "a": 1}), idempotency_key="k"
        )
    assert first == again
    assert len(fake.scheduling_requests) == 1


async def test_concurrent_calls_with_one_key_send_once(fake: FakeCronofy, ledger: Ledger) -> None:
    fake.faults = fake.faults.__class__(latency=0.02)
    async with api_for(fake, ledger) as api:
        answers = await asyncio.gather(
            *(api.create_scheduling_request(invite(), idempotency_key="k") for _ in range(10))
        )
    assert len({a.scheduling_request_id for a in answers}) == 1
    assert len(fake.scheduling_requests) == 1


async def test_concurrent_callers_share_an_unknown_outcome(
    fake: FakeCronofy, ledger: Ledger
) -> None:
    fake.faults = fake.faults.__class__(latency=0.02)
    fake.inject(Fault.ERROR_AFTER_CREATE)
    async with api_for(fake, ledger) as api:
        answers = await asyncio.gather(
            *(api.create_scheduling_request(invite(), idempotency_key="k") for _ in range(5)),
            return_exceptions=True,
        )
    assert sum(isinstance(a, ServerError) for a in answers) == 1
    assert sum(isinstance(a, OutcomeUnknownError) for a in answers) == 4
    assert fake.received == 1


async def test_two_api_objects_on_one_ledger_send_once(fake: FakeCronofy, ledger: Ledger) -> None:
    fake.faults = fake.faults.__class__(latency=0.02)
    async with api_for(fake, ledger) as one, api_for(fake, ledger) as two:
        answers = await asyncio.gather(
            *(
                api.create_scheduling_request(invite(), idempotency_key="k")
                for api in (one, two, one, two)
            )
        )
    assert len({a.scheduling_request_id for a in answers}) == 1
    assert fake.received == 1


# -- keys --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("", "empty"),
        ("x" * 256, "at most 255"),
        (42, "string"),
        ("a\ud800b", "surrogate"),
        ("order-<the secret>", "secret"),
    ],
)
async def test_a_bad_key_is_refused_before_sending(
    fake: FakeCronofy, key: Any, problem: str
) -> None:
    if isinstance(key, str):
        key = key.replace("<the secret>", fake.secret)
    async with api_for(fake, None) as api:
        with pytest.raises(PayloadError, match=problem) as info:
            await api.create_scheduling_request(invite(), idempotency_key=key)
    assert info.value.field == "idempotency_key"
    assert fake.secret not in str(info.value)
    assert fake.received == 0


async def test_the_longest_key_and_any_text_are_keys(fake: FakeCronofy, ledger: Ledger) -> None:
    async with api_for(fake, ledger) as api:
        for key in ("x" * 255, "ключ:{tag} \n*?", "a/../b%2F"):
            first = await api.create_scheduling_request(invite(), idempotency_key=key)
            again = await api.create_scheduling_request(invite(), idempotency_key=key)
            assert first == again
    assert len(fake.scheduling_requests) == 3


async def test_without_a_ledger_a_key_uses_the_objects_own_memory_ledger(
    fake: FakeCronofy,
) -> None:
    async with api_for(fake, None) as api:
        assert isinstance(api.ledger, MemoryLedger)
        assert api.impersonate("acc_1").ledger is api.ledger  # views share it
        await api.create_scheduling_request(invite(), idempotency_key="k")
        await api.create_scheduling_request(invite(), idempotency_key="k")
        entry = await api.ledger.get("k")
    assert entry is not None
    assert entry.state is LedgerState.CREATED
    assert len(fake.scheduling_requests) == 1


async def test_without_a_key_nothing_touches_the_ledger(fake: FakeCronofy, ledger: Ledger) -> None:
    async with api_for(fake, ledger) as api:
        await api.create_scheduling_request(invite())
        await api.create_scheduling_request(invite())
    assert len(fake.scheduling_requests) == 2


def test_a_ledger_that_is_not_one_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="ledger"):
        AsyncSchedulerAPI(SECRET, ledger="ledger.db")  # type: ignore[arg-type]


@pytest.mark.parametrize("option", ["ttl", "lease", "wait"])
@pytest.mark.parametrize("value", [0, -1, float("nan"), True, "5"])
def test_bad_ledger_options_are_refused(option: str, value: Any, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=option):
        MemoryLedger(**{option: value})
    with pytest.raises(ConfigurationError, match=option):
        SQLiteLedger(tmp_path / "x.db", **{option: value})


# -- batches -----------------------------------------------------------------------------------


async def test_a_batch_with_keys_replays_what_was_created(
    fake: FakeCronofy, ledger: Ledger
) -> None:
    people = [invite(email=f"p{i}@example.com") for i in range(6)]
    async with api_for(fake, ledger) as api:
        first = await api.batch_create_scheduling_requests(
            people[:4], key=lambda r: r.recipients[0].email
        )
        second = await api.batch_create_scheduling_requests(
            people, key=lambda r: r.recipients[0].email
        )
    assert [r.replayed for r in first.results] == [False] * 4
    assert [r.replayed for r in second.results] == [True] * 4 + [False] * 2
    assert second.all_created
    assert [r.created for r in second.results[:4]] == [r.created for r in first.results]
    assert all(r.attempts == 0 for r in second.results[:4])
    assert len(fake.scheduling_requests) == 6


async def test_a_batch_reports_an_unknown_key_as_unknown_unsent(
    fake: FakeCronofy, ledger: Ledger
) -> None:
    async with api_for(fake, ledger) as api:
        fake.inject(Fault.ERROR_AFTER_CREATE)
        with pytest.raises(ServerError):
            await api.create_scheduler_request(scheduler_invite(), idempotency_key="doc")
        received = fake.received
        report = await api.batch_create_scheduler_requests(
            [scheduler_invite()], key=lambda r: "doc"
        )
        assert report.results[0].outcome is Outcome.UNKNOWN
        assert isinstance(report.results[0].error, OutcomeUnknownError)
        assert fake.received == received
        resent = await api.batch_create_scheduler_requests(
            [scheduler_invite()], key=lambda r: "doc", resend_unknown=True
        )
    assert resent.results[0].outcome is Outcome.CREATED
    assert fake.created_count == 2


async def test_a_batch_key_that_fails_fails_its_item_unsent(fake: FakeCronofy) -> None:
    def key(request: NewSchedulingRequest) -> str:
        email = request.recipients[0].email
        if email.startswith("bad"):
            raise LookupError("no order id")
        return "" if email.startswith("empty") else email

    people = [invite("ok@example.com"), invite("bad@example.com"), invite("empty@example.com")]
    async with api_for(fake, None) as api:
        report = await api.batch_create_scheduling_requests(people, key=key)
    assert [r.outcome for r in report.results] == [Outcome.CREATED, Outcome.FAILED, Outcome.FAILED]
    assert isinstance(report.results[1].error, LookupError)
    assert isinstance(report.results[2].error, PayloadError)
    assert len(fake.scheduling_requests) == 1


async def test_a_batch_refuses_a_key_that_is_not_callable(fake: FakeCronofy) -> None:
    async with api_for(fake, None) as api:
        with pytest.raises(ConfigurationError, match="key"):
            api.iter_create_scheduling_requests([invite()], key="email")  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError, match="resend_unknown"):
            api.iter_create_scheduling_requests([invite()], resend_unknown=True)


async def test_a_batch_with_one_key_twice_sends_it_once(fake: FakeCronofy, ledger: Ledger) -> None:
    fake.faults = fake.faults.__class__(latency=0.01)
    async with api_for(fake, ledger) as api:
        report = await api.batch_create_scheduling_requests(
            [invite()] * 5, key=lambda r: "same", concurrency=5
        )
    assert report.all_created
    assert sum(not r.replayed for r in report.results) == 1
    assert len(fake.scheduling_requests) == 1


# -- over loopback, both backends ---------------------------------------------------------------


@pytest.mark.parametrize("backend", ["httpx", "aiohttp"])
@pytest.mark.parametrize(
    "fault", [None, Fault.ERROR_AFTER_CREATE, Fault.DROP_AFTER, Fault.DROP_BEFORE]
)
async def test_each_outcome_over_tcp(
    fake: FakeCronofy, ledger: Ledger, backend: Literal["httpx", "aiohttp"], fault: Fault | None
) -> None:
    if fault is not None:
        fake.inject(fault, times=3)
    async with fake.serve() as base_url:
        api = AsyncSchedulerAPI(
            fake.secret, base_url=base_url, http_backend=backend, rate_limit=None, ledger=ledger
        )
        use_clock(api, FakeClock())
        async with api:
            try:
                first = await api.create_scheduler_request(scheduler_invite(), idempotency_key="k")
            except CronofyError as error:
                first = None
                unknown = getattr(error, "outcome_unknown", False)
            received = fake.received
            entry = await api.ledger.get("k")
            assert entry is not None
            if first is not None:
                assert entry.state is LedgerState.CREATED
                again = await api.create_scheduler_request(scheduler_invite(), idempotency_key="k")
                assert again == first
                assert fake.received == received
            elif unknown:
                assert entry.state is LedgerState.UNKNOWN
                with pytest.raises(OutcomeUnknownError):
                    await api.create_scheduler_request(scheduler_invite(), idempotency_key="k")
                assert fake.received == received
            else:
                assert entry.state is LedgerState.FAILED
                await api.create_scheduler_request(scheduler_invite(), idempotency_key="k")
                assert fake.received == received + 1
    assert fake.created_count <= 1 or fault is not None


# -- cancellation --------------------------------------------------------------------------------


async def test_a_call_cancelled_before_sending_leaves_the_key_free(ledger: Ledger) -> None:
    gate = asyncio.Event()

    class Held:
        async def acquire(self) -> None:
            await gate.wait()  # pacing holds it: its bytes never leave

    with respx.mock(assert_all_mocked=True) as mock:
        mock.post("https://api.cronofy.com/v1/scheduling_requests").mock(
            return_value=httpx.Response(
                200, json={"scheduling_request": {"scheduling_request_id": "srq_1"}}
            )
        )
        async with AsyncSchedulerAPI(SECRET, ledger=ledger, rate_limit=Held()) as api:
            task = asyncio.create_task(api.create_scheduling_request(invite(), idempotency_key="k"))
            for _ in range(50):
                await asyncio.sleep(0.01)
                entry = await api.ledger.get("k")
                if entry is not None:
                    break
            assert entry is not None
            assert entry.state is LedgerState.SENDING
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert await api.ledger.get("k") is None  # free: nothing left
            gate.set()
            created = await api.create_scheduling_request(invite(), idempotency_key="k")
    assert created.scheduling_request_id == "srq_1"


async def test_a_call_cancelled_mid_send_leaves_the_key_unknown(ledger: Ledger) -> None:
    arrived = asyncio.Event()

    async def slow(request: httpx.Request) -> httpx.Response:
        arrived.set()
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    sends = 0

    def count(request: httpx.Request) -> None:
        nonlocal sends
        sends += 1

    with respx.mock(assert_all_mocked=True, assert_all_called=False) as mock:
        mock.post("https://api.cronofy.com/v1/scheduling_requests").mock(side_effect=slow)
        mock.route().mock(side_effect=count)
        async with AsyncSchedulerAPI(SECRET, ledger=ledger, rate_limit=None) as api:
            task = asyncio.create_task(api.create_scheduling_request(invite(), idempotency_key="k"))
            await arrived.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            entry = await api.ledger.get("k")
            assert entry is not None
            assert entry.state is LedgerState.UNKNOWN
            with pytest.raises(OutcomeUnknownError):
                await api.create_scheduling_request(invite(), idempotency_key="k")
    assert arrived.is_set()
    assert sends == 0  # the retry sent nothing


async def test_a_cancelled_resend_of_an_unknown_key_stays_unknown(ledger: Ledger) -> None:
    # Taken over with resend_unknown, then given back unsent: still unknown, never free.
    await ledger.claim("k", "fp", owner="dead")
    await ledger.settle("k", owner="dead", state=LedgerState.UNKNOWN)
    taken = await ledger.claim("k", "fp", owner="me", resend_unknown=True)
    assert taken.held_by("me")
    await ledger.release("k", owner="me")
    entry = await ledger.get("k")
    assert entry is not None
    assert entry.state is LedgerState.UNKNOWN
    # A resend that failed proves nothing of the first send either.
    await ledger.claim("k", "fp", owner="me2", resend_unknown=True)
    await ledger.settle("k", owner="me2", state=LedgerState.FAILED)
    entry = await ledger.get("k")
    assert entry is not None
    assert entry.state is LedgerState.UNKNOWN


# -- the ledger's own rules --------------------------------------------------------------------


async def test_a_claim_whose_lease_ran_out_reads_unknown(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("redis_url")
    namespace = request.getfixturevalue("redis_namespace")
    for ledger in (
        MemoryLedger(lease=0.2),
        SQLiteLedger(tmp_path / "l.db", lease=0.2),
        RedisLedger(url, namespace=namespace, lease=0.2),
    ):
        held = await ledger.claim("k", "fp", owner="dead")
        assert held.held_by("dead")
        other = await ledger.claim("k", "fp", owner="alive")
        assert other.state is LedgerState.SENDING
        assert not other.held_by("alive")
        await asyncio.sleep(0.3)
        lapsed = await ledger.claim("k", "fp", owner="alive")
        assert lapsed.state is LedgerState.UNKNOWN, ledger
        # A late "created" from the lapsed holder is still recorded: it is better knowledge.
        await ledger.settle(
            "k", owner="dead", state=LedgerState.CREATED, request_id="srq_1", result=b"{}"
        )
        entry = await ledger.get("k")
        assert entry is not None
        assert (entry.state, entry.request_id) == (LedgerState.CREATED, "srq_1")
        await ledger.aclose()


async def test_a_long_call_renews_its_claim(fake: FakeCronofy, tmp_path: Path) -> None:
    ledger = SQLiteLedger(tmp_path / "l.db", lease=0.3)
    fake.faults = fake.faults.__class__(latency=0.8)  # longer than the lease
    async with api_for(fake, ledger) as api:
        first, second = await asyncio.gather(
            api.create_scheduling_request(invite(), idempotency_key="k"),
            _later(api.create_scheduling_request(invite(), idempotency_key="k"), 0.5),
        )
    await ledger.aclose()
    assert first == second
    assert fake.received == 1


async def _later(call: Any, seconds: float) -> Any:
    await asyncio.sleep(seconds)
    return await call


async def test_entries_expire_after_the_ttl(ledger_kinds_short_ttl: list[Ledger]) -> None:
    for ledger in ledger_kinds_short_ttl:
        await ledger.claim("k", "fp", owner="o")
        await ledger.settle(
            "k", owner="o", state=LedgerState.CREATED, request_id="srq", result=b"{}"
        )
        assert await ledger.get("k") is not None
        await asyncio.sleep(1.1)
        assert await ledger.get("k") is None, ledger
        fresh = await ledger.claim("k", "other", owner="o2")
        assert fresh.held_by("o2")


@pytest.fixture
async def ledger_kinds_short_ttl(
    tmp_path: Path, redis_url: str, redis_namespace: str
) -> AsyncIterator[list[Ledger]]:
    made: list[Ledger] = [
        MemoryLedger(ttl=1, lease=0.5),
        SQLiteLedger(tmp_path / "ttl.db", ttl=1, lease=0.5),
        RedisLedger(redis_url, namespace=redis_namespace, ttl=1, lease=0.5),
    ]
    yield made
    for ledger in made:
        await ledger.aclose()


# -- an unavailable ledger -----------------------------------------------------------------------


async def test_a_corrupt_sqlite_file_is_unavailable_and_nothing_is_sent(
    fake: FakeCronofy, tmp_path: Path
) -> None:
    path = tmp_path / "corrupt.db"
    path.write_bytes(b"this is not a database" * 100)
    ledger = SQLiteLedger(path)
    async with api_for(fake, ledger) as api:
        with pytest.raises(LedgerUnavailableError) as info:
            await api.create_scheduling_request(invite(), idempotency_key="k")
    await ledger.aclose()
    assert "nothing was sent" in str(info.value)
    assert fake.received == 0


async def test_a_sqlite_file_in_a_missing_folder_is_unavailable(
    fake: FakeCronofy, tmp_path: Path
) -> None:
    ledger = SQLiteLedger(tmp_path / "missing" / "l.db")
    async with api_for(fake, ledger) as api:
        with pytest.raises(LedgerUnavailableError):
            await api.create_scheduling_request(invite(), idempotency_key="k")
    await ledger.aclose()
    assert fake.received == 0


async def test_a_locked_sqlite_file_is_unavailable_within_its_timeout(
    fake: FakeCronofy, tmp_path: Path
) -> None:
    path = tmp_path / "locked.db"
    ledger = SQLiteLedger(path, timeout=0.5)
    await ledger.get("warm")  # the file and its table exist
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process holding the lock
    loop = asyncio.get_running_loop()
    try:
        async with api_for(fake, ledger) as api:
            started = loop.time()
            with pytest.raises(LedgerUnavailableError, match=r"within 0\.5 s|locked"):
                await api.create_scheduling_request(invite(), idempotency_key="k")
            assert loop.time() - started < 3
            assert fake.received == 0
            holder.execute("ROLLBACK")
            # Once the lock is gone, the key is free: the timed-out claim left nothing.
            await api.create_scheduling_request(invite(), idempotency_key="k")
    finally:
        holder.close()
        await ledger.aclose()
    assert fake.received == 1


async def test_a_call_racing_aclose_neither_hangs_it_nor_is_lost(tmp_path: Path) -> None:
    # A call arriving while aclose() waits for the database thread (the claim given back in
    # the background after a failure, say) starts a thread of its own; it must not take the
    # stop meant for the old one, or aclose() waits forever (a hang seen in CI).
    path = tmp_path / "race.db"
    ledger = SQLiteLedger(path, timeout=5)
    await ledger.get("warm")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # keeps the database thread busy on the next call
    try:
        busy = asyncio.ensure_future(ledger.get("first"))
        await asyncio.sleep(0.2)  # the thread now waits for the lock, inside `first`
        closing = asyncio.ensure_future(ledger.aclose())
        await asyncio.sleep(0)  # aclose() has asked the thread to stop and waits for it
        late = asyncio.ensure_future(ledger.get("late"))
        await asyncio.sleep(0.2)
        holder.execute("ROLLBACK")
        async with asyncio.timeout(10):
            assert await busy is None
            await closing
            assert await late is None  # answered by the thread it started, not lost
    finally:
        holder.close()
        await ledger.aclose()


async def test_a_stopped_redis_is_unavailable_and_nothing_is_sent(fake: FakeCronofy) -> None:
    with running_redis() as server:
        ledger = RedisLedger(server.url, namespace="stopping", timeout=1)
        async with api_for(fake, ledger) as api:
            await api.create_scheduling_request(invite(), idempotency_key="before")
            server.stop()
            with pytest.raises(LedgerUnavailableError) as info:
                await api.create_scheduling_request(invite(), idempotency_key="after")
        await ledger.aclose()
    assert "nothing was sent" in str(info.value)
    assert fake.received == 1


async def test_a_failing_custom_ledger_is_unavailable(fake: FakeCronofy) -> None:
    class Broken(MemoryLedger):
        async def claim(self, *args: Any, **kwargs: Any) -> Any:
            raise OSError("disk on fire")

    async with api_for(fake, Broken()) as api:
        with pytest.raises(LedgerUnavailableError) as info:
            await api.create_scheduling_request(invite(), idempotency_key="k")
    assert isinstance(info.value.__cause__, OSError)
    assert fake.received == 0


# -- the secret ----------------------------------------------------------------------------------


async def test_the_secret_is_never_stored(
    tmp_path: Path, redis_url: str, redis_namespace: str, redis_client: Any
) -> None:
    # A hostile server echoing the secret in its answer gets it into no ledger.
    body = {
        "scheduling_request": {
            "scheduling_request_id": "srq_1",
            "summary": f"echo {SECRET}",
            "recipients": [{"email": "doc@evenitron.com", "select_url": "https://x/r/1"}],
        }
    }
    path = tmp_path / "secret.db"
    ledgers: list[Ledger] = [
        SQLiteLedger(path),
        RedisLedger(redis_url, namespace=redis_namespace),
    ]
    with respx.mock(assert_all_mocked=True) as mock:
        mock.post("https://api.cronofy.com/v1/scheduling_requests").mock(
            return_value=httpx.Response(200, json=body)
        )
        for ledger in ledgers:
            async with AsyncSchedulerAPI(SECRET, ledger=ledger, rate_limit=None) as api:
                await api.create_scheduling_request(invite(), idempotency_key="k")
                replay = await api.create_scheduling_request(invite(), idempotency_key="k")
                assert SECRET not in repr(await api.ledger.get("k"))
            assert replay.scheduling_request_id == "srq_1"
            await ledger.aclose()
    for file in await asyncio.to_thread(lambda: list(tmp_path.iterdir())):
        assert SECRET.encode() not in await asyncio.to_thread(file.read_bytes), file
    keys = await redis_client.keys(f"*{redis_namespace}*")  # this test's: others share Redis
    assert keys
    for key in keys:
        assert SECRET.encode() not in key
        values = await redis_client.hgetall(key)
        assert all(SECRET.encode() not in v for v in values.values())


async def test_authentication_failure_frees_the_key(ledger: Ledger) -> None:
    with respx.mock(assert_all_mocked=True) as mock:
        mock.post("https://api.cronofy.com/v1/scheduling_requests").mock(
            return_value=httpx.Response(401)
        )
        async with AsyncSchedulerAPI(SECRET, ledger=ledger, rate_limit=None) as api:
            with pytest.raises(AuthenticationError):
                await api.create_scheduling_request(invite(), idempotency_key="k")
            entry = await api.ledger.get("k")
    assert entry is not None
    assert entry.state is LedgerState.FAILED


async def test_retry_unsafe_is_still_one_send_per_key_call(ledger: Ledger) -> None:
    # retry_unsafe retries inside one call; the ledger still records one outcome for the key.
    with respx.mock(assert_all_mocked=True) as mock:
        route = mock.post("https://api.cronofy.com/v1/scheduling_requests").mock(
            side_effect=[
                httpx.Response(500),
                httpx.Response(200, json={"scheduling_request": {"scheduling_request_id": "s"}}),
            ]
        )
        api = AsyncSchedulerAPI(
            SECRET, ledger=ledger, rate_limit=None, retry=RetryPolicy(retry_unsafe=True)
        )
        use_clock(api, FakeClock())
        async with api:
            await api.create_scheduling_request(invite(), idempotency_key="k")
            await api.create_scheduling_request(invite(), idempotency_key="k")
    assert route.call_count == 2


# -- several processes -------------------------------------------------------------------------

WORKER = str(Path(__file__).with_name("ledger_worker.py"))


async def run_workers(
    base_url: str, secret: str, spec: str, keys: list[str], count: int
) -> list[list[dict[str, str]]]:
    import json
    import sys

    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            WORKER,
            base_url,
            secret,
            spec,
            *keys,
            stdout=asyncio.subprocess.PIPE,
        )
        for _ in range(count)
    ]
    outputs = []
    for process in processes:
        out, _ = await asyncio.wait_for(process.communicate(), 120)
        assert process.returncode == 0
        lines = out.decode().splitlines()
        assert lines[0] == "ready"
        outputs.append([json.loads(line) for line in lines[1:]])
    return outputs


@pytest.mark.real_time
@pytest.mark.parametrize("kind", ["sqlite", "redis"])
async def test_two_processes_racing_50_keys_invite_each_once(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    fake = FakeCronofy(members=["acc_1"], rate_limit=None)
    fake.faults = fake.faults.__class__(latency=0.05)  # long enough for the two to overlap
    if kind == "sqlite":
        spec = f"sqlite:{tmp_path / 'shared.db'}"
    else:
        url = request.getfixturevalue("redis_url")
        spec = f"redis:{url}#{request.getfixturevalue('redis_namespace')}"
    keys = [f"key-{i}" for i in range(50)]
    async with fake.serve() as base_url:
        one, two = await run_workers(base_url, fake.secret, spec, keys, 2)
    assert all("id" in line for line in one + two), one + two
    assert {line["key"]: line["id"] for line in one} == {line["key"]: line["id"] for line in two}
    assert len(fake.scheduling_requests) == 50
    assert len({e.email for e in fake.scheduling_requests}) == 50


@pytest.mark.real_time
@pytest.mark.parametrize("kind", ["sqlite", "redis"])
async def test_a_process_killed_mid_send_leaves_its_key_unknown(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    import signal
    import sys

    fake = FakeCronofy(members=["acc_1"], rate_limit=None)
    fake.faults = fake.faults.__class__(latency=30)  # the request hangs at the server
    if kind == "sqlite":
        spec = f"sqlite:{tmp_path / 'killed.db'}"
        ledger: Ledger = SQLiteLedger(tmp_path / "killed.db", lease=1.0, wait=5.0)
    else:
        url = request.getfixturevalue("redis_url")
        namespace = request.getfixturevalue("redis_namespace")
        spec = f"redis:{url}#{namespace}"
        ledger = RedisLedger(url, namespace=namespace, lease=1.0, wait=5.0)
    async with fake.serve() as base_url:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            WORKER,
            base_url,
            fake.secret,
            spec,
            "doomed",
            stdout=asyncio.subprocess.PIPE,
        )
        try:
            for _ in range(300):
                if fake.received:
                    break
                await asyncio.sleep(0.05)
            assert fake.received == 1  # its bytes are at the server
        finally:
            process.send_signal(signal.SIGKILL)
            await process.wait()
        fake.faults = fake.faults.__class__()
        async with AsyncSchedulerAPI(
            fake.secret, base_url=base_url, rate_limit=None, ledger=ledger
        ) as api:
            # Within the lease the retry waits for the dead holder, then finds it unknown.
            with pytest.raises(OutcomeUnknownError):
                await api.create_scheduling_request(
                    NewSchedulingRequest(
                        host=Host(sub="acc_1"),
                        recipients=[Recipient(email="doomed@example.com")],
                        event=Event(summary="Race"),
                    ),
                    idempotency_key="doomed",
                )
            entry = await api.ledger.get("doomed")
    await ledger.aclose()
    assert entry is not None
    assert entry.state is LedgerState.UNKNOWN
    assert fake.received == 1  # the retry sent nothing


async def test_an_outcome_the_sqlite_ledger_cannot_record_is_logged_and_reads_unknown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from cronofy_async import _sqlite_ledger

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    ledger = SQLiteLedger(tmp_path / "l.db", lease=0.2)
    await ledger.claim("k", "fp", owner="o")
    monkeypatch.setattr(_sqlite_ledger, "settle_transition", broken)
    # The one-statement settle of a held claim would apply it without the transition: off.
    never = _sqlite_ledger._SETTLE_HELD.replace("WHERE key", "WHERE 0 AND key")
    monkeypatch.setattr(_sqlite_ledger, "_SETTLE_HELD", never)
    with caplog.at_level(logging.WARNING, logger="cronofy_async"):
        await ledger.settle("k", owner="o", state=LedgerState.CREATED, request_id="s", result=b"{}")
        await ledger.get("k")  # after the settle: the thread runs requests in order
    assert "failed to record an outcome" in caplog.text
    await asyncio.sleep(0.3)
    entry = await ledger.get("k")
    await ledger.aclose()
    assert entry is not None
    assert entry.state is LedgerState.UNKNOWN  # never free: the claim lapsed


async def test_a_sqlite_ledger_works_from_a_second_event_loop(tmp_path: Path) -> None:
    ledger = SQLiteLedger(tmp_path / "l.db")
    await ledger.claim("k", "fp", owner="o")

    def other_loop() -> Any:
        return asyncio.run(ledger.get("k"))

    entry = await asyncio.to_thread(other_loop)
    await ledger.aclose()
    assert entry is not None
    assert entry.held_by("o")


async def test_a_sqlite_claim_reaches_the_disk_before_it_is_answered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The intent must survive a power cut (full sync); an outcome need not, since a lost one
    # lapses to UNKNOWN, never re-sent. So: FULL for a claim's commit, NORMAL otherwise.
    statements: list[str] = []
    ledger = SQLiteLedger(tmp_path / "l.db")
    connect = ledger._connect

    def traced() -> sqlite3.Connection:
        db = connect()
        db.set_trace_callback(statements.append)
        return db

    monkeypatch.setattr(ledger, "_connect", traced)

    def sync_at_each_commit() -> list[str]:
        in_force, found = "FULL", []  # what _connect sets, untraced
        for statement in statements:
            if statement.startswith("PRAGMA synchronous="):
                in_force = statement.partition("=")[2]
            elif statement == "COMMIT":
                found.append(in_force)
        return found

    await ledger.claim("k", "fp", owner="o")
    await ledger.settle("k", owner="o", state=LedgerState.CREATED, request_id="srq_1", result=b"{}")
    await ledger.get("k")  # after the settle: the thread runs requests in order
    await ledger.claim("k2", "fp", owner="o")
    commits = sync_at_each_commit()  # the settle and the read may share one transaction
    assert (commits[0], commits[-1]) == ("FULL", "FULL")
    assert set(commits[1:-1]) == {"NORMAL"}
    await ledger.aclose()
