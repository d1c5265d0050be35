"""
What each operation costs the library itself (target Q): create, query and cancel, network stubbed.

End to end at no server delay, a call's CPU is mostly the HTTP stack's, which moves by 20-40%
from run to run on a shared machine; what an operation adds (building its body, reading its
answer) is a few percent of that. So here every call runs the library's whole pipeline on the
fast path (operation, pacing hooks, in-flight limit, retries, error mapping, parsing) with only
the socket replaced: the transport answers at once with the bytes the fake Cronofy answered.
Each call is made as users make it: a create builds its `NewSchedulerRequest` (the builders'
checks are the library's work too), a query its list of ids.
Operations are interleaved, each repeated; the median CPU per call is printed as JSON::

    python -m bench.operations
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from cronofy_async import (
    AsyncSchedulerAPI,
    Event,
    Host,
    NewSchedulerRequest,
    Recipient,
)
from cronofy_async.testing import FakeCronofy

SECRET = "sk_bench_operations"


async def _answers() -> dict[str, tuple[int, bytes]]:
    """The fake Cronofy's real answers to a create, a query and a cancel: status and body."""
    fake = FakeCronofy([SECRET], members=["acc_1"], rate_limit=None)
    captured: dict[str, tuple[int, bytes]] = {}
    async with fake.client() as http:
        headers = {"Authorization": f"Bearer {SECRET}"}
        base = "https://api.cronofy.com/v1"
        body = {
            "host": {"sub": "acc_1"},
            "recipients": [{"email": "doc@evenitron.com", "display_name": "Dr Emmet Brown"}],
            "event": {"summary": "Driving lessons - Marty & Doc"},
        }
        made = await http.post(f"{base}/scheduler_requests", json=body, headers=headers)
        captured["create"] = (made.status_code, made.content)
        made = await http.post(f"{base}/scheduling_requests", json=body, headers=headers)
        request_id = made.json()["scheduling_request"]["scheduling_request_id"]
        asked = {"scheduling_request_ids": [request_id]}
        query = await http.post(f"{base}/scheduling_requests/query", json=asked, headers=headers)
        captured["query"] = (query.status_code, query.content)
        cancel = await http.post(
            f"{base}/scheduling_requests/cancel",
            json={"scheduling_request_id": request_id},
            headers=headers,
        )
        captured["cancel"] = (cancel.status_code, cancel.content)
        captured["id"] = (0, request_id.encode())
    return captured


def _calls(api: AsyncSchedulerAPI, request_id: str) -> dict[str, Callable[[], Awaitable[Any]]]:
    """Each call as users make it: a create with its own request, built with the builders."""

    def create() -> Awaitable[Any]:
        return api.create_scheduler_request(
            NewSchedulerRequest(
                host=Host(sub="acc_1"),
                recipients=[Recipient(email="doc@evenitron.com", display_name="Dr Emmet Brown")],
                event=Event(summary="Driving lessons - Marty & Doc"),
            )
        )

    return {
        "create": create,
        "query": lambda: api.query_scheduling_requests([request_id]),
        "cancel": lambda: api.cancel_scheduling_request(request_id),
    }


async def measure(calls: int, repeats: int, concurrency: int) -> dict[str, Any]:
    """Median library CPU per call of each operation, in microseconds."""
    answers = await _answers()
    request_id = answers.pop("id")[1].decode()
    api = AsyncSchedulerAPI(
        SECRET, base_url="http://127.0.0.1:9", rate_limit=None, http_backend="aiohttp"
    )
    operation = "create"

    async def send_raw(*_args: Any, **_kwargs: Any) -> tuple[int, str, tuple[()], bytes]:
        await asyncio.sleep(0)  # a round of the loop, as an answer from a socket takes
        status, content = answers[operation]
        return status, "OK", (), content

    fast = api._shared.fast  # the one seam below the pipeline: where bytes would go out
    assert fast is not None
    fast.send_raw = send_raw  # type: ignore[method-assign]
    calls_of = _calls(api, request_id)
    per_call: dict[str, list[float]] = {name: [] for name in calls_of}
    for _ in range(repeats + 1):  # the first round warms up and is not counted
        for name, call in calls_of.items():
            operation = name
            remaining = calls

            async def worker(call: Callable[[], Awaitable[Any]] = call) -> None:
                nonlocal remaining
                while remaining > 0:
                    remaining -= 1
                    await call()

            start = time.process_time()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            per_call[name].append((time.process_time() - start) / calls * 1e6)
    await api.aclose()
    return {
        name: {"median_us": statistics.median(values[1:]), "runs_us": values[1:]}
        for name, values in per_call.items()
    }


def main() -> None:
    """Measure and print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("-c", "--concurrency", type=int, default=10)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(measure(args.calls, args.repeats, args.concurrency))))


if __name__ == "__main__":
    main()
