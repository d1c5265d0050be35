"""
`SQLiteLedger`: idempotency keys in one SQLite file, shared by the processes of one machine.

The standard library's ``sqlite3``, in WAL mode, with every transaction ``BEGIN IMMEDIATE``:
SQLite's own file lock makes a claim atomic across processes. The database is used from one
thread of the ledger's own, never from the event loop, and the requests that arrive while it
works are run together in one transaction (one commit, one ``fsync``, for all of them), so
many creates in flight cost few commits. The rules of each change are `_ledger`'s.

Only a transaction that holds a claim (the intent, recorded before a request's bytes leave)
waits for ``fsync`` (``synchronous=FULL``); one of outcomes, renewals and releases only
(``synchronous=NORMAL``) is safe from a killed process but not from a power cut until the
next claim's ``fsync`` carries it. That is enough: an outcome lost with the power leaves its
claim to lapse to `UNKNOWN`, which is never sent again by itself.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import math
import os
import queue
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self, TypeVar

import attrs

from ._errors import LedgerUnavailableError
from ._ledger import (
    DEFAULT_LEASE,
    DEFAULT_LEDGER_TIMEOUT,
    DEFAULT_TTL,
    DEFAULT_WAIT,
    LedgerEntry,
    LedgerState,
    check_ledger_options,
    claim_transition,
    release_transition,
    renew_transition,
    settle_transition,
)

__all__ = ["SQLiteLedger"]

logger: Final = logging.getLogger("cronofy_async")

T = TypeVar("T")

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS cronofy_idempotency (
    key TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    state TEXT NOT NULL,
    owner TEXT,
    lease_expires REAL,
    request_id TEXT,
    result BLOB,
    resending INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    expires_at REAL NOT NULL
) WITHOUT ROWID
"""
_COLUMNS: Final = (
    "key, fingerprint, state, owner, lease_expires, request_id, result, resending, "
    "created_at, updated_at, expires_at"
)
_SELECT: Final = f"SELECT {_COLUMNS} FROM cronofy_idempotency WHERE key = ?"  # noqa: S608
_VALUES: Final = f"cronofy_idempotency ({_COLUMNS}) VALUES ({', '.join('?' * 11)})"
_UPSERT: Final = f"INSERT OR REPLACE INTO {_VALUES}"
_INSERT_NEW: Final = f"INSERT INTO {_VALUES} ON CONFLICT (key) DO NOTHING"
# A settle of a claim its owner still holds, not a resend: the common case, in one statement.
# Anything else (lapsed, resending, taken over) reads the row and applies settle_transition.
_SETTLE_HELD: Final = (
    "UPDATE cronofy_idempotency SET state = ?, request_id = ?, result = ?, owner = NULL, "
    "lease_expires = NULL, resending = 0, updated_at = ?, expires_at = ? "
    "WHERE key = ? AND state = 'sending' AND owner = ? AND resending = 0 AND expires_at > ?"
)
_DELETE: Final = "DELETE FROM cronofy_idempotency WHERE key = ?"
_PURGE: Final = "DELETE FROM cronofy_idempotency WHERE expires_at <= ?"
_PURGE_EVERY: Final = 1000
"""Writes between two purges of expired entries."""
_GROUP: Final = 256
"""The most requests run in one transaction."""
_LINGER: Final = 0.001
"""The longest a busy database thread waits for more claims to share one disk sync."""
_IDLE_WAIT: Final = _LINGER
"""The longest an idle thread that just committed a burst waits for the next one's claims."""
_BUSY: Final = 0.02
"""A thread that committed this recently is busy: a lone call after a pause never lingers."""


