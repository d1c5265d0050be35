"""The default backend's connection pool: no double hand-outs, dead idle connections replaced."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpcore
import pytest

from cronofy_async import AsyncSchedulerAPI, Outcome
from cronofy_async._pool import LeanConnectionPool
from cronofy_async.testing import FakeCronofy

from .conftest import SECRET, seed_request

ANSWER = json.dumps(
    {"scheduler_request": {"scheduler_request_id": "srq_1", "recipients": []}}
).encode()


@pytest.fixture
def retries_inside_httpcore(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts httpcore's internal re-queues: a connection handed out that was not free."""
    count = [0]
    original = httpcore.AsyncConnectionPool.handle_async_request.__globals__["AsyncPoolRequest"]
    clear = original.clear_connection

    def counting(self: object) -> None:
        count[0] += 1
        clear(self)

    monkeypatch.setattr(original, "clear_connection", counting)
    return count


async def test_the_library_pool_is_the_lean_one() -> None:
    async with AsyncSchedulerAPI(client_secret=SECRET) as api:
        transport = api._shared.direct
        assert isinstance(getattr(transport, "_pool", None), LeanConnectionPool)


async def test_a_burst_never_hands_one_connection_to_two_requests(
    retries_inside_httpcore: list[int],
) -> None:
    # Stock httpcore hands the same idle connection to every request queued in one pass; all
    # but one then fail inside httpcore and are queued again (measured: ~2 per request).
    fake = FakeCronofy([SECRET], members=["acc_61815034636bd5c5ce4edd"], rate_limit=None)
    async with fake.serve() as url:
        api = AsyncSchedulerAPI(SECRET, base_url=url, rate_limit=None, max_in_flight=8)
        async with api:
            for _ in range(3):  # bursts, each after the previous one's connections went idle
                report = await api.batch_create_scheduler_requests(
                    [seed_request()] * 40, concurrency=40
                )
                assert report.counts[Outcome.CREATED] == 40
    assert retries_inside_httpcore[0] == 0
    assert len(fake.created) == 120


@pytest.fixture
async def closing_server() -> AsyncIterator[tuple[str, list[int]]]:
    """A server that answers one request per connection, then closes it without saying so."""
    connections = [0]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections[0] += 1
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
        await reader.readexactly(length)
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(ANSWER)}\r\n\r\n".encode()
            + ANSWER
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"http://127.0.0.1:{port}", connections


async def test_an_idle_connection_the_server_closed_is_replaced(
    closing_server: tuple[str, list[int]],
) -> None:
    url, connections = closing_server
    async with AsyncSchedulerAPI(SECRET, base_url=url, rate_limit=None, retry=None) as api:
        for _ in range(3):
            created = await api.create_scheduler_request(seed_request())
            assert created.scheduler_request_id == "srq_1"
            await asyncio.sleep(0)  # let the close reach our socket
            await asyncio.sleep(0.01)
    assert connections[0] == 3
