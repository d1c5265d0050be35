"""RedisLimiter: the shared budget's contract, against a real redis-server."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio

from cronofy_async import (
    CronofyError,
    LimiterUnavailableError,
    RateLimit,
    RateLimitError,
)
from cronofy_async._ratelimit import Limiter, PausingLimiter
from cronofy_async.redis import RedisLimiter
from cronofy_async.redis._keys import keys_for
from cronofy_async.redis._script import MAX_PAUSE, RETENTION_FLOOR, pause_args, reserve_args
from cronofy_async.testing import FakeCronofy, Fault, Faults

from .conftest import seed_request
from .helpers import FakeClock, use_clock
from .redis_server import RedisServer, running_redis

ROOT = Path(__file__).resolve().parent.parent
SECRET = "sk_redis_test_super_secret"


def contract_breaks(admits: list[int], limit: RateLimit) -> list[str]:
    """Every way `admits` (us) break `limit`'s windows or spacing; empty when they keep it."""
    times = sorted(admits)
    problems = []
    for count, seconds in limit.windows():
        window = round(seconds * 1e6)
        for i in range(len(times) - count):
            if times[i + count] - times[i] < window:
                problems.append(f"{count + 1} admissions within {seconds} s from index {i}")
    if not limit.burst and limit.windows():
        spacing = min(seconds / count for count, seconds in limit.windows()) * 1e6
        for a, b in itertools.pairwise(times):
            if b - a < spacing - 1:
                problems.append(f"{a} and {b} closer than the spacing")
    return problems