def lingers(group: list[Any], *, since_durable: float, claims_then: int) -> bool:
    """
    Whether the database thread waits `_LINGER` for more claims before committing `group`.

    Only when claims are arriving together: the last durable commit, `since_durable` seconds
    ago (within `_BUSY`), carried more than one. A service's lone create (a claim right after
    the previous create's outcome) never waits for claims that are not coming.

    >>> claim = _Job(lambda db, now: None, None, None, 0.0, True)
    >>> lingers([claim], since_durable=0.001, claims_then=1)
    False
    >>> lingers([claim], since_durable=0.001, claims_then=5)
    True
    """
    return (
        claims_then > 1
        and since_durable < _BUSY
        and any(isinstance(j, _Job) and j.durable for j in group)
    )


class _Channel:
    """
    One database thread's jobs, and how it waits for the claims of a burst.

    A lingering thread waits for a count of claims, not on the queue: a job put while the
    thread waits on the queue wakes it (a context switch and a turn of the GIL per job), and
    a thread asleep for fixed steps wakes for nothing. Here the claim that completes the count
    wakes it, once.

    Its own lock, the only one the database thread takes: a process forked while the thread
    held the ledger's lock would find that lock held forever (the thread is not copied),
    whereas a forked child never uses its parent's channel.
    """

    __slots__ = (
        "arrived",
        "claims_put",
        "dead",
        "jobs",
        "lock",
        "urgent_put",
        "urgent_taken",
        "wake_at",
    )

    def __init__(self) -> None:
        self.jobs: queue.SimpleQueue[_Job | object] = queue.SimpleQueue()
        self.lock = threading.Lock()
        self.claims_put = 0
        """Claims put so far (the thread counts those it took)."""
        self.wake_at = math.inf
        """The count of claims put that wakes the lingering thread."""
        self.urgent_put = 0
        """Jobs put that no one may wait for (`_urgent`)."""
        self.urgent_taken = 0
        """Of them, those the thread took (only it writes this)."""
        self.arrived = threading.Event()
        self.dead = False
        """Its thread ended otherwise than by a stop: the next job starts another."""

    def put(self, job: _Job | object) -> None:
        """Queue `job`."""
        self.jobs.put(job)
        claim = job is _STOP or (isinstance(job, _Job) and job.durable)
        if claim or _urgent(job):
            with self.lock:
                if claim:
                    self.claims_put += 1
                if _urgent(job):
                    self.urgent_put += 1
                elif self.claims_put < self.wake_at:
                    return
                self.wake_at = math.inf
                self.arrived.set()


def _urgent(job: _Job | object) -> bool:
    """A stop, or a job whose caller waits that is no claim (a read, a release): no waiting."""
    return job is _STOP or (isinstance(job, _Job) and not job.durable and job.future is not None)


def _drain(channel: _Channel, group: list[_Job | object]) -> int:
    """Move what `channel` holds into `group`, up to `_GROUP`, never past a stop; its claims."""
    claims = 0
    jobs = channel.jobs
    while len(group) < _GROUP and group[-1] is not _STOP:
        try:
            job = jobs.get_nowait()
        except queue.Empty:
            break
        group.append(job)
        if job is _STOP or (isinstance(job, _Job) and job.durable):
            claims += 1
        if _urgent(job):
            channel.urgent_taken += 1
    return claims


def _entry(row: tuple[Any, ...] | None) -> LedgerEntry | None:
    if row is None:
        return None
    key, print_, state, owner, lease, request_id, result, resending, created, updated, expires = row
    return LedgerEntry(
        key=key,
        state=LedgerState(state),
        fingerprint=print_,
        owner=owner,
        lease_expires=lease,
        request_id=request_id,
        result=bytes(result) if result is not None else None,
        resending=bool(resending),
        created_at=datetime.fromtimestamp(created, UTC),
        updated_at=datetime.fromtimestamp(updated, UTC),
        expires_at=datetime.fromtimestamp(expires, UTC),
    )


def _live(row: tuple[Any, ...] | None, now: float) -> LedgerEntry | None:
    """The entry of `row` unless it has expired: an expired row is no entry, as in memory."""
    entry = _entry(row)
    if entry is None or entry.expires_at.timestamp() <= now:
        return None
    return entry


