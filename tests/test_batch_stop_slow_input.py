"""A 401 must stop the batch without waiting for a slow input."""

import asyncio
from collections.abc import AsyncIterator

from cronofy_async import (
    AsyncSchedulerAPI,
    AuthenticationError,
    BatchResult,
    NewSchedulerRequest,
    Outcome,
    SchedulerRequest,
)

from .conftest import SECRET, seed_request
from .helpers import http_response, raw_server


async def test_a_401_ends_the_batch_while_the_input_is_slow() -> None:
    release = asyncio.Event()

    async def slow_input() -> AsyncIterator[NewSchedulerRequest]:
        yield seed_request()
        await release.wait()  # a queue / paged DB read with nothing to give yet
        yield seed_request()

    async def answer(request: bytes) -> bytes:
        return http_response(401, b'{"error":"unauthorized"}', reason="Unauthorized")

    async with (
        raw_server(answer) as url,
        AsyncSchedulerAPI(SECRET, base_url=url, rate_limit=None) as api,
    ):
        stream = api.iter_create_scheduler_requests(slow_input(), concurrency=2)
        seen: list[BatchResult[NewSchedulerRequest, SchedulerRequest]] = []

        async def consume() -> None:
            async with stream:
                async for result in stream:
                    seen.append(result)

        task = asyncio.ensure_future(consume())
        done, _ = await asyncio.wait({task}, timeout=2)
        release.set()
        await asyncio.wait_for(task, 5)
    assert seen
    assert seen[0].outcome is Outcome.FAILED
    assert isinstance(stream.stopped_by, AuthenticationError)
    # "a 401/402/403 stops the batch without waiting for input"
    assert task in done, "the batch waited for the slow input after the 401 had stopped it"
