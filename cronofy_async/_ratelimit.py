"""
Client-side pacing under Cronofy's rate limits, and the pause a 429 puts on everyone.

Cronofy allows an application 50 requests per second *and* 500 per minute, counted by arrival.
"Never more than N in any window" is the contract, which a leaky bucket does not keep (it admits
a burst of N and then N per window on top). This is a sliding-window log: the admission time of
the last N requests of each window is kept, and a request is admitted at the first instant at
which every window has room. Waiters are served first come first served: the one at the head of
the line books its admission time and sleeps until it, with no herd woken on every free slot.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, Final, Protocol, runtime_checkable

import attrs

from ._clock import Clock, SystemClock
from ._errors import ConfigurationError, RateLimitError

__all__ = ["Limiter", "PauseGate", "PausingLimiter", "RateLimit", "SlidingWindowLimiter"]

DEFAULT_MARGIN: Final = 0.05


@runtime_checkable
class Limiter(Protocol):
    """
    Anything that can pace requests: awaited once before every attempt is sent.

    The built-in `SlidingWindowLimiter` paces one process; implement this to share a budget
    across processes (as `cronofy_async.redis.RedisLimiter` does) and pass it as
    ``rate_limit=``.

    One more method is optional: ``async def pause(self, seconds: float) -> None``. A limiter
    that has it is told of every 429 (with the wait the server asked for), so that it can hold
    every process sharing its budget, and its `acquire` then waits the pause out. The
    in-process pause of the API object applies either way.
    """

    async def acquire(self) -> None:
        """Return when one more request may be sent."""


@runtime_checkable
class PausingLimiter(Limiter, Protocol):
    """A `Limiter` with the optional `pause`: the API tells it of each 429."""

    async def pause(self, seconds: float) -> None:
        """Hold every request sharing this limiter for `seconds` from now."""


def _positive_or_none(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigurationError(
            f"RateLimit.{attribute.name} must be a positive whole number or None, got {value!r}"
        )


def _non_negative(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
        raise ConfigurationError(
            f"RateLimit.{attribute.name} must be a number of seconds >= 0, got {value!r}"
        )


@attrs.frozen(kw_only=True)
class RateLimit:
    """
    How fast an `AsyncSchedulerAPI` may send: Cronofy's per-application limits by default.

    Both limits hold at once. Each window is widened by `margin` seconds, because Cronofy counts
    *arrivals* and network jitter bunches them: with the default 0.05 s, at most 50 requests
    leave in any 1.05 s (0.952 of 50/s) and 500 in any 60.05 s (0.999 of 500/min), so arrivals
    jittered by up to 50 ms still fit a server counting exactly. Set a limit to ``None`` to drop
    that window.

    >>> RateLimit(per_second=10, per_minute=None)
    RateLimit(per_second=10, per_minute=None, margin=0.05, burst=False)
    """

    per_second: int | None = attrs.field(default=50, validator=_positive_or_none)
    """Requests allowed in any one second."""
    per_minute: int | None = attrs.field(default=500, validator=_positive_or_none)
    """Requests allowed in any one minute."""
    margin: float = attrs.field(default=DEFAULT_MARGIN, validator=_non_negative)
    """Seconds added to each window as headroom for jitter between send and arrival."""
    burst: bool = False
    """
    Let a window's whole allowance go at once. Off by default: requests are spaced by the
    shortest window's interval (1.05 s / 50), because a burst sent at one instant reaches the
    server spread out (new connections are set up one after another), and that spread, past the
    margin, is what makes a server counting arrivals answer 429. The long-run rate is the same.
    """

    def windows(self) -> list[tuple[int, float]]:
        """``(count, seconds)`` for each limit in force, margin included."""
        pairs = ((self.per_second, 1.0), (self.per_minute, 60.0))
        return [(count, seconds + self.margin) for count, seconds in pairs if count is not None]


class SlidingWindowLimiter:
    """
    Admits requests so that no window of a `RateLimit` ever holds more than its count.

    Waiters line up first come first served; only the one at the head books an admission time
    and sleeps until it, then hands the turn on: one sleep per wait, no herd woken on every free
    slot. A caller cancelled while it waits (a web request's timeout, a client gone) gives its
    turn and its booking back, so callers who gave up never delay the ones who did not.

    Loop-agnostic: it holds timestamps, and futures only of the loop a waiter runs in, so one
    can be created outside a running loop and used from several in turn.
    """

    def __init__(self, limit: RateLimit, *, clock: Clock | None = None) -> None:
        self.limit = limit
        self._clock = clock or SystemClock()
        # The last `count` admissions of a window decide the next one; one more is kept so that
        # a booking given back leaves the window exactly as it was.
        self._windows = [
            (seconds, count, deque[float](maxlen=count + 1)) for count, seconds in limit.windows()
        ]
        self._last = float("-inf")
        # No two requests leave closer than the tightest window's interval (1.05 s / 50); the
        # longer windows (500 a minute) are still kept exactly by their logs.
        self._spacing = (
            0.0
            if limit.burst
            else min((seconds / count for count, seconds in limit.windows()), default=0.0)
        )
        self._line: deque[asyncio.Future[None]] = deque()
        self._head: asyncio.AbstractEventLoop | None = None
        """The loop of the waiter at the head of the line, if one is there."""

    def reserve(self, now: float) -> float:
        """Book the earliest admission time at or after `now` that fits every window."""
        admit = max(now, self._last + self._spacing)
        for seconds, count, log in self._windows:
            if len(log) >= count:
                admit = max(admit, log[-count] + seconds)
        for _seconds, _count, log in self._windows:
            log.append(admit)
        self._last = admit
        return admit

    def _give_back(self, last: float) -> None:
        """Undo the latest booking (the head's, the only one not yet admitted)."""
        for _seconds, _count, log in self._windows:
            log.pop()
        self._last = last

    async def acquire(self) -> None:
        """Wait for this request's turn."""
        loop = asyncio.get_running_loop()
        if self._head is not None and self._head is not loop and self._head.is_closed():
            # A loop closed with a waiter still in line (never cancelled): it never will be.
            self._line.clear()
            self._head = None
        if self._head is not None:
            waiter = loop.create_future()
            self._line.append(waiter)
            try:
                await waiter  # the head handed its turn over to us
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self._hand_over()  # handed over just as we were cancelled: pass it on
                elif waiter in self._line:
                    self._line.remove(waiter)
                raise
        self._head = loop
        try:
            now = self._clock.monotonic()
            last = self._last
            admit = self.reserve(now)
            if admit > now:
                try:
                    await self._clock.sleep(admit - now)
                except BaseException:
                    self._give_back(last)  # never sent: the slot is the next caller's
                    raise
        finally:
            self._hand_over()

    def _hand_over(self) -> None:
        while self._line:
            waiter = self._line.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the turn passes straight to the next in line
                self._head = waiter.get_loop()
                return
        self._head = None

    def __repr__(self) -> str:
        return f"SlidingWindowLimiter({self.limit!r})"


class PauseGate:
    """
    The shared pause after a 429: one request learns the limit, every request waits it out.

    Holds a deadline, not an asyncio primitive, for the same reasons as the limiter.
    """

    def __init__(self, clock: Clock | None = None) -> None:
        self._clock = clock or SystemClock()
        self._until = float("-inf")
        self.cause: RateLimitError | None = None
        """The 429 behind the current (or last) pause."""

    def pause(self, seconds: float, *, cause: RateLimitError) -> None:
        """Hold every request for `seconds` from now (never shortening a longer pause)."""
        until = self._clock.monotonic() + seconds
        if until > self._until:
            self._until = until
            self.cause = cause

    def remaining(self) -> float:
        """Seconds left in the current pause (0 if none)."""
        if self.cause is None:  # never paused: asked before every send, so answered cheaply
            return 0.0
        return max(0.0, self._until - self._clock.monotonic())

    async def wait(self) -> None:
        """Return once no pause is in force; a pause extended meanwhile is waited out too."""
        while (left := self.remaining()) > 0:
            await self._clock.sleep(left)
