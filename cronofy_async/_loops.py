"""
Closing what belongs to an event loop as that loop shuts down.

httpx's connection pool and aiohttp's session are bound to the loop that first used them. A
library object can outlive that loop (two ``asyncio.run`` calls, a test framework's per-test
loops): its pool must then be rebuilt, and the old one closed while its loop still runs, or its
sockets are left for the garbage collector.

``asyncio.run``, ``asyncio.Runner`` and pytest-asyncio all end a loop with
``loop.shutdown_asyncgens()``, which closes every asynchronous generator still suspended in it.
`LoopEnd` holds one such generator whose cleanup is the close: the one hook asyncio offers for
"this loop is ending", through documented behaviour only.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable

__all__ = ["LoopEnd"]


class LoopEnd:
    """
    Run `close` inside the running loop when that loop shuts down.

    Made inside a running loop. `dismiss` forgets it without running `close` (the resource was
    closed or replaced another way).
    """

    def __init__(self, close: Callable[[], Awaitable[None]]) -> None:
        self._close = close
        self._armed = True
        self._watch = self._watching()
        # One step, in this loop: its first-iteration hook now tracks the generator, and will
        # close it at shutdown.
        _step(self._watch.__anext__())

    async def _watching(self) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            if self._armed:
                self._armed = False
                with contextlib.suppress(Exception):  # a failed close must not fail shutdown
                    await self._close()

    def dismiss(self) -> None:
        """Forget it: `close` will not run."""
        self._armed = False
        # Finish the generator now (nothing to await once disarmed), so that no loop, dead or
        # alive, is ever asked to finalize it. (Already closing at shutdown: nothing to do.)
        with contextlib.suppress(RuntimeError):
            _step(self._watch.aclose())


def _step(awaitable: Awaitable[None]) -> None:
    step = awaitable.__await__()
    with contextlib.suppress(StopIteration, StopAsyncIteration):
        step.send(None)
