"""
Ledgers at their edges, from a hostile review of issue 22: a script that exits without closing
its ledger, a claim held longer than the TTL, a database thread that runs late.

Plain functions driving asyncio.run, or subprocesses where the interpreter's exit is the point.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import subprocess
import sys
import textwrap
import time
import types
from collections.abc import Callable
from pathlib import Path

import pytest

from cronofy_async import (
    Event,
    Host,
    Ledger,
    LedgerState,
    NewSchedulingRequest,
    Recipient,
    SQLiteLedger,
)
from cronofy_async.testing import FakeCronofy, Faults

ROOT = Path(__file__).resolve().parent.parent


def invite(email: str = "ada@example.com") -> NewSchedulingRequest:
    return NewSchedulingRequest(
        host=Host(sub="acc_1"), recipients=[Recipient(email=email)], event=Event(summary="Intro")
    )


# -- a process that exits right after a create keeps its CREATED outcome ---------------------

EXIT_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from cronofy_async import SQLiteLedger, NewSchedulingRequest, Host, Recipient, Event
    from cronofy_async.testing import FakeCronofy

    async def main(path, key):
        fake = FakeCronofy(members=["acc_1"], rate_limit=None)
        ledger = SQLiteLedger(path)  # as docs/idempotency.md's server example: never closed
        async with fake.api(ledger=ledger) as api:
            await api.create_scheduling_request(
                NewSchedulingRequest(
                    host=Host(sub="acc_1"),
                    recipients=[Recipient(email="a@b.com")],
                    event=Event(summary="x"),
                ),
                idempotency_key=key,
            )

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


def test_a_create_that_returned_is_recorded_created_when_the_process_exits(tmp_path: Path) -> None:
    script = tmp_path / "one_create.py"
    script.write_text(EXIT_SCRIPT)
    db = tmp_path / "keys.db"
    for i in range(10):
        command = [sys.executable, str(script), str(db), f"order-{i}"]
        subprocess.run(command, check=True, cwd=ROOT)  # noqa: S603 - our own script
    with sqlite3.connect(db) as conn:
        states = dict(conn.execute("SELECT key, state FROM cronofy_idempotency"))
    # Every create returned its invite to the caller, so every key must replay it next run.
    # (The settle is queued to a daemon thread, which the interpreter freezes at exit.)
    assert states == {f"order-{i}": "created" for i in range(10)}


# -- a claim still held (renewed) never expires by its TTL -----------------------------------


async def _ttl_race(make_ledger: Callable[[], Ledger]) -> tuple[int, set[str]]:
    fake = FakeCronofy(members=["acc_1"], rate_limit=None, faults=Faults(latency=2.5))
    one, two = make_ledger(), make_ledger()  # two processes sharing one ledger
    try:
        async with fake.api(ledger=one) as api1, fake.api(ledger=two) as api2:
            first = asyncio.create_task(
                api1.create_scheduling_request(invite(), idempotency_key="k")
            )
            await asyncio.sleep(2.2)  # the first is still sending, its lease renewed every 1/3 s
            second = asyncio.create_task(
                api2.create_scheduling_request(invite(), idempotency_key="k")
            )
            results = await asyncio.gather(first, second, return_exceptions=True)
    finally:
        await one.aclose()
        await two.aclose()
    ids = {r.scheduling_request_id for r in results if not isinstance(r, BaseException)}
    return len(fake.scheduling_requests), ids


def test_sqlite_a_held_claim_never_expires_under_its_holder(tmp_path: Path) -> None:
    made, ids = asyncio.run(_ttl_race(lambda: SQLiteLedger(tmp_path / "k.db", ttl=2.0, lease=1.0)))
    assert made == 1, f"one key, {made} invites created: {ids}"


def test_redis_a_held_claim_never_expires_under_its_holder() -> None:
    from cronofy_async.redis import RedisLedger
    from tests.redis_server import running_redis

    with running_redis() as server:
        made, ids = asyncio.run(
            _ttl_race(lambda: RedisLedger(server.url, namespace="ttl22", ttl=2.0, lease=1.0))
        )
    assert made == 1, f"one key, {made} invites created: {ids}"


# -- a queued outcome is recorded however late the database thread runs ---------------------


def test_a_queued_outcome_is_not_dropped_silently_when_the_thread_runs_late(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import cronofy_async._sqlite_ledger as sl

    offset = [0.0]  # how far the database thread is behind: a slow fsync, a locked file
    monkeypatch.setattr(
        sl,
        "time",
        types.SimpleNamespace(
            time=time.time, sleep=time.sleep, monotonic=lambda: time.monotonic() + offset[0]
        ),
    )
    path = tmp_path / "k.db"

    async def main() -> LedgerState | None:
        ledger = SQLiteLedger(path, timeout=1.0)
        assert (await ledger.claim("k", "fp", owner="o")).held_by("o")
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process writes meanwhile
        await ledger.settle(
            "k", owner="o", state=LedgerState.CREATED, request_id="srq_1", result=b"{}"
        )  # queued: the create has returned to its caller
        await asyncio.sleep(0.1)
        offset[0] = 2.0  # the thread gets to it later than the timeout after it was queued
        await asyncio.sleep(0.2)
        other.execute("COMMIT")
        other.close()
        entry = await ledger.get("k")
        await ledger.aclose()
        return entry.state if entry else None

    with caplog.at_level(logging.WARNING, logger="cronofy_async"):
        state = asyncio.run(main())
    # No one waits for a settle, so its deadline protects no caller: it must still be applied
    # (at the very least, the loss must be logged as every other lost outcome is).
    assert state is LedgerState.CREATED or caplog.records, (state, caplog.records)


# -- the TTL: bounded, and an expired entry is no entry in every ledger ------------------------


@pytest.mark.parametrize("kind", ["memory", "sqlite", "redis"])
def test_a_ttl_beyond_ten_years_is_refused_when_the_ledger_is_made(
    kind: str, tmp_path: Path
) -> None:
    from cronofy_async import ConfigurationError, MemoryLedger
    from cronofy_async.redis import RedisLedger

    make: dict[str, Callable[[], object]] = {
        "memory": lambda: MemoryLedger(ttl=1e12),
        "sqlite": lambda: SQLiteLedger(tmp_path / "k.db", ttl=1e12),
        "redis": lambda: RedisLedger("redis://127.0.0.1:1", namespace="ttl", ttl=1e12),
    }
    with pytest.raises(ConfigurationError, match="ttl must be at most"):
        make[kind]()


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_an_outcome_settled_after_the_ttl_revives_nothing(kind: str, tmp_path: Path) -> None:
    from cronofy_async import MemoryLedger

    async def main() -> object:
        ledger: Ledger = (
            MemoryLedger(ttl=0.4, lease=0.2)
            if kind == "memory"
            else SQLiteLedger(tmp_path / "k.db", ttl=0.4, lease=0.2)
        )
        await ledger.claim("k", "fp", owner="o")
        await asyncio.sleep(0.6)  # the holder went silent past the TTL: the entry is gone
        await ledger.settle("k", owner="o", state=LedgerState.CREATED, request_id="s", result=b"{}")
        await ledger.renew("k", owner="o")
        entry = await ledger.get("k")
        await ledger.aclose()
        return entry

    assert asyncio.run(main()) is None


# -- a lapsed claim is news once: to the first caller who finds it --------------------------


@pytest.mark.parametrize("kind", ["memory", "sqlite", "redis"])
def test_only_the_first_to_find_a_lapsed_claim_is_told_it_lapsed(kind: str, tmp_path: Path) -> None:
    from cronofy_async import MemoryLedger
    from cronofy_async.redis import RedisLedger
    from tests.redis_server import running_redis

    async def main(redis_url: str) -> tuple[LedgerState, bool, bool]:
        ledgers: dict[str, Callable[[], Ledger]] = {
            "memory": lambda: MemoryLedger(lease=0.2),
            "sqlite": lambda: SQLiteLedger(tmp_path / "k.db", lease=0.2),
            "redis": lambda: RedisLedger(redis_url, namespace="lapse", lease=0.2),
        }
        ledger = ledgers[kind]()
        await ledger.claim("k", "fp", owner="dead")  # its process dies mid-send
        await asyncio.sleep(0.3)
        first = await ledger.claim("k", "fp", owner="a")
        again = await ledger.claim("k", "fp", owner="b")
        await ledger.aclose()
        return first.state, first.lapsed, again.lapsed

    if kind == "redis":
        with running_redis() as server:
            state, first, again = asyncio.run(main(server.url))
    else:
        state, first, again = asyncio.run(main(""))
    assert state is LedgerState.UNKNOWN
    assert (first, again) == (True, False)


# -- group commit: who waits for more claims ---------------------------------------------------


def test_only_claims_arriving_together_wait_for_more() -> None:
    from cronofy_async._sqlite_ledger import _BUSY, _Job, lingers

    claim = _Job(lambda db, now: None, None, None, 0.0, True)
    outcome = _Job(lambda db, now: None, None, None, 0.0, False)
    assert lingers([claim], since_durable=0.001, claims_then=8)
    # A service's lone create: the last durable commit carried its one claim.
    assert not lingers([claim], since_durable=0.001, claims_then=1)
    assert not lingers([claim], since_durable=_BUSY * 2, claims_then=8)  # a pause since
    assert not lingers([outcome], since_durable=0.001, claims_then=8)  # nothing to sync


async def test_a_lone_claim_after_an_outcome_is_not_held_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import cronofy_async._sqlite_ledger as module

    # Were a lone claim to linger, each would take 30 s: the bound below would fail.
    monkeypatch.setattr(module, "_LINGER", 30.0)
    ledger = SQLiteLedger(tmp_path / "ledger.db")
    try:
        async with asyncio.timeout(20):
            for i in range(5):
                entry = await ledger.claim(f"k{i}", "fp", owner="me")
                assert entry.held_by("me")
                await ledger.settle(f"k{i}", owner="me", state=LedgerState.CREATED, result=b"{}")
    finally:
        await ledger.aclose()
