"""Time as the library sees it: one seam, so tests run retries and pacing in virtual time."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

__all__ = ["Clock", "SystemClock"]


class Clock(Protocol):
    """Where retries, pauses and pacing read the time and wait."""

    def monotonic(self) -> float:
        """Seconds on a clock that never jumps, for waits and windows."""
        ...

    def wall(self) -> float:
        """Unix time, for ``Retry-After`` HTTP dates."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds`."""
        ...


class SystemClock:
    """The real clock."""

    def monotonic(self) -> float:
        """`time.monotonic`."""
        return time.monotonic()

    def wall(self) -> float:
        """`time.time`."""
        return time.time()

    async def sleep(self, seconds: float) -> None:
        """`asyncio.sleep`."""
        await asyncio.sleep(seconds)
