"""http_backend="aiohttp": configuration, error mapping, and loops."""

from __future__ import annotations

import asyncio
import sys

import aiohttp
import httpx
import pytest

from cronofy_async import AsyncSchedulerAPI, ConfigurationError
from cronofy_async._aiohttp import AiohttpTransport, _map_error
from cronofy_async.testing import FakeCronofy

from .conftest import SECRET

REQUEST = httpx.Request("POST", "http://127.0.0.1:1/v1/scheduler_requests")
KEY = aiohttp.client_reqrep.ConnectionKey("h", 1, False, True, None, None, None)


@pytest.mark.parametrize(
    ("error", "mapped", "sent"),
    [
        (aiohttp.ClientConnectorError(KEY, OSError(111, "refused")), httpx.ConnectError, False),
        (aiohttp.ConnectionTimeoutError("connect"), httpx.ConnectTimeout, False),
        (aiohttp.InvalidURL("nope://"), httpx.UnsupportedProtocol, False),
        (aiohttp.SocketTimeoutError("read"), httpx.ReadTimeout, True),
        (TimeoutError(), httpx.ReadTimeout, True),
        (aiohttp.ServerDisconnectedError(), httpx.RemoteProtocolError, True),
        (aiohttp.ClientOSError(104, "reset"), httpx.ReadError, True),
        (aiohttp.ClientConnectionResetError("reset"), httpx.ReadError, True),
        (aiohttp.ClientPayloadError("truncated"), httpx.ReadError, True),
    ],
)
def test_each_failure_maps_to_what_it_says_about_the_request(
    error: BaseException, mapped: type[httpx.TransportError], sent: bool
) -> None:
    from cronofy_async._response import error_from_exception

    result = _map_error(error, REQUEST)
    assert type(result) is mapped
    assert result.request is REQUEST
    assert error_from_exception(result, REQUEST).outcome_unknown is sent


def test_the_backend_is_checked() -> None:
    with pytest.raises(ConfigurationError, match="http_backend must be 'httpx' or 'aiohttp'"):
        AsyncSchedulerAPI(SECRET, http_backend="curl")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="applies to the client the library builds"):
        AsyncSchedulerAPI(SECRET, http_client=httpx.AsyncClient(), http_backend="aiohttp")


def test_a_missing_aiohttp_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cronofy_async._aiohttp", None)
    with pytest.raises(ConfigurationError, match=r"pip install 'cronofy-async\[aiohttp\]'"):
        AsyncSchedulerAPI(SECRET, http_backend="aiohttp")


def test_default_caps_per_backend() -> None:
    assert AsyncSchedulerAPI(SECRET)._shared.in_flight.limit == 25
    api = AsyncSchedulerAPI(SECRET, http_backend="aiohttp")
    assert api._shared.in_flight.limit == 500
    assert isinstance(api._shared.direct, AiohttpTransport)
    assert isinstance(api.http_client, httpx.AsyncClient)  # still httpx above


def test_one_api_object_across_event_loops() -> None:
    # Built outside any loop, then used by two loops in turn (pytest-asyncio's per-test loops,
    # or asyncio.run twice): each loop gets its own session, the first is let go cleanly.
    fake = FakeCronofy(members=["acc_61815034636bd5c5ce4edd"], rate_limit=None)
    api = AsyncSchedulerAPI(fake.secret, http_backend="aiohttp", rate_limit=None)
    transport = api._shared.direct
    assert isinstance(transport, AiohttpTransport)

    async def create() -> None:
        async with fake.serve() as url:
            request = httpx.Request(
                "POST", f"{url}/v1/scheduler_requests", content=b"{}",
                headers={"Authorization": f"Bearer {fake.secret}"},
            )  # fmt: skip
            response = await transport.handle_async_request(request)
            assert response.status_code == 422

    asyncio.run(create())
    first = transport._session
    asyncio.run(create())
    assert transport._session is not first
    assert first is not None
    assert first.closed
    asyncio.run(api.aclose())