def _row(entry: LedgerEntry) -> tuple[Any, ...]:
    return (
        entry.key,
        entry.fingerprint,
        entry.state.value,
        entry.owner,
        entry.lease_expires,
        entry.request_id,
        entry.result,
        int(entry.resending),
        entry.created_at.timestamp(),
        entry.updated_at.timestamp(),
        entry.expires_at.timestamp(),
    )


@attrs.define(eq=False)
class _Job:
    """One request to the database thread, and where its answer goes."""

    work: Callable[[sqlite3.Connection, float], Any]
    loop: asyncio.AbstractEventLoop | None
    """Where its caller waits; ``None`` when no one waits (`SQLiteLedger._submit`)."""
    future: asyncio.Future[Any] | None
    deadline: float
    durable: bool
    """Whether its commit must reach the disk before it is answered (a claim)."""

    @property
    def abandoned(self) -> bool:
        """Its caller gave up (a timeout, a cancel): nothing of it may be committed."""
        return self.future is not None and self.future.done()


_STOP: Final = object()
_SYNC: Final = {True: "PRAGMA synchronous=FULL", False: "PRAGMA synchronous=NORMAL"}


_ALL: Final[weakref.WeakSet[SQLiteLedger]] = weakref.WeakSet()
"""Every ledger of this process: drained when the interpreter exits, closed before a fork."""


@atexit.register
def _drain_at_exit() -> None:
    # A create returns before its queued outcome is committed; a script that ends without
    # aclose() must still leave it CREATED, not a claim that lapses to UNKNOWN. The database
    # threads are daemons, frozen once atexit is over: each finishes its queue first.
    for ledger in list(_ALL):
        thread = ledger._stop()
        if thread is not None:
            thread.join(ledger.timeout)


_OPEN: Final[dict[int, tuple[int, str]]] = {}
"""The connections open now, by id: (the process that opened it, the file's real path)."""
_forking: list[SQLiteLedger] = []


class _CopiedOpen(sqlite3.OperationalError):
    """The file was open in the process this one was copied from: SQLite would split."""


def _before_fork() -> None:
    # SQLite keeps the file locks of a process in a table of its own, which a forked child
    # inherits without the locks themselves: a connection the child opens to a file its
    # parent had open believes it holds locks it does not, and when the parent then closes
    # its own, the two processes no longer see each other's writes (both could send one key).
    # So every database thread finishes its queue and closes the file before a fork; the
    # first job after it opens the file again, in the parent and in the child.
    global _forking  # handed from this hook to the after-fork ones
    ledgers = list(_ALL)
    for ledger in ledgers:
        ledger._after_copy()  # this process may itself be a copy that has not used it yet
        ledger._lock.acquire()  # held over the fork: no copy of a lock held by another thread
        ledger._stop_locked()
    # One deadline for them all: a fork (and the calls waiting on these locks meanwhile)
    # waits at most the longest timeout, not one per ledger. A thread still busy past it
    # (the file locked by another process) keeps the file open: the child refuses the file.
    deadline = time.monotonic() + max((ledger.timeout for ledger in ledgers), default=0.0)
    for ledger in ledgers:
        for thread in ledger._stopping:  # this one, and any an aclose() is waiting for
            thread.join(max(0.0, deadline - time.monotonic()))  # it never takes the lock
    _forking = ledgers


def _after_fork_in_parent() -> None:
    global _forking
    # Taken before the locks are released: a fork by another thread may then begin.
    ledgers, _forking = _forking, []
    for ledger in ledgers:
        ledger._lock.release()


def _after_fork_in_child() -> None:
    global _forking
    _forking = []  # each ledger's copied lock is replaced on first use (_after_copy)


os.register_at_fork(
    before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child
)


class _Expired(Exception):  # noqa: N818 - a signal between the timer and the caller
    """The ledger's timeout passed before the database thread answered."""


_TICKS: Final = 20
"""How many looks a watchdog takes per timeout: a call fails within its last twentieth."""


