"""
A process that creates invites under idempotency keys, for the multi-process ledger tests.

``python tests/ledger_worker.py BASE_URL SECRET LEDGER KEYS...`` creates one scheduling
request per key, all at once, against BASE_URL (a FakeCronofy on loopback), with LEDGER
(``sqlite:PATH`` or ``redis:URL#NAMESPACE``, lease 1 s), and prints one JSON line per key:
``{"key", "id"}`` or ``{"key", "error"}``. It prints ``ready`` first.
"""

from __future__ import annotations

import asyncio
import json
import sys

from cronofy_async import (
    AsyncSchedulerAPI,
    CronofyError,
    Event,
    Host,
    Ledger,
    NewSchedulingRequest,
    Recipient,
    SQLiteLedger,
)


def open_ledger(spec: str) -> Ledger:
    kind, _, where = spec.partition(":")
    if kind == "sqlite":
        return SQLiteLedger(where, lease=1.0, wait=30.0)
    from cronofy_async.redis import RedisLedger

    url, _, namespace = where.partition("#")
    return RedisLedger(url, namespace=namespace, lease=1.0, wait=30.0)


async def create(api: AsyncSchedulerAPI, key: str) -> dict[str, str]:
    request = NewSchedulingRequest(
        host=Host(sub="acc_1"),
        recipients=[Recipient(email=f"{key}@example.com")],
        event=Event(summary="Race"),
    )
    try:
        created = await api.create_scheduling_request(request, idempotency_key=key)
    except CronofyError as error:
        return {"key": key, "error": type(error).__name__}
    return {"key": key, "id": created.scheduling_request_id}


async def main(base_url: str, secret: str, spec: str, keys: list[str]) -> None:
    ledger = open_ledger(spec)
    async with AsyncSchedulerAPI(secret, base_url=base_url, rate_limit=None, ledger=ledger) as api:
        print("ready", flush=True)
        for line in await asyncio.gather(*(create(api, key) for key in keys)):
            print(json.dumps(line), flush=True)
    await ledger.aclose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]))
