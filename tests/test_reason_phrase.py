"""A reason phrase that is not UTF-8 still gives a typed error, on both backends."""

from typing import Literal

import pytest

from cronofy_async import AsyncSchedulerAPI, ServerError

from .conftest import SECRET, seed_request
from .helpers import FakeClock, raw_server, use_clock


@pytest.mark.parametrize("backend", ["httpx", "aiohttp"])
async def test_non_utf8_reason_phrase_gives_a_typed_error(
    backend: Literal["httpx", "aiohttp"],
) -> None:
    async def answer(request: bytes) -> bytes:
        return b"HTTP/1.1 500 \xff\xfe\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"

    async with (
        raw_server(answer) as url,
        AsyncSchedulerAPI(SECRET, base_url=url, http_backend=backend) as api,
    ):
        use_clock(api, FakeClock())
        with pytest.raises(ServerError) as caught:
            await api.create_scheduler_request(seed_request())
    assert caught.value.outcome_unknown is True