class _Watchdog:
    """
    Fails a loop's calls to one ledger that the database thread has not answered in time.

    One timer for them all, not one per call: a timer per claim kept thousands of cancelled
    handles in the loop's heap, each push a dozen comparisons in Python. A call is failed
    between ``timeout - timeout / 20`` and ``timeout`` after it asked; the thread then skips
    its job, whose caller is gone.
    """

    __slots__ = ("__weakref__", "_handle", "_loop_ref", "_pending", "_tick", "_timeout")

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        # Weakly: the ledger keeps its last watchdog at hand, and must not keep a loop alive.
        self._loop_ref = weakref.ref(loop)
        self._timeout = timeout
        self._tick = timeout / _TICKS
        self._pending: dict[asyncio.Future[Any], float] = {}
        self._handle: asyncio.TimerHandle | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The loop it watches, while it lives."""
        return self._loop_ref()

    def watch(self, future: asyncio.Future[Any]) -> None:
        """Fail `future` with `_Expired` unless it is answered (or forgotten) in time."""
        loop = future.get_loop()
        self._pending[future] = loop.time() + self._timeout - self._tick
        if self._handle is None:
            self._handle = loop.call_later(self._tick, self._check)

    def forget(self, future: asyncio.Future[Any]) -> None:
        """`future`'s call is over."""
        pending = self._pending
        pending.pop(future, None)
        if not pending and self._handle is not None:
            # Idle, no timer: a pending one holds the loop, which then could never be freed.
            self._handle.cancel()
            self._handle = None

    def _check(self) -> None:
        self._handle = None
        loop = self.loop
        if loop is None or not self._pending:
            return
        now = loop.time()
        for future, deadline in list(self._pending.items()):
            if deadline <= now:
                del self._pending[future]
                if not future.done():
                    future.set_exception(_Expired())
        if self._pending:
            self._handle = loop.call_later(self._tick, self._check)