class HeldClock:
    """A clock whose sleeps block until released (or cancelled), recording each request."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []
        self._release = asyncio.Event()
        self.sleeping = asyncio.Event()

    def monotonic(self) -> float:
        raise AssertionError("the Redis limiter must read no local clock")

    def wall(self) -> float:
        raise AssertionError("the Redis limiter must read no local clock")

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.sleeping.set()
        await self._release.wait()
        self._release.clear()
        self.sleeping.clear()

    def release(self) -> None:
        self._release.set()


async def redis_time_us(client: redis.asyncio.Redis) -> int:
    seconds, micros = await client.time()
    return int(seconds) * 1_000_000 + int(micros)


async def log_of(client: redis.asyncio.Redis, namespace: str) -> list[tuple[str, int]]:
    entries: Any = await client.zrange(keys_for(namespace).log, 0, -1, withscores=True)
    return [(member.decode(), int(score)) for member, score in entries]


@pytest.fixture
async def limiter(redis_url: str, redis_namespace: str) -> AsyncIterator[RedisLimiter]:
    """A limiter spacing requests 1.05 s apart: room for a test to act between two slots."""
    async with RedisLimiter(
        redis_url, RateLimit(per_second=1, per_minute=None), namespace=redis_namespace
    ) as limiter:
        yield limiter


# -- configuration ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("namespace", "fragment"),
    [
        ("", "namespace must be a non-empty string"),
        (None, "namespace must be a non-empty string"),
        ("x" * 201, "namespace must be at most 200 characters"),
    ],
)
def test_a_bad_namespace_is_refused(namespace: Any, fragment: str) -> None:
    with pytest.raises(CronofyError, match=fragment):
        RedisLimiter("redis://127.0.0.1:1/0", namespace=namespace)


def test_odd_namespaces_never_share_keys_or_break_their_layout() -> None:
    odd = ["a", "a:b", "a}b", "{a}", "a b", "a\nb", "a%3Ab", "é", "*", "a/b", "x" * 200]
    keys = [keys_for(namespace) for namespace in odd]
    assert len({k.log for k in keys} | {k.pause for k in keys}) == 2 * len(odd)
    for k in keys:
        # One hash tag, no separator or whitespace inside it: a cluster keeps a namespace's
        # keys together, and no namespace reads as another's key.
        tag = k.log.removeprefix("cronofy-async:{").removesuffix("}:log")
        assert not set(tag) & set("{}: \n%") - {"%"}
        assert k.pause == f"cronofy-async:{{{tag}}}:pause"


@pytest.mark.parametrize(
    ("args", "options", "fragment"),
    [
        (("http://127.0.0.1/",), {}, "not a Redis URL"),
        ((object(),), {}, "needs a Redis URL or a redis.asyncio.Redis, got builtins.object"),
        (("redis://127.0.0.1:1/0", "50/s"), {}, "rate_limit must be a RateLimit, got str"),
        (("redis://127.0.0.1:1/0",), {"timeout": 0}, "timeout must be a positive number"),
        (("redis://127.0.0.1:1/0",), {"timeout": True}, "timeout must be a positive number"),
    ],
)
def test_bad_options_are_refused(args: tuple[Any, ...], options: Any, fragment: str) -> None:
    with pytest.raises(CronofyError, match=fragment):
        RedisLimiter(*args, namespace="n", **options)


def test_a_sync_client_is_refused() -> None:
    import redis as sync_redis

    with pytest.raises(CronofyError, match=r"got redis\.client\.Redis"):
        RedisLimiter(sync_redis.Redis(), namespace="n")  # type: ignore[arg-type]


def test_the_repr_hides_a_redis_password() -> None:
    limiter = RedisLimiter("redis://user:hunter2@127.0.0.1:6379/0", namespace="n")
    assert "hunter2" not in repr(limiter)
    assert "redis://***@127.0.0.1:6379/0" in repr(limiter)
    assert repr(RedisLimiter("redis://127.0.0.1:6379/0", namespace="n")).startswith(
        "RedisLimiter('redis://127.0.0.1:6379/0', RateLimit(per_second=50"
    )


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://127.0.0.1:6379/3?password=hunter2", "redis://127.0.0.1:6379/3?password=***"),
        (
            "redis://127.0.0.1/0?db=2&username=alice&PassWord=hunter2&x=a@b",
            "redis://127.0.0.1/0?db=2&username=***&PassWord=***&x=a@b",
        ),
        ("redis://127.0.0.1/0?password%3D=hunter2", "redis://127.0.0.1/0?password%3D=***"),
        ("redis://127.0.0.1/0?pass%77ord=hunter2", "redis://127.0.0.1/0?pass%77ord=***"),
        ("redis://alice@127.0.0.1/0", "redis://***@127.0.0.1/0"),
        ("redis://alice:hun@ter2@127.0.0.1/0", "redis://***@127.0.0.1/0"),
        ("unix://alice:hunter2@/run/redis.sock?db=1", "unix://***@/run/redis.sock?db=1"),
        (
            "unix:///run/redis.sock?db=1&password=hunter2",
            "unix:///run/redis.sock?db=1&password=***",
        ),
        ("rediss://127.0.0.1/0?client_name=a@b", "rediss://127.0.0.1/0?client_name=a@b"),
        ("redis://127.0.0.1/0#hunter2", "redis://127.0.0.1/0#***"),
    ],
)
def test_the_repr_hides_every_password_and_user_name(url: str, shown: str) -> None:
    limiter = RedisLimiter(url, namespace="n")
    assert "hunter2" not in repr(limiter)
    assert "alice" not in repr(limiter)
    assert f"RedisLimiter({shown!r}," in repr(limiter)


async def test_a_query_password_is_in_no_error_message() -> None:
    limiter = RedisLimiter("redis://127.0.0.1:1/0?password=pw-not-shown", namespace="n")
    with pytest.raises(LimiterUnavailableError) as caught:
        await limiter.acquire()
    await limiter.aclose()
    assert "pw-not-shown" not in str(caught.value)
    assert "redis://127.0.0.1:1/0?password=***" in str(caught.value)


def test_it_is_a_limiter_the_api_tells_of_429s() -> None:
    limiter = RedisLimiter("redis://127.0.0.1:1/0", namespace="n")
    assert isinstance(limiter, Limiter)
    assert isinstance(limiter, PausingLimiter)

    class OnlyAcquire:
        async def acquire(self) -> None:
            pass

    assert isinstance(OnlyAcquire(), Limiter)  # the optional method stays optional
    assert not isinstance(OnlyAcquire(), PausingLimiter)


def test_the_script_gets_the_in_process_limiters_windows() -> None:
    assert reserve_args(RateLimit(), "m", 0) == [
        "m", 0, 21000, int(RETENTION_FLOOR * 1e6), 50, 1_050_000, 500, 60_050_000,
    ]  # fmt: skip
    burst = reserve_args(RateLimit(per_second=None, per_minute=5, burst=True), "m", 7)
    assert burst == ["m", 7, 0, int(RETENTION_FLOOR * 1e6), 5, 60_050_000]
    long_margin = reserve_args(RateLimit(per_second=None, per_minute=5, margin=100), "m", 0)
    assert long_margin[3] == 160_000_000  # kept at least as long as the longest window


# -- the contract, across processes ---------------------------------------------------------


@pytest.mark.parametrize(
    ("per_second", "per_minute", "burst"),
    [(5, None, "burst"), (50, 200, "burst"), (50, 500, "smooth")],
)
def test_four_processes_booking_at_once_never_break_a_window(
    redis_url: str, redis_namespace: str, per_second: int, per_minute: int | None, burst: str
) -> None:
    # Each process books as fast as Redis answers, all starting together: a booking that read
    # then wrote, or that read a process's own clock, would let two fall in one slot.
    start_at = time.time() + 3.0  # every process ready first, even on a loaded machine
    processes = [
        subprocess.Popen(  # noqa: S603 - our own helper, our own interpreter
            [
                sys.executable,
                "-m",
                "tests.redis_booker",
                redis_url,
                redis_namespace,
                "60",
                str(per_second),
                str(per_minute).lower(),
                burst,
                str(start_at),
            ],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        for _ in range(4)
    ]
    outputs = [process.communicate(timeout=60)[0] for process in processes]
    assert [p.returncode for p in processes] == [0, 0, 0, 0]
    admits = [admit for output in outputs for admit in json.loads(output)]
    assert len(set(admits)) == 240 or burst == "burst"
    limit = RateLimit(per_second=per_second, per_minute=per_minute, burst=burst == "burst")
    assert contract_breaks(admits, limit) == []
    # Admitted the moment it fits: the busiest window is full, not merely under its count.
    count, seconds = limit.windows()[0]
    times = sorted(admits)
    assert times[count] - times[0] == round(seconds * 1e6) or burst == "smooth"


def test_the_checker_sees_a_broken_window() -> None:
    burst = RateLimit(per_second=2, per_minute=None, burst=True)
    assert contract_breaks([0, 600_000, 1_000_000], burst) == [
        "3 admissions within 1.05 s from index 0"
    ]
    smooth = RateLimit(per_second=2, per_minute=None)
    assert contract_breaks([0, 100], smooth) == ["0 and 100 closer than the spacing"]


@pytest.mark.real_time  # waits for its turns for real: 21 ms apart
async def test_acquire_returns_no_earlier_than_its_admission(
    redis_url: str, redis_namespace: str, redis_client: redis.asyncio.Redis
) -> None:
    limit = RateLimit(per_second=50, per_minute=None)
    booked: list[int] = []
    returned: list[int] = []
    async with RedisLimiter(redis_url, limit, namespace=redis_namespace) as limiter:
        reserve = limiter._reserve

        async def recording(member: str, held: int) -> tuple[int, int]:
            wait, admit = await reserve(member, held)
            booked.append(admit)
            return wait, admit

        limiter._reserve = recording  # type: ignore[method-assign]

        async def one() -> None:
            await limiter.acquire()
            returned.append(await redis_time_us(redis_client))

        await asyncio.gather(*(one() for _ in range(12)))
    assert contract_breaks(list(set(booked)), limit) == []  # a waiter confirms its booking
    # Each returned after its admission on Redis's clock (waits are relative: no local clock).
    assert all(r >= a for r, a in zip(sorted(returned), sorted(set(booked)), strict=True))


# -- cancellation ------------------------------------------------------------------------


async def test_a_cancelled_waiter_gives_its_slot_back(
    limiter: RedisLimiter, redis_client: redis.asyncio.Redis, redis_namespace: str
) -> None:
    clock = limiter._clock = HeldClock()
    await limiter.acquire()  # admitted at once
    waiter = asyncio.create_task(limiter.acquire())
    await clock.sleeping.wait()
    [(admitted, first), (_member, slot)] = await log_of(redis_client, redis_namespace)
    assert slot - first == 1_050_000
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert [m for m, _ in await log_of(redis_client, redis_namespace)] == [admitted]
    # The next caller gets the very slot the cancelled one had booked.
    _wait, admit = await limiter._reserve("next", 0)
    assert admit == slot


class _Stalling:
    """A connection whose `reserve` runs the real script, then stalls (the reply in flight)."""

    def __init__(self, real: Any, stall_on: int) -> None:
        self.client = real.client
        self.pause = real.pause
        self.slots = real.slots
        self._real = real
        self._calls = 0
        self._stall_on = stall_on
        self.stalled = asyncio.Event()

    async def reserve(self, **kwargs: Any) -> Any:
        self._calls += 1
        reply = await self._real.reserve(**kwargs)
        if self._calls == self._stall_on:
            self.stalled.set()
            await asyncio.Event().wait()
        return reply


@pytest.mark.parametrize("stall_on", [1, 2], ids=["booking", "confirming"])
async def test_cancelled_while_redis_answers_gives_the_slot_back(
    limiter: RedisLimiter, redis_client: redis.asyncio.Redis, redis_namespace: str, stall_on: int
) -> None:
    # Cancelled after the script ran in Redis but before its reply was read: the booking
    # exists there, and only its member, chosen before sending, can find it.
    limiter._clock = clock = HeldClock()
    await limiter._reserve("someone-before", 0)  # so this one has to wait, then confirm
    stalling = _Stalling(limiter._connection(), stall_on)
    limiter._connection = lambda: stalling  # type: ignore[assignment,method-assign,return-value]
    waiter = asyncio.create_task(limiter.acquire())
    if stall_on == 2:
        await clock.sleeping.wait()
        clock.release()
    await stalling.stalled.wait()
    assert len(await log_of(redis_client, redis_namespace)) == 2
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert [m for m, _ in await log_of(redis_client, redis_namespace)] == ["someone-before"]


async def test_cancelled_again_while_giving_back_still_gives_back(
    limiter: RedisLimiter, redis_client: redis.asyncio.Redis, redis_namespace: str
) -> None:
    clock = limiter._clock = HeldClock()
    await limiter.acquire()
    waiter = asyncio.create_task(limiter.acquire())
    await clock.sleeping.wait()
    waiter.cancel()
    await asyncio.sleep(0)  # the give-back has started
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    await asyncio.gather(*limiter._releases)
    assert len(await log_of(redis_client, redis_namespace)) == 1


async def test_a_give_back_redis_refuses_is_logged_and_the_booking_expires(
    limiter: RedisLimiter, caplog: pytest.LogCaptureFixture
) -> None:
    clock = limiter._clock = HeldClock()
    await limiter.acquire()
    waiter = asyncio.create_task(limiter.acquire())
    await clock.sleeping.wait()

    async def refuse(what: str, command: Any) -> Any:
        raise LimiterUnavailableError("down")

    limiter._call = refuse  # type: ignore[method-assign]
    waiter.cancel()
    with (
        caplog.at_level(logging.WARNING, logger="cronofy_async"),
        pytest.raises(asyncio.CancelledError),
    ):
        await waiter
    assert "could not give a cancelled request's slot back: down" in caplog.text


class _Swallowing:
    """A connection whose `reserve` runs the real script, then swallows one cancel.

    What redis-py does on Python 3.11 when a cancel lands while it opens a connection (its
    ``wait_for`` returns the finished result and drops the cancel).
    """

    def __init__(self, real: Any, swallow_on: int) -> None:
        self.client = real.client
        self.pause = real.pause
        self.slots = real.slots
        self._real = real
        self._calls = 0
        self._swallow_on = swallow_on
        self.waiting = asyncio.Event()

    async def reserve(self, **kwargs: Any) -> Any:
        self._calls += 1
        reply = await self._real.reserve(**kwargs)
        if self._calls == self._swallow_on:
            self.waiting.set()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.Event().wait()
        return reply


@pytest.mark.parametrize("swallow_on", [1, 2], ids=["booking", "confirming"])
async def test_a_cancel_redis_py_swallows_still_cancels_and_gives_back(
    limiter: RedisLimiter, redis_client: redis.asyncio.Redis, redis_namespace: str, swallow_on: int
) -> None:
    limiter._clock = clock = HeldClock()
    if swallow_on == 2:
        await limiter._reserve("someone-before", 0)  # so this one waits, then confirms
    swallowing = _Swallowing(limiter._connection(), swallow_on)
    limiter._connection = lambda: swallowing  # type: ignore[assignment,method-assign,return-value]
    waiter = asyncio.create_task(limiter.acquire())
    if swallow_on == 2:
        await clock.sleeping.wait()
        clock.release()
    await swallowing.waiting.wait()
    waiter.cancel()
    # A hang guard only: a lost cancel would leave the waiter asleep on the held clock.
    with pytest.raises(asyncio.CancelledError):
        async with asyncio.timeout(30):
            await waiter
    expected = ["someone-before"] if swallow_on == 2 else []
    assert [m for m, _ in await log_of(redis_client, redis_namespace)] == expected


@pytest.mark.real_time  # callers cancelled by a real 50 ms timeout while a cold limiter connects
async def test_no_caller_whose_timeout_fired_is_admitted(
    redis_url: str, redis_namespace: str
) -> None:
    limit = RateLimit(per_second=20, per_minute=None)
    admitted_late: list[int] = []
    timed_out = 0

    async def one(i: int) -> None:
        nonlocal timed_out
        try:
            async with asyncio.timeout(0.05) as deadline:
                await shared.acquire()
        except TimeoutError:
            timed_out += 1
            return
        if deadline.expired():  # the cancel was lost: the caller would send after its deadline
            admitted_late.append(i)

    async with RedisLimiter(redis_url, limit, namespace=redis_namespace) as shared:
        await asyncio.gather(*(one(i) for i in range(60)))
    assert admitted_late == []
    assert timed_out > 0


async def test_a_waiter_whose_booking_a_restart_lost_books_again(
    limiter: RedisLimiter, redis_client: redis.asyncio.Redis, redis_namespace: str
) -> None:
    # A Redis restarted without persistence forgets every booking: a waiter booked before it
    # must not go at its old time while newcomers book against the empty log.
    clock = limiter._clock = HeldClock()
    await limiter.acquire()
    waiter = asyncio.create_task(limiter.acquire())
    await clock.sleeping.wait()
    await redis_client.delete(limiter.keys.log)  # what a restart leaves
    _wait, newcomer = await limiter._reserve("newcomer", 0)
    clock.release()
    await asyncio.sleep(0)  # the waiter wakes, then confirms with Redis and sleeps again
    await clock.sleeping.wait()
    assert len(clock.sleeps) == 2  # told to wait again, not admitted
    [(_n, first), (_m, rebooked)] = await log_of(redis_client, redis_namespace)
    assert first == newcomer
    assert rebooked - newcomer == 1_050_000  # spaced after the newcomer
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter


# -- the shared 429 pause -------------------------------------------------------------------


async def test_a_pause_from_one_process_holds_the_others(
    redis_url: str, redis_namespace: str, redis_client: redis.asyncio.Redis
) -> None:
    limit = RateLimit(per_second=20, per_minute=None)
    async with (
        RedisLimiter(redis_url, limit, namespace=redis_namespace) as one,
        RedisLimiter(redis_client, limit, namespace=redis_namespace) as other,
    ):
        await one.pause(30.0)
        paused_until = int(await redis_client.get(keys_for(redis_namespace).pause) or 0)
        before = await redis_time_us(redis_client)
        assert 25_000_000 < paused_until - before <= 30_000_000
        _wait, admit = await other._reserve("x", 0)
        assert admit == paused_until
        await one.pause(1.0)  # a shorter pause never shortens a longer one
        assert int(await redis_client.get(keys_for(redis_namespace).pause) or 0) == paused_until
        assert 0 < await redis_client.pttl(keys_for(redis_namespace).pause) <= 31_000


async def test_a_waiter_booked_before_a_pause_waits_it_out(
    limiter: RedisLimiter, redis_client: redis.asyncio.Redis, redis_namespace: str
) -> None:
    clock = limiter._clock = HeldClock()
    await limiter.acquire()
    waiter = asyncio.create_task(limiter.acquire())
    await clock.sleeping.wait()
    [_, (member, first_slot)] = await log_of(redis_client, redis_namespace)
    await limiter.pause(10.0)  # a 429 elsewhere, while this one sleeps toward its slot
    clock.release()
    while len(clock.sleeps) < 2:  # noqa: ASYNC110 - the waiter confirms, then sleeps again
        await asyncio.sleep(0.001)
    paused_until = int(await redis_client.get(keys_for(redis_namespace).pause) or 0)
    [_, (again, slot)] = await log_of(redis_client, redis_namespace)
    assert again == member
    assert slot == paused_until > first_slot
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter


async def test_a_429_through_the_api_pauses_every_process(
    redis_url: str, redis_namespace: str, redis_client: redis.asyncio.Redis
) -> None:
    fake = FakeCronofy([SECRET], members=None, rate_limit=None, faults=Faults(retry_after=7))
    fake.inject(Fault.RATE_LIMITED)
    limit = RateLimit(per_second=20, per_minute=None)
    async with (
        RedisLimiter(redis_url, limit, namespace=redis_namespace) as here,
        RedisLimiter(redis_url, limit, namespace=redis_namespace) as elsewhere,
        fake.api(rate_limit=here, retry=None) as api,
    ):
        with pytest.raises(RateLimitError):
            await api.create_scheduler_request(seed_request())
        now = await redis_time_us(redis_client)
        _wait, admit = await elsewhere._reserve("y", 0)
    assert admit - now > 6_000_000  # the other process books after the 7 s pause
    assert api._shared.gate.remaining() > 6  # and this one's own pause stands too


async def test_a_pause_redis_refuses_is_logged_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    limiter = RedisLimiter("redis://127.0.0.1:1/0", namespace="n", timeout=1)
    with caplog.at_level(logging.WARNING, logger="cronofy_async"):
        await limiter.pause(2.0)
    assert "could not share a 429 pause of 2.00 s" in caplog.text


async def test_a_limiter_without_pause_keeps_the_in_process_pause(clock: FakeClock) -> None:
    class OnlyAcquire:
        calls = 0

        async def acquire(self) -> None:
            self.calls += 1

    fake = FakeCronofy([SECRET], members=None, rate_limit=None, faults=Faults(retry_after=3))
    fake.inject(Fault.RATE_LIMITED)
    limiter = OnlyAcquire()
    async with fake.api(rate_limit=limiter) as api:
        use_clock(api, clock)
        await api.create_scheduler_request(seed_request())
    assert limiter.calls == 2
    assert clock.sleeps == [3.0]


# -- Redis unreachable, slow, killed ----------------------------------------------------------


async def test_redis_refusing_connections_is_a_typed_error_and_nothing_is_sent() -> None:
    fake = FakeCronofy([SECRET], rate_limit=None)
    limiter = RedisLimiter("redis://:pw-not-shown@127.0.0.1:1/0", namespace="ns-x")
    async with fake.api(rate_limit=limiter) as api:
        with pytest.raises(LimiterUnavailableError) as caught:
            await api.create_scheduler_request(seed_request())
    assert fake.received == 0
    message = str(caught.value)
    assert "redis://***@127.0.0.1:1/0" in message
    assert "'ns-x'" in message
    assert "nothing was sent" in message
    assert "pw-not-shown" not in message
    assert isinstance(caught.value.__cause__, redis.exceptions.ConnectionError)


async def test_a_silent_redis_is_a_typed_error_within_the_timeout() -> None:
    # A server that accepts and never answers: the case a socket error would never report.
    accepted: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    limiter = RedisLimiter(f"redis://127.0.0.1:{port}/0", namespace="n", timeout=0.3)
    try:
        started = time.monotonic()
        with pytest.raises(LimiterUnavailableError, match=r"no answer within 0\.3 s"):
            await limiter.acquire()
        assert time.monotonic() - started < 30  # bounded, never a hang
    finally:
        await limiter.aclose()
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_redis_killed_mid_run_then_back(redis_namespace: str) -> None:
    with running_redis() as server:
        limiter = RedisLimiter(
            server.url, RateLimit(per_second=None, per_minute=None), namespace=redis_namespace
        )
        async with limiter:
            await limiter.acquire()
            server.kill()
            with pytest.raises(LimiterUnavailableError):
                await limiter.acquire()
            await asyncio.to_thread(_restart, server)
            await limiter.acquire()  # reconnects by itself


def _restart(server: RedisServer) -> None:
    server.start()


# -- ownership, loops, secrets -----------------------------------------------------------


async def test_a_client_decoding_responses_works_too(redis_url: str, redis_namespace: str) -> None:
    client = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    limiter = RedisLimiter(
        client, RateLimit(per_second=1, per_minute=None), namespace=redis_namespace
    )
    limiter._clock = clock = HeldClock()
    await limiter.acquire()
    waiter = asyncio.create_task(limiter.acquire())
    await clock.sleeping.wait()
    assert clock.sleeps[0] > 0.5
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert await client.zcard(limiter.keys.log) == 1
    await client.aclose()


async def test_odd_namespaces_keep_apart_on_a_real_server(
    redis_url: str, redis_client: redis.asyncio.Redis
) -> None:
    odd = f"{uuid.uuid4().hex} a:b{{c}}\n%"
    limit = RateLimit(per_second=1, per_minute=None)
    async with (
        RedisLimiter(redis_url, limit, namespace=odd) as one,
        RedisLimiter(redis_url, limit, namespace=odd.replace(":", "%3A")) as other,
    ):
        first = await one._reserve("a", 0)
        second = await one._reserve("b", 0)
        elsewhere = await other._reserve("c", 0)
    assert first[0] == 0 < second[0]
    assert elsewhere[0] == 0  # a namespace that percent-encodes alike is still another
    assert await redis_client.zcard(keys_for(odd).log) == 2


def test_an_absurd_pause_is_capped() -> None:
    assert pause_args(float("inf")) == [int(MAX_PAUSE * 1e6)]
    assert pause_args(float("nan")) == [0]


async def test_a_callers_client_is_never_closed(
    redis_client: redis.asyncio.Redis, redis_namespace: str
) -> None:
    async with RedisLimiter(redis_client, namespace=redis_namespace) as limiter:
        await limiter.acquire()
    assert "caller" in repr(limiter)
    assert await redis_client.ping()


async def test_a_url_limiter_closes_its_connection_and_may_reconnect(
    redis_url: str, redis_namespace: str
) -> None:
    limit = RateLimit(per_second=None, per_minute=None)
    limiter = RedisLimiter(redis_url, limit, namespace=redis_namespace)
    await limiter.acquire()
    client = limiter._connection().client
    await limiter.aclose()
    assert not limiter._by_loop
    pool = client.connection_pool
    assert not any(c.is_connected for c in pool._available_connections)
    await limiter.acquire()
    await limiter.aclose()
    await limiter.aclose()  # twice is harmless


def test_one_limiter_serves_two_event_loops(redis_url: str, redis_namespace: str) -> None:
    # asyncio.run twice, and a second loop in another thread: each loop gets its own
    # connection (a redis.asyncio connection belongs to one loop).
    limiter = RedisLimiter(
        redis_url, RateLimit(per_second=None, per_minute=None), namespace=redis_namespace
    )

    async def use() -> None:
        async with limiter:
            await limiter.acquire()

    asyncio.run(use())
    asyncio.run(use())
    errors: list[BaseException] = []

    def in_thread() -> None:
        try:
            asyncio.run(use())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join()
    assert errors == []


async def test_time_comes_from_redis_not_this_machine(
    redis_url: str, redis_namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One "machine" an hour ahead, booking against one on time: pyrate-limiter's Redis bucket
    # stamps with the client's clock and would let the first run an hour of the budget early.
    limit = RateLimit(per_second=10, per_minute=None, burst=True)
    async with (
        RedisLimiter(redis_url, limit, namespace=redis_namespace) as on_time,
        RedisLimiter(redis_url, limit, namespace=redis_namespace) as ahead,
    ):
        admits = [(await on_time._reserve(f"a{i}", 0))[1] for i in range(10)]
        monkeypatch.setattr(time, "time", lambda: 1e10)
        monkeypatch.setattr(time, "time_ns", lambda: 10**19)
        admits += [(await ahead._reserve(f"b{i}", 0))[1] for i in range(10)]
    assert contract_breaks(admits, limit) == []


async def test_the_secret_is_in_no_key_value_or_log(
    redis_url: str, redis_namespace: str, redis_client: redis.asyncio.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    fake = FakeCronofy([SECRET], rate_limit=None, faults=Faults(retry_after=0))
    fake.inject(Fault.RATE_LIMITED)
    limit = RateLimit(per_second=None, per_minute=None)
    limiter = RedisLimiter(redis_url, limit, namespace=redis_namespace)
    with caplog.at_level(logging.DEBUG):
        async with limiter, fake.api(rate_limit=limiter) as api:
            await asyncio.gather(*(api.create_scheduler_request(seed_request()) for _ in range(3)))
    found = [key async for key in redis_client.scan_iter(match=f"*{redis_namespace}*")]
    assert keys_for(redis_namespace).log.encode() in found
    for key in found:
        assert SECRET.encode() not in key
        kind = await redis_client.type(key)
        value: Any
        if kind == b"zset":
            members: Any = await redis_client.zrange(key, 0, -1)
            value = b" ".join(members)
        else:
            value = await redis_client.get(key) or b""  # a pause of 0 s lives 1 s
        assert SECRET.encode() not in value
    assert SECRET not in caplog.text
    assert SECRET not in repr(limiter)


async def test_keys_expire_on_their_own(
    limiter: RedisLimiter, redis_client: redis.asyncio.Redis
) -> None:
    await limiter.acquire()
    await limiter.pause(0.0)
    for key in (limiter.keys.log, limiter.keys.pause):
        ttl = await redis_client.pttl(key)
        assert 0 < ttl <= (RETENTION_FLOOR + 2) * 1000


# -- many callers at once in one process ------------------------------------------------------


async def test_more_callers_than_connections_all_get_through(
    redis_url: str, redis_namespace: str
) -> None:
    # redis-py's pool holds 100 connections and raises past them: the callers beyond must
    # wait for a connection, never fail while Redis is healthy.
    limit = RateLimit(per_second=None, per_minute=None)
    async with RedisLimiter(redis_url, limit, namespace=redis_namespace) as limiter:
        results = await asyncio.gather(
            *(limiter.acquire() for _ in range(300)), return_exceptions=True
        )
    assert [r for r in results if r is not None] == []


async def test_more_callers_than_a_callers_pool_holds_all_get_through(
    redis_client: redis.asyncio.Redis, redis_namespace: str
) -> None:
    assert redis_client.connection_pool.max_connections == 100  # redis-py's default pool
    limit = RateLimit(per_second=None, per_minute=None)
    limiter = RedisLimiter(redis_client, limit, namespace=redis_namespace)
    results = await asyncio.gather(*(limiter.acquire() for _ in range(300)), return_exceptions=True)
    assert [r for r in results if r is not None] == []
