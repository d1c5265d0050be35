"""Pacing keeps "never more than N in any window" and still reaches the configured rate."""

from __future__ import annotations

import asyncio
import bisect
import itertools
import random
from typing import Any

import httpx
import pytest
import respx

from cronofy_async import (
    AsyncSchedulerAPI,
    ConfigurationError,
    Event,
    Host,
    Limiter,
    NewSchedulerRequest,
    RateLimit,
    Recipient,
    RetryPolicy,
)
from cronofy_async._ratelimit import PauseGate, SlidingWindowLimiter

from .conftest import CREATE_URL, SECRET, ok_response, seed_request
from .helpers import FakeClock, use_clock


def most_in_any_window(times: list[float], seconds: float) -> int:
    """The largest number of `times` inside any half-open window [t, t + seconds)."""
    ordered = sorted(times)
    return max(bisect.bisect_left(ordered, t + seconds) - i for i, t in enumerate(ordered))


@pytest.mark.parametrize("burst", [False, True])
def test_a_burst_never_breaks_either_limit_and_runs_at_the_minute_rate(burst: bool) -> None:
    limiter = SlidingWindowLimiter(RateLimit(burst=burst))
    times = [limiter.reserve(0.0) for _ in range(5000)]
    assert most_in_any_window(times, 1.0) == (50 if burst else 48)
    assert most_in_any_window(times, 60.0) == 500
    # Long-run rate: 5000 requests, the binding limit 500/min.
    rate_per_minute = (len(times) - 500) / (times[-1] - times[0]) * 60
    assert rate_per_minute >= 0.95 * 500
    assert rate_per_minute <= 500


@pytest.mark.parametrize("burst", [False, True])
def test_the_per_second_limit_alone_runs_at_95_percent_of_it(burst: bool) -> None:
    limiter = SlidingWindowLimiter(RateLimit(per_second=50, per_minute=None, burst=burst))
    times = [limiter.reserve(0.0) for _ in range(10_000)]
    assert most_in_any_window(times, 1.0) == (50 if burst else 48)
    rate = (len(times) - (50 if burst else 1)) / (times[-1] - times[0])
    assert 0.95 * 50 <= rate <= 50


def test_the_margin_is_headroom_for_jitter() -> None:
    limiter = SlidingWindowLimiter(RateLimit(per_second=50, per_minute=None))
    times = [limiter.reserve(0.0) for _ in range(2000)]
    # Even a window 50 ms wider than Cronofy's holds no more than 50: arrivals jittered by up to
    # 50 ms cannot add up to 51 in one of Cronofy's seconds.
    assert most_in_any_window(times, 1.05) == 50
    assert most_in_any_window(times, 1.051) > 50  # and no more headroom than configured


def test_requests_arriving_at_random_never_break_a_window() -> None:
    rng = random.Random(3)
    limiter = SlidingWindowLimiter(RateLimit(per_second=10, per_minute=100))
    now, times = 0.0, []
    for _ in range(3000):
        now += rng.expovariate(20)  # offered load 20/s, twice the per-second limit
        times.append(limiter.reserve(now))
        assert times[-1] >= now
    assert times == sorted(times)  # first come, first served
    assert most_in_any_window(times, 1.0) <= 10
    assert most_in_any_window(times, 60.0) <= 100


def test_an_idle_limiter_admits_at_once() -> None:
    limiter = SlidingWindowLimiter(RateLimit(per_second=2, per_minute=None, burst=True))
    assert [limiter.reserve(t) for t in (0.0, 0.1, 0.2)] == [0.0, 0.1, 1.05]
    assert limiter.reserve(100.0) == 100.0


def test_smooth_pacing_spaces_requests_by_the_tightest_window() -> None:
    # 50 per 1.05 s and 500 per 60.05 s: no two requests closer than 21 ms, and the minute's
    # 500 still kept by its log (the 501st waits for the first to leave the minute).
    limiter = SlidingWindowLimiter(RateLimit())
    times = [limiter.reserve(0.0) for _ in range(501)]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) == pytest.approx(1.05 / 50)
    assert times[499] == pytest.approx(499 * 1.05 / 50)
    assert times[500] == pytest.approx(60.05)
    assert limiter.reserve(200.0) == 200.0  # idle again: at once