class SQLiteLedger:
    """
    Idempotency keys in a SQLite file: for every process of one machine, and across restarts.

    The embedded default: no server to run. Processes that open the same file share its keys
    (two processes claiming one key: exactly one sends). Each claim is committed, in WAL mode
    with full synchronisation (``fsync``), before the request it guards is sent::

        async with SQLiteLedger("invites.db") as ledger:
            api = AsyncSchedulerAPI(ledger=ledger)
            await api.create_scheduling_request(request, idempotency_key="order-42")

    Not for a file on a network share (NFS, SMB), whose locks SQLite cannot trust; use
    ``cronofy_async.redis.RedisLedger`` across machines.

    A fork (``os.fork``, ``multiprocessing``, a pre-forking server) first closes the file,
    which parent and child open again on their next call. A process copied without Python's
    fork hooks (uWSGI's prefork) while the file was open refuses it: open the ledger after.

    Args:
        path: the database file; its folder must exist. Made on first use.
        ttl: seconds an entry is kept after its last change (7 days); purged lazily.
        lease: seconds a claim lives unless renewed; a process killed mid-send leaves its
            key `LedgerState.UNKNOWN` after it.
        wait: seconds a call waits for another call's outcome with the same key.
        timeout: seconds one exchange may take, waiting for another process's lock
            included, before `LedgerUnavailableError` (5 by default).

    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        ttl: float = DEFAULT_TTL,
        lease: float = DEFAULT_LEASE,
        wait: float = DEFAULT_WAIT,
        timeout: float = DEFAULT_LEDGER_TIMEOUT,
    ) -> None:
        self.path: Final = Path(path)
        """The database file."""
        self.ttl, self.lease, self.wait, self.timeout = check_ledger_options(
            "SQLiteLedger", ttl=ttl, lease=lease, wait=wait, timeout=timeout
        )
        self._channel = _Channel()
        self._thread: threading.Thread | None = None
        self._stopping: list[threading.Thread] = []  # stopped, perhaps still finishing
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._writes = 0
        # Weakly, by the loop's id: a watchdog lives while its calls wait (their frames and its
        # timer hold it), so that a loop closed with a call in flight is freed with it.
        self._watchdogs: weakref.WeakValueDictionary[int, _Watchdog] = weakref.WeakValueDictionary()
        self._last_watchdog: weakref.ref[_Watchdog] | None = None
        _ALL.add(self)

    def __repr__(self) -> str:
        return f"SQLiteLedger({str(self.path)!r})"

    # -- the Ledger protocol -------------------------------------------------------------------

    async def get(self, key: str) -> LedgerEntry | None:
        """The entry for `key` as it stands now, or ``None``."""

        def work(db: sqlite3.Connection, now: float) -> LedgerEntry | None:
            entry = _entry(db.execute(_SELECT, (key,)).fetchone())
            return entry.as_of(now) if entry is not None else None

        result: LedgerEntry | None = await self._run("read the key", work)
        return result

    async def claim(
        self, key: str, fingerprint: str, *, owner: str, resend_unknown: bool = False
    ) -> LedgerEntry:
        """Claim `key` for `owner` (see `Ledger.claim`)."""

        def work(db: sqlite3.Connection, now: float) -> LedgerEntry:
            # A key never seen (the common case) is claimed in one statement; any row at all,
            # expired or not, goes through claim_transition like every other ledger's.
            row = (key, fingerprint, "sending", owner, now + self.lease, None, None, 0, now, now,
                   now + self.ttl)  # fmt: skip
            if db.execute(_INSERT_NEW, row).rowcount == 1:
                self._count_write(db, now)
                at = datetime.fromtimestamp(now, UTC)
                return LedgerEntry(
                    key=key, state=LedgerState.SENDING, fingerprint=fingerprint, created_at=at,
                    updated_at=at, expires_at=datetime.fromtimestamp(now + self.ttl, UTC),
                    owner=owner, lease_expires=now + self.lease,
                )  # fmt: skip
            entry, changed = claim_transition(
                _entry(db.execute(_SELECT, (key,)).fetchone()),
                key=key,
                fingerprint=fingerprint,
                owner=owner,
                resend_unknown=resend_unknown,
                now=now,
                lease=self.lease,
                ttl=self.ttl,
            )
            if changed:
                self._write(db, entry, now)
            return entry

        result: LedgerEntry = await self._run("claim the key", work, durable=True)
        return result

    async def renew(self, key: str, *, owner: str) -> None:
        """Extend `owner`'s claim on `key` (see `Ledger.renew`)."""

        def work(db: sqlite3.Connection, now: float) -> None:
            current = _live(db.execute(_SELECT, (key,)).fetchone(), now)
            entry = renew_transition(current, owner=owner, now=now, lease=self.lease, ttl=self.ttl)
            if entry is not None:
                self._write(db, entry, now)

        await self._run("renew the claim", work)

    async def settle(
        self,
        key: str,
        *,
        owner: str,
        state: LedgerState,
        request_id: str | None = None,
        result: bytes | None = None,
    ) -> None:
        """Record the outcome of `owner`'s send (see `Ledger.settle`)."""
        created = state is LedgerState.CREATED
        value, ttl = state.value, self.ttl  # here, not in the database thread, which is busier

        def work(db: sqlite3.Connection, now: float) -> None:
            if (
                state is not LedgerState.SENDING
                and db.execute(
                    _SETTLE_HELD,
                    (
                        value,
                        request_id if created else None,
                        result if created else None,
                        now,
                        now + ttl,
                        key,
                        owner,
                        now,
                    ),
                ).rowcount
            ):
                self._count_write(db, now)
                return
            entry = settle_transition(
                _live(db.execute(_SELECT, (key,)).fetchone(), now),
                owner=owner,
                state=state,
                request_id=request_id,
                result=result,
                now=now,
                ttl=self.ttl,
            )
            if entry is not None:
                self._write(db, entry, now)

        # Queued, not awaited: the database thread runs requests in order, so anything this
        # process asks of the key next sees it. Should this process die before the commit,
        # the claim lapses to UNKNOWN: never sent again by itself.
        self._submit(work)

    async def release(self, key: str, *, owner: str) -> None:
        """Give `owner`'s claim back unsent (see `Ledger.release`)."""

        def work(db: sqlite3.Connection, now: float) -> None:
            current = _live(db.execute(_SELECT, (key,)).fetchone(), now)
            entry, changed = release_transition(current, owner=owner, now=now)
            if not changed:
                return
            if entry is None:
                db.execute(_DELETE, (key,))
            else:
                self._write(db, entry, now)

        await self._run("give the claim back", work)

    # -- lifecycle -------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Stop the database thread and close the file. Used again, it opens it again."""
        thread = self._stop()
        if thread is not None and thread.is_alive():
            await asyncio.get_running_loop().run_in_executor(None, thread.join)

    def _after_copy(self) -> None:
        """
        In a copy of the process (a forked child), forget the parent's threads and lock.

        The threads did not come along; the lock was copied as it stood, perhaps held by one
        of them. Told by a system call, which holds in a process copied without Python's fork
        hooks (uWSGI's prefork, a restored snapshot), as a hook would not.
        """
        if (pid := os.getpid()) != self._pid:
            self._lock = threading.Lock()
            self._pid, self._thread, self._stopping = pid, None, []

    def _stop(self) -> threading.Thread | None:
        """Ask the database thread to stop once its queue is done; the thread, if any."""
        self._after_copy()  # a child never waits for its parent's thread
        with self._lock:
            return self._stop_locked()

    def _stop_locked(self) -> threading.Thread | None:
        thread, self._thread = self._thread, None
        if thread is not None:
            # Under the lock: no job can follow the stop into this thread's queue.
            self._channel.put(_STOP)
            self._stopping = [t for t in self._stopping if t.is_alive()] + [thread]
        return thread

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- the database thread -------------------------------------------------------------------

    def _write(self, db: sqlite3.Connection, entry: LedgerEntry | None, now: float) -> None:
        if entry is not None:
            db.execute(_UPSERT, _row(entry))
        self._count_write(db, now)

    def _count_write(self, db: sqlite3.Connection, now: float) -> None:
        self._writes += 1
        if self._writes % _PURGE_EVERY == 0:
            db.execute(_PURGE, (now,))

    def _submit(self, work: Callable[[sqlite3.Connection, float], None]) -> None:
        """Queue `work` for the database thread without waiting for it (failures are logged)."""
        self._put(_Job(work, None, None, time.monotonic() + self.timeout, False))

    async def _run(
        self, what: str, work: Callable[[sqlite3.Connection, float], T], *, durable: bool = False
    ) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        job = _Job(work, loop, future, time.monotonic() + self.timeout, durable)
        watchdog = self._watchdog(loop)
        self._put(job)
        watchdog.watch(future)
        try:
            result: T = await future
        except _Expired:
            raise LedgerUnavailableError(
                f"the idempotency ledger {str(self.path)!r} did not {what} within "
                f"{self.timeout:g} s (locked by another process?); nothing was sent"
            ) from None
        except sqlite3.Error as exc:
            raise LedgerUnavailableError(
                f"the idempotency ledger {str(self.path)!r} failed to {what}: "
                f"{type(exc).__name__}: {exc}; nothing was sent"
            ) from exc
        finally:
            watchdog.forget(future)
        return result

    def _watchdog(self, loop: asyncio.AbstractEventLoop) -> _Watchdog:
        """The watchdog of this ledger's calls on `loop` (the last one used kept at hand)."""
        ref = self._last_watchdog
        last = ref() if ref is not None else None
        if last is not None and last.loop is loop:
            return last
        self._after_copy()
        with self._lock:  # loops in several threads may share one ledger
            watchdog = self._watchdogs.get(id(loop))
            if watchdog is None or watchdog.loop is not loop:  # none, or a dead loop's id
                watchdog = self._watchdogs[id(loop)] = _Watchdog(loop, self.timeout)
            self._last_watchdog = weakref.ref(watchdog)
        return watchdog

    def _put(self, job: _Job) -> None:
        """
        Queue `job` for the database thread, starting one (with a queue of its own) if none.

        A forked child's first job starts its own: the parent's thread did not come along.
        Told by a system call per job, which holds in a process copied without Python's fork
        hooks (uWSGI's prefork, a restored snapshot), as a hook would not; an outcome too, since
        a process may fork between a claim and its outcome.
        """
        self._after_copy()
        with self._lock:
            if self._thread is None or self._channel.dead:
                # A fresh queue per thread: a thread being stopped by aclose() keeps its own,
                # so a new one can never take the stop meant for it (aclose() would wait forever).
                channel = _Channel()
                thread = threading.Thread(
                    target=self._serve, args=(channel,), name="cronofy-ledger", daemon=True
                )
                try:
                    thread.start()
                except RuntimeError as exc:  # "can't start new thread": a process limit
                    raise LedgerUnavailableError(
                        f"the idempotency ledger {str(self.path)!r} could not start its "
                        f"database thread ({exc}); nothing was sent"
                    ) from None
                self._channel, self._thread = channel, thread
            self._channel.put(job)

    def _connect(self) -> sqlite3.Connection:
        real, pid = os.path.realpath(self.path), os.getpid()
        if any(path == real and owner != pid for owner, path in _OPEN.values()):
            # Copied without Python's fork hooks while the file was open (see _before_fork).
            raise _CopiedOpen(
                "this process is a copy of one that had the file open (forked without "
                "Python's fork hooks, as by uWSGI's prefork, or while the ledger was held up "
                "past its timeout); SQLite cannot be shared across such a copy: open the "
                "ledger only after the fork (uWSGI: lazy-apps)"
            )
        db = sqlite3.connect(
            self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False
        )
        _OPEN[id(db)] = (pid, real)
        try:
            deadline = time.monotonic() + self.timeout
            while True:
                # Switching to WAL, or making the table, while another process opens the same
                # new file answers "locked" at once, without waiting: wait here (this is the
                # database thread, never the event loop), within the ledger's timeout.
                try:
                    db.execute("PRAGMA journal_mode=WAL")
                    db.execute(_SYNC[True])
                    db.execute(_SCHEMA)
                    break
                except sqlite3.OperationalError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.01)
        except BaseException:
            _close(db)
            raise
        return db

    def _serve(self, channel: _Channel) -> None:
        try:
            self._serve_jobs(channel)
        finally:
            # Ended otherwise than by a stop (a bug of ours): the next job starts a new thread.
            channel.dead = True

    def _serve_jobs(self, channel: _Channel) -> None:
        db: sqlite3.Connection | None = None
        synced = True  # what _connect sets
        last = -math.inf  # when the last durable transaction ended
        claims_then = 0  # how many claims it carried
        taken = 0  # claims taken from the channel (a stop counts as one)
        try:
            while True:
                if claims_then > 1 and time.monotonic() - last < _BUSY:  # bursts are coming
                    self._await_burst(channel, taken, claims_then)
                first = channel.jobs.get()
                if first is _STOP:
                    return
                if _urgent(first):
                    channel.urgent_taken += 1
                group = [first]
                taken += _drain(channel, group) + (isinstance(first, _Job) and first.durable)
                # Group commit: a claim's commit waits for the disk (fsync), whose CPU cost is
                # per commit, not per claim. Under load, waiting (at most 1 ms) for as many
                # claims as the last commit carried lets one sync serve them all; a lone call
                # never waits.
                if lingers(group, since_durable=time.monotonic() - last, claims_then=claims_then):
                    taken += self._linger(channel, group, taken, claims_then)
                stop = _STOP in group
                live = [j for j in group if isinstance(j, _Job) and not j.abandoned]
                if live:
                    try:
                        if db is None:
                            db, synced = self._connect(), True
                        durable = any(job.durable for job in live)
                        if durable is not synced:
                            db.execute(_SYNC[durable])
                            synced = durable
                        self._transaction(db, live)
                        if durable:
                            last = time.monotonic()
                            claims_then = sum(job.durable for job in live)
                    except sqlite3.Error as exc:
                        if db is not None:
                            _close(db)
                            db = None  # opened afresh next time: the file may be back
                        _answer([(job, exc, True) for job in live])
                if stop:
                    return
        finally:
            if db is not None:
                _close(db)

    def _await_burst(self, channel: _Channel, taken: int, want: int) -> None:
        """
        Idle after a burst's commit: wait, at most `_IDLE_WAIT`, for the next burst's claims.

        Woken by the claim completing the last commit's count, by a job a caller awaits (a
        read, a release) or by a stop; not by the outcomes that come first. Taking each of
        those as it came woke the thread while the event loop was busy with the burst, and
        each wake-up then fought it for the GIL: 1.7 context switches per create, 1.0 now.
        """
        with channel.lock:
            if channel.claims_put - taken >= want or channel.urgent_put > channel.urgent_taken:
                return  # here already
            channel.wake_at = taken + want
            channel.arrived.clear()
        channel.arrived.wait(_IDLE_WAIT)
        with channel.lock:
            channel.wake_at = math.inf

    def _linger(self, channel: _Channel, group: list[_Job | object], taken: int, want: int) -> int:
        """
        Wait until `group` could hold `want` claims, or `_LINGER`; the claims it took.

        From now, not from the oldest claim's arrival: a thread that woke late would then
        commit part of a burst, the next linger would wait for that part's count only, and
        the groups would stay small, each a disk sync.
        """
        missing = want - sum(isinstance(job, _Job) and job.durable for job in group)
        if missing <= 0 or group[-1] is _STOP:
            return 0
        with channel.lock:
            wait = channel.claims_put < taken + missing
            if wait:
                channel.wake_at = taken + missing
                channel.arrived.clear()
        if wait:
            channel.arrived.wait(_LINGER)
            with channel.lock:
                channel.wake_at = math.inf
        return _drain(channel, group)

    def _transaction(self, db: sqlite3.Connection, jobs: list[_Job]) -> None:
        db.execute("BEGIN IMMEDIATE")
        answers: list[tuple[_Job, Any, bool]] = []
        try:
            now = time.time()
            late = time.monotonic()
            for job in jobs:
                if job.abandoned or (job.future is not None and late > job.deadline):
                    # Its caller gave up: nothing of it may be committed. A queued outcome
                    # (no caller waits) is recorded however late: dropping it would leave
                    # the key unknown.
                    continue
                try:
                    answers.append((job, job.work(db, now), False))
                except sqlite3.Error:
                    raise
                except Exception as exc:  # a bug of ours in one job fails that job only
                    answers.append((job, exc, True))
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        _answer(answers)


def _close(db: sqlite3.Connection) -> None:
    _OPEN.pop(id(db), None)
    db.close()


def _answer(answers: list[tuple[_Job, Any, bool]]) -> None:
    """Hand each job's answer to its caller: one wake-up per event loop, not one per job."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Job, Any, bool]]] = {}
    for answer in answers:
        job, value, failed = answer
        if job.loop is None:
            if failed:
                logger.warning("the idempotency ledger failed to record an outcome: %r", value)
            continue
        by_loop.setdefault(job.loop, []).append(answer)
    for loop, given in by_loop.items():
        with contextlib.suppress(RuntimeError):  # the caller's loop is closed: no one waits
            loop.call_soon_threadsafe(_give, given)


def _give(answers: list[tuple[_Job, Any, bool]]) -> None:
    for job, value, failed in answers:
        future = job.future
        if future is not None and not future.done():
            if failed:
                future.set_exception(value)
            else:
                future.set_result(value)
