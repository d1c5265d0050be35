"""A cap on requests in flight at once, shared by an API object and its views."""

from __future__ import annotations

import asyncio
import collections
from typing import Self

__all__ = ["InFlightLimit"]

_running_loop = asyncio.get_running_loop


class InFlightLimit:
    """
    At most `limit` holders at once; the others wait, first come first served.

    Unlike ``asyncio.Semaphore`` it binds to no event loop: waiters' futures come from the loop
    that is running when they wait, so an API object created outside a loop, or used from
    pytest-asyncio's per-test loops one after another, works.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._held = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def held(self) -> int:
        """How many holders there are now."""
        return self._held

    def hold(self) -> Self:
        """Hold one place for the duration of an ``async with`` block."""
        return self

    def try_take(self) -> bool:
        """Take a place if one is free and nobody waits for it; `give` it back after."""
        # The first take in a loop goes the long way, which notices holders of a dead loop.
        if self._held < self.limit and not self._waiters and self._loop is _running_loop():
            self._held += 1
            return True
        return False

    async def take(self) -> None:
        """Take a place, waiting for one; `give` it back after."""
        await self.__aenter__()

    def give(self) -> None:
        """Give back a place taken with `take` or `try_take`."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the place passes straight to the next waiter
                return
        self._held -= 1

    async def __aenter__(self) -> None:
        # A class, not an asynccontextmanager: this runs on every request, and the generator
        # machinery cost more than the bookkeeping itself.
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            if self._loop is not None and self._loop.is_closed():
                # Holders and waiters of a loop closed under them will never leave: their
                # places are free again, or the next loop would wait for them forever.
                self._held = 0
                self._waiters.clear()
            self._loop = loop
        if self._held >= self.limit or self._waiters:
            waiter = loop.create_future()
            self._waiters.append(waiter)
            try:
                await waiter  # the releaser handed its place over to us
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self.give()  # handed over just as we were cancelled: pass it on
                elif waiter in self._waiters:  # a releaser may have passed over it already
                    self._waiters.remove(waiter)
                raise
        else:
            self._held += 1

    async def __aexit__(self, *exc_info: object) -> None:
        self.give()
