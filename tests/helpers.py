"""Test helpers: virtual time for retries, pauses and pacing."""

from __future__ import annotations

import asyncio

from cronofy_async import AsyncSchedulerAPI
from cronofy_async._ratelimit import PauseGate, SlidingWindowLimiter


class FakeClock:
    """
    Virtual time: `sleep` records the wait and moves time forward instead of waiting.

    Concurrent sleepers each wake no earlier than their own target, and time never goes back,
    which is what the code under test relies on.
    """

    def __init__(self, start: float = 1000.0, wall_start: float = 1_700_000_000.0) -> None:
        self.now = start
        self._start = start
        self._wall_start = wall_start
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return self._wall_start + (self.now - self._start)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        target = self.now + seconds
        await asyncio.sleep(0)
        self.now = max(self.now, target)


def use_clock(api: AsyncSchedulerAPI, clock: FakeClock) -> FakeClock:
    """Make `api` (and every view of it) run its retries, pauses and pacing on `clock`."""
    shared = api._shared
    shared.clock = clock
    shared.gate = PauseGate(clock)
    if isinstance(shared.limiter, SlidingWindowLimiter):
        shared.limiter = SlidingWindowLimiter(shared.limiter.limit, clock=clock)
    return clock
