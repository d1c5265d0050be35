"""The cap on requests in flight, and how a create reaches the wire."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import respx

from cronofy_async import AsyncSchedulerAPI, ConfigurationError
from cronofy_async._concurrency import InFlightLimit

from .conftest import CREATE_URL, SECRET, ok_response, seed_request


async def test_never_more_than_the_limit_and_first_come_first_served() -> None:
    limit = InFlightLimit(3)
    inside, most, order = 0, 0, []

    async def hold(i: int) -> None:
        nonlocal inside, most
        async with limit.hold():
            inside += 1
            most = max(most, inside)
            order.append(i)
            await asyncio.sleep(0)
            inside -= 1

    await asyncio.gather(*(hold(i) for i in range(20)))
    assert most == 3
    assert order == list(range(20))
    assert limit.held == 0


async def test_a_waiter_cancelled_in_line_gives_up_its_place() -> None:
    limit = InFlightLimit(1)
    release = asyncio.Event()

    async def first() -> None:
        async with limit.hold():
            await release.wait()

    holder = asyncio.ensure_future(first())
    await asyncio.sleep(0)
    waiter = asyncio.ensure_future(limit.hold().__aenter__())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    release.set()
    await holder
    assert limit.held == 0
    async with limit.hold():  # still usable
        assert limit.held == 1


async def test_a_place_handed_to_a_cancelled_waiter_passes_on() -> None:
    limit = InFlightLimit(1)
    got: list[str] = []

    async def take(name: str, hold_for: asyncio.Event | None = None) -> None:
        async with limit.hold():
            got.append(name)
            if hold_for is not None:
                await hold_for.wait()

    gate = asyncio.Event()
    first = asyncio.ensure_future(take("first", gate))
    await asyncio.sleep(0)
    second = asyncio.ensure_future(take("second"))
    third = asyncio.ensure_future(take("third"))
    await asyncio.sleep(0)
    gate.set()
    await asyncio.sleep(0)  # first releases: its place is handed to second...
    second.cancel()  # ...which is cancelled before it runs
    await asyncio.gather(first, second, third, return_exceptions=True)
    assert got == ["first", "third"]
    assert limit.held == 0


async def test_a_waiter_cancelled_as_the_holder_leaves_is_cancelled_cleanly() -> None:
    # The holder and the waiter are cancelled together (a batch abandoned): the holder's
    # release passes over the cancelled waiter before the waiter runs. The waiter must still
    # end cancelled, not with an error of the limit's own.
    limit = InFlightLimit(1)
    forever = asyncio.Event()

    async def take() -> None:
        async with limit.hold():
            await forever.wait()

    holder = asyncio.ensure_future(take())
    await asyncio.sleep(0)
    waiter = asyncio.ensure_future(take())
    await asyncio.sleep(0)
    holder.cancel()
    waiter.cancel()
    results = await asyncio.gather(holder, waiter, return_exceptions=True)
    assert [type(r) for r in results] == [asyncio.CancelledError, asyncio.CancelledError]
    assert limit.held == 0
    async with limit.hold():  # still usable
        assert limit.held == 1


def test_a_limit_works_across_event_loops() -> None:
    limit = InFlightLimit(1)

    async def use() -> None:
        async with limit.hold():
            await asyncio.sleep(0)

    async def contend() -> None:
        await asyncio.gather(use(), use())

    asyncio.run(contend())
    asyncio.run(contend())
    assert limit.held == 0


async def test_the_api_caps_requests_on_the_wire(mock: respx.MockRouter) -> None:
    inside, most = 0, 0

    async def respond(request: httpx.Request) -> httpx.Response:
        nonlocal inside, most
        inside += 1
        most = max(most, inside)
        await asyncio.sleep(0)
        inside -= 1
        return ok_response()

    mock.post(CREATE_URL).mock(side_effect=respond)
    async with AsyncSchedulerAPI(SECRET, rate_limit=None, max_in_flight=4) as api:
        view = api.impersonate("acc_1")
        assert view._shared.in_flight is api._shared.in_flight
        await asyncio.gather(*(api.create_scheduler_request(seed_request()) for _ in range(30)))
    assert most == 4


async def test_the_librarys_own_pool_matches_the_cap() -> None:
    async with AsyncSchedulerAPI(SECRET, max_in_flight=7) as api:
        transport = api._shared.direct
        assert isinstance(transport, httpx.AsyncHTTPTransport)
        pool = transport._pool
        assert pool._max_connections == 7
        assert pool._max_keepalive_connections == 7


@pytest.mark.parametrize("value", [0, -1, 2.5, True, "8"])
def test_bad_max_in_flight(value: object) -> None:
    with pytest.raises(ConfigurationError, match="max_in_flight must be a positive whole number"):
        AsyncSchedulerAPI(SECRET, max_in_flight=value)  # type: ignore[arg-type]


async def test_a_callers_client_keeps_its_machinery(mock: respx.MockRouter) -> None:
    # The direct path is for the library's own client only: a caller's hooks still run.
    mock.post(CREATE_URL).mock(return_value=ok_response())
    seen: list[str] = []

    async def hook(request: httpx.Request) -> None:
        seen.append(request.url.path)

    async with httpx.AsyncClient(event_hooks={"request": [hook]}) as client:
        api = AsyncSchedulerAPI(SECRET, http_client=client)
        assert api._shared.direct is None
        await api.create_scheduler_request(seed_request())
    assert seen == ["/v1/scheduler_requests"]


async def test_proxies_from_the_environment_are_honoured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    async with AsyncSchedulerAPI(SECRET) as api:
        assert api._shared.direct is None  # the client routes, through its proxy mount
        assert api.http_client._mounts  # httpx mounted the proxy from the environment


async def test_the_direct_path_sets_the_request_on_errors(
    api: AsyncSchedulerAPI, mock: respx.MockRouter
) -> None:
    assert api._shared.direct is not None
    mock.post(CREATE_URL).mock(return_value=httpx.Response(404))
    with pytest.raises(Exception) as info:
        await api.create_scheduler_request(seed_request())
    assert info.value.response.request.url == CREATE_URL  # type: ignore[attr-defined]
