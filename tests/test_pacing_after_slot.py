"""Never more than the RateLimit in any window: admitted requests do not bunch behind a slow one."""

import asyncio

from cronofy_async import AsyncSchedulerAPI, RateLimit

from .conftest import SECRET, SEED_RESPONSE, seed_request
from .helpers import FakeClock, HeldServer, http_response, raw_server, until, use_clock


async def test_requests_paced_while_in_flight_is_full_leave_in_a_burst() -> None:
    clock = FakeClock()
    server = HeldServer(http_response(200, SEED_RESPONSE.encode()), clock=clock)
    limit = RateLimit(per_second=2, per_minute=None, margin=0.0)
    async with (
        raw_server(server) as url,
        AsyncSchedulerAPI(SECRET, base_url=url, rate_limit=limit, max_in_flight=1) as api,
    ):
        use_clock(api, clock)
        calls = [
            asyncio.ensure_future(api.create_scheduler_request(seed_request())) for _ in range(6)
        ]
        await until(
            lambda: server.arrived == 1 and len(api._shared.in_flight._waiters) == 5,
            what="five paced requests waiting for the one in-flight slot",
        )
        server.release()
        await asyncio.gather(*calls)
    times = server.times
    worst = max(sum(1 for t in times if start <= t < start + 1.0) for start in times)
    # Promise (docs/retries-and-rate-limits.md): "never more than N in any window" / "at most 50
    # requests leave in any 1.05 s". Here the limit is 2 per second.
    assert worst <= 2, f"{worst} requests left within one second (limit 2): {times}"
