"""Test helpers: virtual time for retries, pauses and pacing; what an error lets be seen."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path

import attrs

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


Answer = Callable[[bytes], Awaitable[bytes | None]]
"""What a raw server answers a request (its head and body, as bytes): bytes, or None to close."""


def http_response(
    status: int,
    body: bytes = b"",
    *,
    reason: str = "OK",
    headers: Iterable[tuple[str, str]] = (),
    length: int | None = None,
) -> bytes:
    """An HTTP/1.1 response, byte for byte; `length` overrides the Content-Length sent."""
    head = [f"HTTP/1.1 {status} {reason}", "Connection: close"]
    head += [f"{name}: {value}" for name, value in headers]
    head.append(f"Content-Length: {len(body) if length is None else length}")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return head + await reader.readexactly(length)


@contextlib.asynccontextmanager
async def raw_server(answer: Answer) -> AsyncIterator[str]:
    """
    A bare HTTP/1.1 server on 127.0.0.1 for what no well-behaved server does.

    Each request gets the bytes `answer` returns for it, then the connection is closed; ``None``
    closes it without a byte. Yields the base URL.
    """
    handlers: set[asyncio.Task[None]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        try:
            request = await _read_request(reader)
            response = await answer(request)
            if response is not None:
                writer.write(response)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            handlers.discard(task)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        for task in list(handlers):
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()


def bearer_of(request: bytes) -> str:
    """The token of a raw request's Authorization header."""
    for line in request.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"authorization":
            return value.strip().decode("latin-1").removeprefix("Bearer ")
    return ""


async def until(condition: Callable[[], bool], *, what: str = "the condition") -> None:
    """Let the loop (and real sockets) run until `condition` holds; fail rather than hang."""
    for _ in range(5000):
        if condition():
            return
        await asyncio.sleep(0.002)
    raise AssertionError(f"{what} never came true")


class HeldServer:
    """
    A raw server's answer that counts arrivals and holds each answer until released.

    ``answers`` gives each arrival's response in turn (the last one repeats).
    """

    def __init__(self, *answers: bytes, clock: FakeClock | None = None) -> None:
        self.answers = list(answers)
        self.arrived = 0
        self.released = asyncio.Event()
        self.clock = clock
        self.times: list[float] = []
        self.requests: list[bytes] = []

    async def __call__(self, request: bytes) -> bytes:
        self.arrived += 1
        self.requests.append(request)
        if self.clock is not None:
            self.times.append(self.clock.now)
        answer = self.answers[min(len(self.requests), len(self.answers)) - 1]
        await self.released.wait()
        return answer

    def release(self) -> None:
        self.released.set()


def reachable_text(error: BaseException) -> str:
    """
    Every string a traceback printer, a debugger or an error tracker could show from `error`.

    Its message and arguments, the errors chained to it (``__context__``, ``__cause__``) and
    the locals of every frame in their tracebacks, walked into containers and attrs classes:
    what a hostile server sent must not be anywhere in it.
    """
    found: list[str] = []
    visited: set[int] = set()

    def walk(value: object, depth: int) -> None:
        if depth > 8 or id(value) in visited:
            return
        visited.add(id(value))
        if isinstance(value, str):
            found.append(value)
            return
        if isinstance(value, bytes | bytearray):
            found.append(bytes(value).decode("latin-1"))
            return
        try:
            found.append(repr(value))
        except Exception as exc:  # a repr that fails shows nothing
            found.append(f"<repr failed: {type(exc).__name__}>")
        if isinstance(value, BaseException):
            for linked in (value.args, value.__context__, value.__cause__):
                walk(linked, depth + 1)
            tb = value.__traceback__
            while tb is not None:
                walk(dict(tb.tb_frame.f_locals), depth + 1)
                tb = tb.tb_next
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(key, depth + 1)
                walk(item, depth + 1)
        elif isinstance(value, list | tuple | set | frozenset):
            for item in value:
                walk(item, depth + 1)
        elif attrs.has(kind := type(value)):
            for field in attrs.fields(kind):
                walk(getattr(value, field.name, None), depth + 1)

    walk(error, 0)
    return "\n".join(found)


ROOT = Path(__file__).resolve().parent.parent


def run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    """
    `code` (dedented) in a fresh interpreter at the project's root, its output captured.

    For what must start afresh: global OpenTelemetry providers, logging set-up, the
    interpreter's exit. The caller's ``CRONOFY_*`` variables are left out; `env` adds to it.
    """
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CRONOFY")}
    return subprocess.run(  # noqa: S603 - our own interpreter, our own code
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
        env={**environ, **env},
    )
