"""One API object used from one event loop after another: two asyncio.run, per-test loops."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import threading
import time
import warnings
from collections.abc import Iterator
from typing import Any, Literal

import httpx
import pytest

from cronofy_async import (
    AsyncSchedulerAPI,
    ConfigurationError,
    Event,
    Host,
    NewSchedulerRequest,
    Outcome,
    Recipient,
)
from cronofy_async.testing import FakeCronofy

from .conftest import SEED_RESPONSE

Backend = Literal["httpx", "aiohttp"]


@pytest.fixture(params=["httpx", "aiohttp"])
def backend(request: pytest.FixtureRequest) -> Backend:
    name: Backend = request.param
    return name


def invite(i: int) -> NewSchedulerRequest:
    return NewSchedulerRequest(
        host=Host(sub="acc_1"),
        recipients=[Recipient(email=f"person{i}@example.com")],
        event=Event(summary="Intro call"),
    )


@contextlib.contextmanager
def served_in_a_thread(fake: FakeCronofy) -> Iterator[str]:
    """Serve `fake` from a thread of its own, so it outlives the loops under test."""
    import uvicorn

    from cronofy_async.testing._server import _base_url, _config, listening_socket

    sock = listening_socket("127.0.0.1", 0)
    server = uvicorn.Server(_config(fake))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(2000):
            if server.started:
                break
            time.sleep(0.005)
        yield _base_url(sock)
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture
def fake() -> FakeCronofy:
    return FakeCronofy(members=["acc_1"], rate_limit=None)


@pytest.fixture
def url(fake: FakeCronofy) -> Iterator[str]:
    with served_in_a_thread(fake) as base_url:
        yield base_url


def no_resource_warnings() -> list[str]:
    """Collect garbage now and report every ResourceWarning it raised (unclosed sockets)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    return [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]


def test_one_api_object_across_two_asyncio_runs(
    backend: Backend, fake: FakeCronofy, url: str
) -> None:
    api = AsyncSchedulerAPI(fake.secret, base_url=url, http_backend=backend, rate_limit=None)

    async def create(i: int) -> str:
        created = await api.create_scheduler_request(invite(i))
        return created.scheduler_request_id

    first = asyncio.run(create(0))
    second = asyncio.run(create(1))  # a new loop: what was bound to the first is rebuilt
    third = asyncio.run(create(2))
    assert [first, second, third] == [e.scheduler_request_id for e in fake.created]
    assert fake.received == 3
    asyncio.run(api.aclose())
    assert no_resource_warnings() == []


def test_a_batch_across_loops(backend: Backend, fake: FakeCronofy, url: str) -> None:
    api = AsyncSchedulerAPI(fake.secret, base_url=url, http_backend=backend, rate_limit=None)

    async def batch(start: int) -> Any:
        items = [invite(i) for i in range(start, start + 10)]
        return await api.batch_create_scheduler_requests(items, concurrency=5)

    reports = [asyncio.run(batch(0)), asyncio.run(batch(10))]
    for report in reports:
        assert report.counts[Outcome.CREATED] == 10
    assert fake.created_count == 20
    assert fake.duplicates() == {}
    asyncio.run(api.aclose())


def test_the_pool_closes_with_the_loop_that_used_it(
    backend: Backend, fake: FakeCronofy, url: str
) -> None:
    # A script's asyncio.run(main()) that never closes the API object: its connections are
    # closed as the loop shuts down, not left to the garbage collector (ResourceWarning).
    api = AsyncSchedulerAPI(fake.secret, base_url=url, http_backend=backend, rate_limit=None)
    asyncio.run(api.create_scheduler_request(invite(0)))
    assert api.http_client.is_closed
    assert not api.closed  # the API object itself is still usable
    assert no_resource_warnings() == []
    asyncio.run(api.create_scheduler_request(invite(1)))
    assert fake.created_count == 2


def test_a_callers_pooled_client_in_a_second_loop_is_refused_before_sending(
    fake: FakeCronofy, url: str
) -> None:
    first = asyncio.new_event_loop()
    client = httpx.AsyncClient()
    api = AsyncSchedulerAPI(fake.secret, base_url=url, http_client=client, rate_limit=None)
    first.run_until_complete(api.create_scheduler_request(invite(0)))

    async def again() -> None:
        await api.create_scheduler_request(invite(1))

    with pytest.raises(ConfigurationError, match="another event loop") as info:
        asyncio.run(again())
    assert "nothing was sent" in str(info.value)
    assert fake.received == 1
    first.run_until_complete(client.aclose())  # the caller's to close, in its own loop
    first.close()


def test_a_callers_loop_free_client_works_across_loops() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text=SEED_RESPONSE)

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    api = AsyncSchedulerAPI("sk_test", http_client=client, rate_limit=None)
    for _ in range(2):
        asyncio.run(api.create_scheduler_request(invite(0)))


def test_the_in_process_fake_across_loops(fake: FakeCronofy) -> None:
    api = fake.api(rate_limit=None)
    asyncio.run(api.create_scheduler_request(invite(0)))
    asyncio.run(api.create_scheduler_request(invite(1)))
    assert fake.created_count == 2
    asyncio.run(api.aclose())