async def test_concurrent_waiters_are_admitted_in_turn_with_no_herd() -> None:
    clock = FakeClock(start=0.0)
    limiter = SlidingWindowLimiter(
        RateLimit(per_second=5, per_minute=None, burst=True), clock=clock
    )
    admitted: list[float] = []

    async def take() -> None:
        await limiter.acquire()
        admitted.append(clock.now)

    await asyncio.gather(*(take() for _ in range(12)))
    # 5 admitted at once, 5 more after 1.05 s, the last 2 after 2.1 s, first come first
    # served; the clock is slept on once per wait, never by a herd of waiters.
    assert admitted == [0.0] * 5 + [1.05] * 5 + [2.1] * 2
    assert clock.sleeps == [1.05, 1.05]


class StoppedClock:
    """Time that stands still: a sleeper waits until it is cancelled (an impatient caller)."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeping = 0

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeping += 1
        try:
            await asyncio.Event().wait()
        finally:
            self.sleeping -= 1


async def test_callers_who_give_up_waiting_give_their_turn_back() -> None:
    # 600 callers wait for pacing (a web request each); all give up (their client went away).
    # The next caller must wait what the pace asks after the one request really admitted,
    # not behind 599 requests that were never sent.
    clock = StoppedClock()
    limiter = SlidingWindowLimiter(RateLimit(), clock=clock)  # 50/s and 500/min
    callers = [asyncio.ensure_future(limiter.acquire()) for _ in range(600)]
    for _ in range(3):
        await asyncio.sleep(0)
    assert callers[0].done()  # the first went at once
    assert clock.sleeping == 1  # one waits for its turn on the clock, the rest in line
    callers[300].cancel()  # one in line gives up: it leaves the line, the head stays
    await asyncio.gather(callers[300], return_exceptions=True)
    assert len(limiter._line) == 597
    for caller in callers[1:]:
        caller.cancel()
    await asyncio.gather(*callers, return_exceptions=True)
    spacing = 1.05 / 50
    assert limiter.reserve(clock.now) == pytest.approx(clock.now + spacing)


class SteppedClock(FakeClock):
    """Virtual time whose sleeps end only when the test says so."""

    def __init__(self) -> None:
        super().__init__(start=0.0)
        self.tick = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await self.tick.wait()
        self.now += seconds


async def test_a_caller_in_line_cancelled_as_its_turn_comes_passes_it_on() -> None:
    clock = SteppedClock()
    limiter = SlidingWindowLimiter(RateLimit(per_second=1, per_minute=None), clock=clock)
    await limiter.acquire()  # the window is full for 1.05 s
    second: asyncio.Future[None] | None = None

    async def head() -> None:
        await limiter.acquire()  # hands its turn to the second as it leaves...
        assert second is not None
        second.cancel()  # ...which is cancelled before it runs: the third gets it

    first = asyncio.ensure_future(head())
    await asyncio.sleep(0)
    second = asyncio.ensure_future(limiter.acquire())
    third = asyncio.ensure_future(limiter.acquire())
    await asyncio.sleep(0)
    assert len(limiter._line) == 2  # both wait in line behind the head
    clock.tick.set()
    await first
    await third
    assert second.cancelled()
    assert clock.now == pytest.approx(2.1)
    assert limiter._head is None


def test_a_limiter_left_mid_wait_by_a_closed_loop_serves_the_next_loop() -> None:
    clock = StoppedClock()
    limiter = SlidingWindowLimiter(RateLimit(per_second=1, per_minute=None), clock=clock)
    loop = asyncio.new_event_loop()
    loop.run_until_complete(limiter.acquire())
    waiting = loop.create_task(limiter.acquire())
    loop.run_until_complete(asyncio.sleep(0))
    assert clock.sleeping == 1
    loop.close()  # closed with the waiter never cancelled (no asyncio.run to clean up)
    del waiting
    clock.now += 10
    asyncio.run(asyncio.wait_for(limiter.acquire(), 5))  # not stuck behind the dead one


def test_a_limiter_works_across_event_loops() -> None:
    # Built outside any running loop, used by two loops one after another (pytest-asyncio's
    # per-test loops, or asyncio.run in a script): it holds no loop-bound primitive.
    clock = FakeClock(start=0.0)
    limiter = SlidingWindowLimiter(RateLimit(per_second=1, per_minute=None), clock=clock)
    gate = PauseGate(clock)
    asyncio.run(limiter.acquire())
    asyncio.run(limiter.acquire())
    asyncio.run(gate.wait())
    assert clock.sleeps == [1.05]


def test_an_api_built_outside_a_loop_works_in_one() -> None:
    api = AsyncSchedulerAPI(client_secret=SECRET)
    clock = use_clock(api, FakeClock())

    async def run() -> None:
        with respx.mock:
            respx.post(CREATE_URL).mock(return_value=ok_response())
            await api.create_scheduler_request(seed_request())
        await api.aclose()

    asyncio.run(run())
    assert clock.sleeps == []


def many_requests(count: int) -> list[NewSchedulerRequest]:
    return [
        NewSchedulerRequest(
            host=Host(sub="acc_1"),
            recipients=[Recipient(email=f"r{i}@example.com")],
            event=Event(summary="x"),
        )
        for i in range(count)
    ]


async def test_the_api_paces_what_reaches_the_server(
    api: AsyncSchedulerAPI, mock: respx.MockRouter, clock: FakeClock
) -> None:
    arrivals: list[float] = []

    def respond(request: httpx.Request) -> httpx.Response:
        arrivals.append(clock.now)
        return ok_response()

    mock.post(CREATE_URL).mock(side_effect=respond)
    view = api.with_data_center("us")  # views draw on the same budget
    await asyncio.gather(
        *(
            (api if i % 2 else view).create_scheduler_request(request)
            for i, request in enumerate(many_requests(120))
        )
    )
    assert len(arrivals) == 120
    assert most_in_any_window(arrivals, 1.0) <= 50


async def test_pacing_off(mock: respx.MockRouter) -> None:
    clock = FakeClock()
    async with AsyncSchedulerAPI(client_secret=SECRET, rate_limit=None) as api:
        use_clock(api, clock)
        mock.post(CREATE_URL).mock(return_value=ok_response())
        await asyncio.gather(*(api.create_scheduler_request(r) for r in many_requests(200)))
    assert clock.sleeps == []


async def test_a_custom_limiter_is_asked_before_every_attempt(
    mock: respx.MockRouter, clock: FakeClock
) -> None:
    class Counting:
        def __init__(self) -> None:
            self.calls = 0

        async def acquire(self) -> None:
            self.calls += 1

    limiter = Counting()
    assert isinstance(limiter, Limiter)
    mock.post(CREATE_URL).mock(side_effect=[httpx.Response(429), ok_response()])
    async with AsyncSchedulerAPI(
        client_secret=SECRET, rate_limit=limiter, retry=RetryPolicy()
    ) as api:
        use_clock(api, clock)
        await api.create_scheduler_request(seed_request())
    assert limiter.calls == 2  # the retry is paced too


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"per_second": 0}, "per_second must be a positive whole number or None"),
        ({"per_minute": 2.5}, "per_minute must be a positive whole number or None"),
        ({"per_second": True}, "per_second must be"),
        ({"margin": -0.1}, "margin must be a number of seconds >= 0"),
    ],
)
def test_bad_rate_limit(options: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ConfigurationError, match=fragment):
        RateLimit(**options)


def test_rate_limit_must_be_a_rate_limit_or_a_limiter() -> None:
    with pytest.raises(ConfigurationError, match="rate_limit must be a RateLimit, a Limiter"):
        AsyncSchedulerAPI(client_secret=SECRET, rate_limit=50)  # type: ignore[arg-type]


def test_reprs() -> None:
    limiter = SlidingWindowLimiter(RateLimit())
    assert repr(limiter) == (
        "SlidingWindowLimiter(RateLimit(per_second=50, per_minute=500, margin=0.05, burst=False))"
    )
