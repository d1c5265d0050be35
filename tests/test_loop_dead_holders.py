"""A loop closed with a call still in flight keeps its in-flight slot: the next loop hangs."""

import asyncio
import threading
import warnings

import pytest

from cronofy_async import AsyncSchedulerAPI

from .conftest import SEED_RESPONSE, seed_request
from .helpers import http_response, raw_server


@pytest.mark.filterwarnings("ignore")
def test_a_second_loop_is_not_blocked_by_a_dead_loops_request() -> None:
    arrivals = []

    async def answer(request: bytes) -> bytes:
        arrivals.append(request)
        if len(arrivals) == 1:
            await asyncio.Event().wait()  # never answers the first
        return http_response(200, SEED_RESPONSE.encode())

    ready, stop, holder = threading.Event(), threading.Event(), {}

    def serve() -> None:
        async def main() -> None:
            async with raw_server(answer) as url:
                holder["url"] = url
                ready.set()
                while not stop.is_set():  # noqa: ASYNC110 - set from another thread
                    await asyncio.sleep(0.05)

        asyncio.run(main())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    ready.wait(5)
    try:
        api = AsyncSchedulerAPI("sk_x", base_url=holder["url"], max_in_flight=1, rate_limit=None)
        first = asyncio.new_event_loop()
        abandoned = first.create_task(api.create_scheduler_request(seed_request()))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            first.run_until_complete(asyncio.sleep(0.3))  # the caller abandons this loop
            first.close()
        assert not abandoned.done()  # still "in flight" in a loop that is gone

        async def again() -> object:
            return await asyncio.wait_for(api.create_scheduler_request(seed_request()), 3)

        # A later loop works: the dead loop's holder no longer keeps its place.
        asyncio.run(again())
        assert len(arrivals) == 2
    finally:
        stop.set()
        thread.join(5)
