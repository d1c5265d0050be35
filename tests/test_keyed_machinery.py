"""
The machinery every keyed create rides, made cheaper for issue 22's CPU target: one renewal
timer per event loop, owners without a system call, a canonical body as the fingerprint, the
SQLite ledger's database thread replaced if it dies.

Each test is a promise the cheaper form must still keep.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import pytest

from cronofy_async import (
    Event,
    Host,
    LedgerEntry,
    LedgerState,
    LedgerUnavailableError,
    MemoryLedger,
    NewSchedulerRequest,
    NewSchedulingRequest,
    PayloadError,
    Recipient,
    SQLiteLedger,
)
from cronofy_async._idempotency import fingerprint
from cronofy_async._request import create_operation
from cronofy_async._secret import ClientSecret
from cronofy_async.testing import FakeCronofy, Faults


def invite(email: str = "ada@example.com") -> NewSchedulingRequest:
    return NewSchedulingRequest(
        host=Host(sub="acc_1"), recipients=[Recipient(email=email)], event=Event(summary="Intro")
    )


async def _later(call: Any, seconds: float) -> Any:
    await asyncio.sleep(seconds)
    return await call


# -- renewals: one timer for a loop's claims, each renewed within its own lease ----------------


async def test_a_short_lease_is_renewed_in_time_beside_a_long_one(tmp_path: Path) -> None:
    # The first claim (a 30 s lease) sets the loop's timer to 10 s; the second, with a 0.3 s
    # lease, must bring it forward, or it lapses mid-send: any other process would find the
    # key unknown while it is still being sent.
    fake = FakeCronofy(members=["acc_1"], rate_limit=None, faults=Faults(latency=0.9))
    long_lived = SQLiteLedger(tmp_path / "long.db")
    short = MemoryLedger(lease=0.3)
    async with (
        fake.api(ledger=long_lived, rate_limit=None) as slow_api,
        fake.api(ledger=short, rate_limit=None) as api,
    ):
        long_call = asyncio.ensure_future(
            slow_api.create_scheduling_request(invite("grace@example.com"), idempotency_key="g")
        )
        await asyncio.sleep(0.05)
        await _sends_with_its_claim_renewed(api, short, "k")
        await long_call

        # No claim left: the timer stopped. A later call starts it again.
        await asyncio.sleep(0.4)
        await _sends_with_its_claim_renewed(api, short, "b")
    await long_lived.aclose()
    assert fake.received == 3


async def _sends_with_its_claim_renewed(api: Any, ledger: MemoryLedger, key: str) -> None:
    call = asyncio.ensure_future(
        api.create_scheduling_request(invite(f"{key}@example.com"), idempotency_key=key)
    )
    await asyncio.sleep(0.6)  # twice the lease
    entry = await ledger.get(key)
    assert entry is not None
    assert entry.state is LedgerState.SENDING  # not UNKNOWN: renewed
    created = await call
    entry = await ledger.get(key)
    assert entry is not None
    assert entry.request_id == created.scheduling_request_id


async def test_a_renewal_after_the_call_ended_changes_nothing() -> None:
    ledger = MemoryLedger(lease=0.3)
    fake = FakeCronofy(members=["acc_1"], rate_limit=None, faults=Faults(latency=0.25))
    async with fake.api(ledger=ledger, rate_limit=None) as api:
        created = await api.create_scheduling_request(invite(), idempotency_key="k")
        await asyncio.sleep(0.3)  # the timer fires with no claim, or one just ended
        entry = await ledger.get("k")
        assert entry is not None
        assert entry.request_id == created.scheduling_request_id
        assert entry.owner is None


# -- owners: unique per call, and per process after a fork ------------------------------------


def _run_script(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`script` run by a fresh interpreter (it forks: never this test process), its output."""
    return subprocess.run(  # noqa: S603 - our own interpreter, our own script
        [sys.executable, "-c", script, *args],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip


HOOKLESS_FORK = textwrap.dedent(
    """
    import asyncio, ctypes, json, os, sys
    from cronofy_async import SQLiteLedger, NewSchedulingRequest, Host, Recipient, Event
    from cronofy_async.testing import FakeCronofy, Faults

    path, = sys.argv[1:]
    r, w = os.pipe()
    warm = SQLiteLedger(path)
    asyncio.run(warm.get("warm"))  # the parent's database thread runs when it forks
    # fork() from C with the GIL held: none of Python's at-fork hooks run (uWSGI's prefork,
    # a restored snapshot). The copies share every module's state.
    pid = ctypes.PyDLL(None).fork()

    async def one(role):
        ledger = warm if role == "second" else SQLiteLedger(path)
        fake = FakeCronofy(members=["acc_1"], rate_limit=None, faults=Faults(latency=1.0))
        request = NewSchedulingRequest(
            host=Host(sub="acc_1"), recipients=[Recipient(email="ada@example.com")],
            event=Event(summary="Intro"),
        )
        if role == "second":
            await asyncio.sleep(0.3)  # the first is mid-send
        error = None
        async with fake.api(ledger=ledger, rate_limit=None) as api:
            try:
                await api.create_scheduling_request(request, idempotency_key="order-42")
            except Exception as exc:
                error = type(exc).__name__
        return {"sent": fake.received, "error": error}

    if pid == 0:
        os.write(w, json.dumps(asyncio.run(one("second"))).encode())
        os._exit(0)
    first = asyncio.run(one("first"))
    os.waitpid(pid, 0)
    print(json.dumps([first, json.loads(os.read(r, 100000))]))
    """
)


def test_copies_of_a_process_made_without_fork_hooks_send_once(tmp_path: Path) -> None:
    # Owners with a counter were the same in both copies: each took the other's claim for
    # its own, and both sent. The child's copy of a ledger whose file was open at the copy
    # must refuse, not answer: SQLite's locks do not survive such a copy (the next test).
    done = _run_script(HOOKLESS_FORK, str(tmp_path / "shared.db"))
    first, second = json.loads(done.stdout.strip().splitlines()[-1])
    assert first == {"sent": 1, "error": None}
    assert second == {"sent": 0, "error": "LedgerUnavailableError"}


COPIED_OPEN = textwrap.dedent(
    """
    import asyncio, ctypes, os, sys
    from cronofy_async import LedgerUnavailableError, SQLiteLedger

    path, = sys.argv[1:]
    asyncio.run(SQLiteLedger(path).get("warm"))  # the file open in the parent at the copy
    pid = ctypes.PyDLL(None).fork()  # no fork hooks
    if pid == 0:
        try:
            asyncio.run(SQLiteLedger(path).get("k"))  # even through a ledger made afterwards
            os._exit(0)
        except LedgerUnavailableError as exc:
            os._exit(2 if "copy of one that had the file open" in str(exc) else 1)
    _, status = os.waitpid(pid, 0)
    print(os.waitstatus_to_exitcode(status))
    """
)


def test_a_copy_made_without_fork_hooks_while_the_file_is_open_refuses_it(
    tmp_path: Path,
) -> None:
    # SQLite keeps a process's file locks in a table a copy inherits without the locks: its
    # connection would believe it holds locks it does not, and two processes could both
    # claim one key once the parent closes the file.
    done = _run_script(COPIED_OPEN, str(tmp_path / "l.db"))
    assert done.stdout.split() == ["2"]


SPLIT_BRAIN = textwrap.dedent(
    """
    import asyncio, os, sys
    from cronofy_async import LedgerState, SQLiteLedger

    path, = sys.argv[1:]
    ledger = SQLiteLedger(path, timeout=2.0)
    asyncio.run(ledger.claim("warm", "fp", owner="p"))  # its thread has the file open
    r1, w1 = os.pipe()
    r2, w2 = os.pipe()
    pid = os.fork()
    if pid == 0:
        async def child():
            await ledger.claim("c1", "fp", owner="child")  # the child's own connection
            os.write(w1, b"x")
            await asyncio.get_running_loop().run_in_executor(None, os.read, r2, 1)
            entry = await ledger.claim("k", "fp", owner="child")  # the parent created it
            os.write(w1, entry.state.value.encode())
            await asyncio.wait_for(ledger.aclose(), 5)
        asyncio.run(child())
        os._exit(0)
    os.read(r1, 1)
    asyncio.run(ledger.aclose())  # the parent believes it is the file's last user
    async def parent():
        await ledger.claim("k", "fp", owner="parent")
        await ledger.settle("k", owner="parent", state=LedgerState.CREATED, request_id="r",
                            result=b"{}")
        await ledger.aclose()
    asyncio.run(parent())
    os.write(w2, b"x")
    print(os.read(r1, 20).decode())
    os.waitpid(pid, 0)
    """
)


def test_a_child_forked_with_the_file_open_sees_what_its_parent_writes_after(
    tmp_path: Path,
) -> None:
    # The database thread had the file open at the fork: the child's connection shared its
    # parent's lock table, the parent's close then deleted the WAL under it, and the child
    # claimed a key the parent had created. The fork hook now closes the file first.
    done = _run_script(SPLIT_BRAIN, str(tmp_path / "l.db"))
    assert done.stdout.split() == ["created"]


LOCK_AT_FORK = textwrap.dedent(
    """
    import asyncio, os, signal, sys, threading, time
    from cronofy_async import SQLiteLedger

    path, = sys.argv[1:]
    ledger = SQLiteLedger(path, timeout=2.0)
    held = threading.Event()
    def other():  # a thread of another event loop, starting the database thread
        with ledger._lock:
            held.set()
            time.sleep(0.5)
    threading.Thread(target=other).start()
    held.wait()
    pid = os.fork()  # while the other thread holds the ledger's lock
    if pid == 0:
        signal.alarm(10)  # a hang ends here, killed
        asyncio.run(asyncio.wait_for(ledger.get("k"), 5))
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    print(os.waitstatus_to_exitcode(status))
    """
)


def test_a_child_forked_while_another_thread_holds_the_ledgers_lock_is_not_stuck(
    tmp_path: Path,
) -> None:
    done = _run_script(LOCK_AT_FORK, str(tmp_path / "l.db"))
    assert done.stdout.split() == ["0"]


def test_a_child_forked_while_the_database_thread_holds_its_lock_is_not_stuck(
    tmp_path: Path,
) -> None:
    # A copy made without fork hooks (with them, the hook waits for the thread to finish):
    # the child answers at once, refusing the file its parent had open, and is not stuck.
    ledger = SQLiteLedger(tmp_path / "l.db", timeout=2.0)
    asyncio.run(ledger.get("warm"))
    with ledger._channel.lock:  # as the database thread holds it, counting a claim
        pid = ctypes.PyDLL(None).fork()
        if pid == 0:  # pragma: no cover - the child
            signal.alarm(10)  # a hang ends here, killed
            try:
                asyncio.run(ledger.claim("k", "fp", owner="child"))
                os._exit(1)
            except LedgerUnavailableError:
                os._exit(0)
            except BaseException:
                os._exit(1)
    _, status = os.waitpid(pid, 0)
    asyncio.run(ledger.aclose())
    assert os.waitstatus_to_exitcode(status) == 0


async def test_owners_of_one_process_never_repeat() -> None:
    ledger = MemoryLedger()
    owners: list[str] = []
    claim = ledger.claim

    async def recording(key: str, print_: str, *, owner: str, resend_unknown: bool = False) -> Any:
        owners.append(owner)
        return await claim(key, print_, owner=owner, resend_unknown=resend_unknown)

    ledger.claim = recording  # type: ignore[method-assign,assignment]
    fake = FakeCronofy(members=["acc_1"], rate_limit=None)
    async with fake.api(ledger=ledger, rate_limit=None) as api:
        for i in range(20):
            await api.create_scheduling_request(invite(f"p{i}@example.com"), idempotency_key=str(i))
    assert len(set(owners)) == 20


# -- the fingerprint: the canonical body's bytes ------------------------------------------------


def _scheduler_request(extra: dict[str, Any]) -> NewSchedulerRequest:
    return NewSchedulerRequest(
        host=Host(sub="acc_1"),
        recipients=[Recipient(email="doc@evenitron.com", extra=extra)],
        event=Event(summary="Intro", extra=extra),
        extra=extra,
    )


def _print(request: NewSchedulerRequest, impersonate: str | None = None) -> str:
    operation = create_operation(request, impersonating=impersonate is not None)
    return fingerprint(operation, base_url="https://api.cronofy.com", impersonate=impersonate)


def test_nested_extra_fields_in_any_order_are_one_fingerprint() -> None:
    one = _print(_scheduler_request({"meta": {"b": 1, "a": [{"y": 2, "x": 1}]}, "z": 0}))
    other = _print(_scheduler_request({"z": 0, "meta": {"a": [{"x": 1, "y": 2}], "b": 1}}))
    assert one == other
    assert one != _print(_scheduler_request({"z": 1, "meta": {"a": [{"x": 1, "y": 2}], "b": 1}}))


def test_the_fingerprint_tells_apart_what_is_sent_where() -> None:
    request = _scheduler_request({})
    operation = create_operation(request, impersonating=False)
    base = fingerprint(operation, base_url="https://api.cronofy.com", impersonate=None)
    assert base != fingerprint(operation, base_url="https://api-de.cronofy.com", impersonate=None)
    assert base != _print(request, impersonate="acc_1")
    assert base != _print(_scheduler_request({"a": 1}))


def test_extra_is_kept_as_a_deep_copy_so_a_later_change_is_not_sent() -> None:
    given: dict[str, Any] = {"meta": {"tags": ["a"]}}
    request = _scheduler_request(given)
    before = create_operation(request, impersonating=False).body
    given["meta"]["tags"].append("b")
    given["meta"]["new"] = 1
    assert create_operation(request, impersonating=False).body == before
    assert request.extra == {"meta": {"tags": ["a"]}}


async def test_a_created_answer_without_the_secret_is_kept_as_it_came() -> None:
    secret = ClientSecret("sk_live_abc/def+ghi")
    body = b'{"scheduling_request": {"id": "srq_1"}}'
    assert secret.redact_bytes(body) is body
    echoed = b'{"note": "sk_live_abc%2Fdef%2Bghi"}'
    assert b"sk_live" not in secret.redact_bytes(echoed)
    assert secret.redact_bytes(b'{"n": "sk_live_abc/def+ghi"}') == b'{"n": "[secret]"}'


# -- the SQLite ledger's database thread ---------------------------------------------------------


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
async def test_a_database_thread_that_dies_is_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = SQLiteLedger(tmp_path / "l.db", timeout=0.5)
    real = SQLiteLedger._serve_jobs
    calls = 0

    def dies_once(self: SQLiteLedger, jobs: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("a bug in the database thread")
        real(self, jobs)

    monkeypatch.setattr(SQLiteLedger, "_serve_jobs", dies_once)
    with pytest.raises(LedgerUnavailableError, match=r"within 0\.5 s"):
        await ledger.get("k")  # its thread died with the job
    assert await ledger.get("k") is None  # a new thread answers
    entry = await ledger.claim("k", "fp", owner="o")
    assert entry.held_by("o")
    await ledger.aclose()


def test_a_stuck_database_thread_fails_the_calls_of_every_loop_in_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The watchdog, one per loop, not the thread, fails the calls: the thread is stuck.
    ledger = SQLiteLedger(tmp_path / "l.db", timeout=0.4)
    stuck = threading.Event()
    real = SQLiteLedger._transaction

    def hangs(self: SQLiteLedger, db: Any, jobs: Any) -> None:
        stuck.wait(5)  # a disk that does not answer
        real(self, db, jobs)

    monkeypatch.setattr(SQLiteLedger, "_transaction", hangs)

    async def one_call() -> float:
        started = time.monotonic()
        with pytest.raises(LedgerUnavailableError, match=r"within 0\.4 s"):
            await ledger.claim("k", "fp", owner="o")
        return time.monotonic() - started

    elapsed: list[float] = []
    others = [threading.Thread(target=lambda: elapsed.append(asyncio.run(one_call())))]
    for thread in others:
        thread.start()
    elapsed.append(asyncio.run(one_call()))
    for thread in others:
        thread.join(5)
    stuck.set()
    asyncio.run(ledger.aclose())
    assert len(elapsed) == 2
    assert all(0.3 <= took < 1.5 for took in elapsed), elapsed


def test_an_event_loop_that_made_keyed_creates_can_be_collected(tmp_path: Path) -> None:
    # A service that runs asyncio.run per job must not keep every finished loop alive.
    import gc
    import weakref

    ledger = SQLiteLedger(tmp_path / "l.db")
    loops: list[weakref.ref[asyncio.AbstractEventLoop]] = []

    async def job(i: int) -> None:
        loops.append(weakref.ref(asyncio.get_running_loop()))
        fake = FakeCronofy(members=["acc_1"], rate_limit=None)
        async with fake.api(ledger=ledger, rate_limit=None) as api:
            await api.create_scheduling_request(invite(f"p{i}@example.com"), idempotency_key=str(i))
        await ledger.aclose()

    for i in range(3):
        asyncio.run(job(i))
    gc.collect()
    assert [ref() for ref in loops[:-1]] == [None, None]  # the last may be cached, weakly
    assert loops[-1]() is None


async def test_a_ledger_whose_thread_could_not_start_says_so_and_recovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_start = threading.Thread.start
    failures = [RuntimeError("can't start new thread")]

    def flaky_start(self: threading.Thread) -> None:
        if self.name == "cronofy-ledger" and failures:
            raise failures.pop()
        real_start(self)

    monkeypatch.setattr(threading.Thread, "start", flaky_start)
    ledger = SQLiteLedger(tmp_path / "l.db", timeout=1.0)
    with pytest.raises(LedgerUnavailableError, match="could not start its database thread"):
        await ledger.claim("k", "fp", owner="o")
    started = time.monotonic()
    assert (await ledger.claim("k", "fp", owner="o")).held_by("o")  # the next call starts one
    assert time.monotonic() - started < 0.5
    await ledger.aclose()


def test_a_loop_closed_with_a_ledger_call_in_flight_is_freed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gc
    import weakref

    stuck = threading.Event()
    real = SQLiteLedger._transaction

    def hangs(self: SQLiteLedger, db: Any, jobs: Any) -> None:
        stuck.wait(10)
        real(self, db, jobs)

    monkeypatch.setattr(SQLiteLedger, "_transaction", hangs)
    ledger = SQLiteLedger(tmp_path / "l.db", timeout=30)
    loop = asyncio.new_event_loop()
    task = loop.create_task(ledger.claim("k", "fp", owner="o"))
    loop.run_until_complete(asyncio.wait([task], timeout=0.2))
    loop.close()  # given up on, its task never finished nor cancelled
    freed = weakref.ref(loop)
    del loop, task
    stuck.set()
    asyncio.run(ledger.get("other"))  # the thread has let go of the old job
    monkeypatch.undo()
    with warnings.catch_warnings():  # the abandoned task's "destroyed but pending"
        warnings.simplefilter("ignore")
        gc.collect()
    asyncio.run(ledger.aclose())
    assert freed() is None


def test_a_field_given_through_extra_or_by_keyword_is_one_request() -> None:
    from cronofy_async._scheduling_requests import create_operation as scheduling_operation

    def build(event: Event) -> Any:
        request = NewSchedulingRequest(
            host=Host(sub="acc_1"), recipients=[Recipient(email="ada@example.com")], event=event
        )
        operation = scheduling_operation(request, impersonating=False)
        return fingerprint(operation, base_url="https://api.cronofy.com", impersonate=None)

    modelled = build(Event(summary="Intro", duration_minutes=30, locale="en-GB"))
    via_extra = build(Event(summary="Intro", locale="en-GB", extra={"duration": {"minutes": 30}}))
    assert modelled == via_extra


@pytest.mark.parametrize("depth", [450, 900, 5000])
def test_a_deep_extra_is_built_or_refused_naming_extra(depth: int) -> None:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth):
        value = {"k": value}
    if depth > 2000:  # past what JSON can nest here: refused, naming extra
        with pytest.raises(PayloadError, match=r"(recipients|event|extra): is nested too deeply"):
            _scheduler_request({"meta": value})
        return
    operation = create_operation(_scheduler_request({"meta": value}), impersonating=False)
    assert fingerprint(operation, base_url="https://api.cronofy.com", impersonate=None)


# -- after a burst, the idle database thread waits for the next burst's claims ----------------


async def _burst(ledger: SQLiteLedger, prefix: str, size: int = 5) -> None:
    entries = await asyncio.gather(
        *(ledger.claim(f"{prefix}{i}", "fp", owner="me") for i in range(size))
    )
    assert all(entry.held_by("me") for entry in entries)
    for i in range(size):
        await ledger.settle(f"{prefix}{i}", owner="me", state=LedgerState.CREATED, result=b"{}")


async def test_after_a_burst_a_read_release_or_close_is_not_held_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import cronofy_async._sqlite_ledger as module

    # Were the thread to wait out its idle wait for these, each would take 30 s.
    monkeypatch.setattr(module, "_IDLE_WAIT", 30.0)
    monkeypatch.setattr(module, "_BUSY", 60.0)
    ledger = SQLiteLedger(tmp_path / "l.db")
    async with asyncio.timeout(20):
        await _burst(ledger, "a")
        entry = await ledger.get("a0")  # a read: someone waits on it
        assert entry is not None
        assert entry.state is LedgerState.CREATED  # and the outcomes before it are in
        await _burst(ledger, "b")
        await ledger.release("b0", owner="me")  # a no-op release is answered too
        await _burst(ledger, "c")
        await ledger.aclose()  # the stop wakes it
    other = SQLiteLedger(tmp_path / "l.db")
    entry = await other.get("c4")
    await other.aclose()
    assert entry is not None
    assert entry.state is LedgerState.CREATED  # the last outcomes were committed on close


def _created(entry: LedgerEntry | None) -> bool:
    return entry is not None and entry.state is LedgerState.CREATED


async def test_after_a_burst_its_outcomes_reach_other_processes_soon(tmp_path: Path) -> None:
    ledger = SQLiteLedger(tmp_path / "l.db")
    other = SQLiteLedger(tmp_path / "l.db")  # as another process sees the file
    await _burst(ledger, "a")
    async with asyncio.timeout(5):  # the idle wait is 2 ms; a bound far above it
        while not _created(await other.get("a4")):  # noqa: ASYNC110 - as another process polls
            await asyncio.sleep(0.001)
    await ledger.aclose()
    await other.aclose()


# -- a fork between a claim and its outcome ------------------------------------------------------

FORK_BETWEEN = textwrap.dedent(
    """
    import asyncio, ctypes, os, sqlite3, sys
    from cronofy_async import LedgerState, SQLiteLedger

    path, how, then = sys.argv[1:]
    ledger = SQLiteLedger(path, timeout=2.0)
    asyncio.run(ledger.claim("k", "fp", owner="o1"))  # the parent's thread runs at the fork
    pid = os.fork() if how == "os" else ctypes.PyDLL(None).fork()  # "raw": no fork hooks
    if pid == 0:
        async def child():
            if then == "settle":
                await ledger.settle("k", owner="o1", state=LedgerState.CREATED, request_id="r1",
                                    result=b"{}")
            await asyncio.wait_for(ledger.aclose(), 5)
        try:
            asyncio.run(child())
            os._exit(0)
        except TimeoutError:
            os._exit(3)  # aclose() hung on the parent's thread
    _, status = os.waitpid(pid, 0)
    row = sqlite3.connect(path).execute(
        "SELECT state FROM cronofy_idempotency WHERE key = 'k'").fetchone()
    asyncio.run(ledger.aclose())
    print(os.waitstatus_to_exitcode(status), row[0])
    """
)


@pytest.mark.parametrize("how", ["os", "raw"])
@pytest.mark.parametrize("then", ["settle", "close"])
def test_a_child_forked_between_a_claim_and_its_outcome_records_it_and_closes(
    tmp_path: Path, how: str, then: str
) -> None:
    done = _run_script(FORK_BETWEEN, str(tmp_path / "l.db"), how, then)
    code, state = done.stdout.split()
    assert code == "0"  # aclose() returned
    # Without fork hooks the child refuses the file its parent had open: the claim lapses
    # to UNKNOWN, never sent again by itself.
    assert state == ("created" if then == "settle" and how == "os" else "sending")
