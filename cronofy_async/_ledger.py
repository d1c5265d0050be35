"""
The idempotency ledger: what each key's create became, so that no invite is sent twice.

A ledger maps an idempotency key to a `LedgerEntry`: the fingerprint of what the key stands
for, and the state of its one send. The rules of that state machine are pure functions here
(`claim_transition`, `settle_transition`, `release_transition`, `renew_transition`), so the
in-memory and SQLite ledgers share them; the Redis ledger runs the same rules in Lua::

    absent / FAILED / expired ──claim──▶ SENDING (owner, lease)
    SENDING ──settle──▶ CREATED | FAILED | UNKNOWN
    SENDING ──release (nothing sent)──▶ absent (or UNKNOWN again, if it resent an UNKNOWN)
    SENDING past its lease (holder died) ──▶ UNKNOWN
    UNKNOWN ──claim with resend_unknown──▶ SENDING
"""

from __future__ import annotations

import enum
import time
from datetime import UTC, datetime
from types import TracebackType
from typing import Final, Protocol, Self, runtime_checkable

import attrs

from ._errors import ConfigurationError

__all__ = [
    "DEFAULT_LEASE",
    "DEFAULT_LEDGER_TIMEOUT",
    "DEFAULT_TTL",
    "DEFAULT_WAIT",
    "Ledger",
    "LedgerEntry",
    "LedgerState",
    "MemoryLedger",
    "check_ledger_options",
    "claim_transition",
    "release_transition",
    "renew_transition",
    "settle_transition",
]

DEFAULT_TTL: Final = 7 * 24 * 3600.0
"""Seconds an entry is kept after its last change: 7 days."""
DEFAULT_LEASE: Final = 30.0
"""Seconds a claim lives without renewal; a holder that dies leaves its key `UNKNOWN` after it."""
DEFAULT_WAIT: Final = 60.0
"""Seconds a call waits for another call's outcome with the same key before it gives up."""
DEFAULT_LEDGER_TIMEOUT: Final = 5.0
"""Seconds one exchange with a ledger may take before `LedgerUnavailableError`."""


class LedgerState(enum.StrEnum):
    """The state of one idempotency key's send."""

    SENDING = "sending"
    """Claimed: a call is sending it now (or died doing so, until its lease runs out)."""
    CREATED = "created"
    """Created; the entry holds Cronofy's answer, which every later call gets back."""
    FAILED = "failed"
    """Proved not created (a 4xx, a connection never made, a 429 after retries): key free."""
    UNKNOWN = "unknown"
    """It may have been created: never sent again unless a call says ``resend_unknown=True``."""


def _moment(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _changed(entry: LedgerEntry, **changes: object) -> LedgerEntry:
    """`entry` with `changes`: attrs.evolve without its introspection, run twice per create."""
    fields = {
        "key": entry.key,
        "state": entry.state,
        "fingerprint": entry.fingerprint,
        "created_at": entry.created_at,
        "updated_at": entry.updated_at,
        "expires_at": entry.expires_at,
        "request_id": entry.request_id,
        "owner": entry.owner,
        "lease_expires": entry.lease_expires,
        "result": entry.result,
        "resending": entry.resending,
    }
    fields.update(changes)
    return LedgerEntry(**fields)  # type: ignore[arg-type]


@attrs.frozen(kw_only=True)
class LedgerEntry:
    """
    What a ledger holds for one idempotency key: never the client secret.

    ::

        entry = await api.ledger.get("order-42")
        if entry is not None and entry.state is LedgerState.CREATED:
            print(entry.request_id, entry.created_at)
    """

    key: str
    """The idempotency key."""
    state: LedgerState
    """What became of its send."""
    fingerprint: str
    """A digest of what the key was used for: method, path, base URL, impersonated sub, body."""
    created_at: datetime
    """When the key was first claimed (UTC)."""
    updated_at: datetime
    """When the entry last changed (UTC)."""
    expires_at: datetime
    """When the entry is forgotten (UTC): `updated_at` plus the ledger's TTL."""
    request_id: str | None = None
    """The created request's id (``srq_...``) when `CREATED`, else ``None``."""
    owner: str | None = attrs.field(default=None, repr=False)
    """Who holds the claim while `SENDING`."""
    lease_expires: float | None = attrs.field(default=None, repr=False)
    """When the claim is taken for dead (seconds since the epoch) while `SENDING`."""
    result: bytes | None = attrs.field(default=None, repr=False)
    """Cronofy's answer to the create, when `CREATED`: what a replay is read from."""
    resending: bool = attrs.field(default=False, repr=False)
    """The claim was taken over an `UNKNOWN` (``resend_unknown``): a release restores it."""
    lapsed: bool = attrs.field(default=False, repr=False, eq=False)
    """
    This very answer found a claim past its lease and made it `UNKNOWN`: its holder died
    mid-send and never reported it. Never stored: only the first to see the lapse is told.
    """

    def held_by(self, owner: str) -> bool:
        """Whether `owner` holds this entry's claim (it may send)."""
        return self.state is LedgerState.SENDING and self.owner == owner

    def as_of(self, now: float) -> LedgerEntry | None:
        """
        The entry as it stands at `now`: ``None`` once expired, `UNKNOWN` past its lease.

        A claim whose holder stopped renewing it may have sent: it is never free again.
        """
        if self.expires_at.timestamp() <= now:
            return None
        if self.state is LedgerState.SENDING and (self.lease_expires or 0.0) <= now:
            return _changed(
                self,
                state=LedgerState.UNKNOWN,
                owner=None,
                lease_expires=None,
                resending=False,
                updated_at=_moment(now),
                lapsed=True,
            )
        return self


# -- the rules, shared by every ledger in Python ---------------------------------------------


def claim_transition(
    current: LedgerEntry | None,
    *,
    key: str,
    fingerprint: str,
    owner: str,
    resend_unknown: bool,
    now: float,
    lease: float,
    ttl: float,
) -> tuple[LedgerEntry, bool]:
    """
    The entry after `owner` asks to send `key`, and whether it must be written.

    The claim is granted (the result is `SENDING` held by `owner`) when the key is free:
    absent, expired or `FAILED`; or `UNKNOWN` with the same fingerprint and `resend_unknown`.
    Otherwise the entry as it stands is returned for the caller to act on.
    """
    before = current
    current = current.as_of(now) if current is not None else None
    free = current is None or current.state is LedgerState.FAILED
    takeover = (
        current is not None
        and current.state is LedgerState.UNKNOWN
        and resend_unknown
        and current.fingerprint == fingerprint
    )
    if free or takeover:
        claimed = LedgerEntry(
            key=key,
            state=LedgerState.SENDING,
            fingerprint=fingerprint,
            created_at=_moment(now) if current is None or free else current.created_at,
            updated_at=_moment(now),
            expires_at=_moment(now + ttl),
            owner=owner,
            lease_expires=now + lease,
            resending=takeover,
        )
        return claimed, True
    assert current is not None  # noqa: S101 - free covers None
    return current, current is not before


def settle_transition(
    current: LedgerEntry | None,
    *,
    owner: str,
    state: LedgerState,
    request_id: str | None,
    result: bytes | None,
    now: float,
    ttl: float,
) -> LedgerEntry | None:
    """
    The entry after `owner` reports its send's outcome, or ``None`` to leave it as it is.

    Applied while `owner` holds the claim (even past its lease). When the claim lapsed to
    `UNKNOWN` and no one took the key over, only a `CREATED` is applied: a late "it exists"
    is better knowledge than "unknown", but a late "it failed" could free a key that another
    resend since made.
    """
    if state is LedgerState.SENDING:
        raise ValueError("a send settles as CREATED, FAILED or UNKNOWN, not SENDING")
    if current is None:
        return None
    held = current.state is LedgerState.SENDING and current.owner == owner
    lapsed = current.state is LedgerState.UNKNOWN and state is LedgerState.CREATED
    if not (held or lapsed):
        return None
    if held and current.resending and state is LedgerState.FAILED:
        # A resend that failed proves nothing of the earlier send, which may have created it.
        state = LedgerState.UNKNOWN
    created = state is LedgerState.CREATED
    return _changed(
        current,
        state=state,
        request_id=request_id if created else None,
        result=result if created else None,
        owner=None,
        lease_expires=None,
        resending=False,
        updated_at=_moment(now),
        expires_at=_moment(now + ttl),
    )


def release_transition(
    current: LedgerEntry | None, *, owner: str, now: float
) -> tuple[LedgerEntry | None, bool]:
    """
    The entry after `owner` gives its claim back unsent, and whether anything changed.

    The key is free again (``None``), or `UNKNOWN` again if the claim resent an `UNKNOWN`.
    """
    if current is None or not current.held_by(owner):
        return current, False
    if current.resending:
        return (
            _changed(
                current,
                state=LedgerState.UNKNOWN,
                owner=None,
                lease_expires=None,
                resending=False,
                updated_at=_moment(now),
            ),
            True,
        )
    return None, True


def renew_transition(
    current: LedgerEntry | None, *, owner: str, now: float, lease: float, ttl: float
) -> LedgerEntry | None:
    """
    The entry with `owner`'s lease moved to `now` + `lease`; ``None`` if not its claim.

    Its expiry moves too: a claim still held must never expire under its holder (a call that
    outlasts the TTL would otherwise leave the key free for another process to send).
    """
    if current is None or not current.held_by(owner) or (current.lease_expires or 0) <= now:
        return None
    return _changed(current, lease_expires=now + lease, expires_at=_moment(now + ttl))


_LONGEST_TTL: Final = 10 * 365.25 * 86400


def check_ledger_options(
    kind: str, *, ttl: object, lease: object, wait: object, timeout: object
) -> tuple[float, float, float, float]:
    """Refuse a TTL, lease, wait or timeout that is not a positive, finite number of seconds."""
    checked = []
    for name, value in (("ttl", ttl), ("lease", lease), ("wait", wait), ("timeout", timeout)):
        if (
            not isinstance(value, int | float)
            or isinstance(value, bool)
            or not 0 < value < float("inf")
        ):
            raise ConfigurationError(
                f"{kind} {name} must be a positive number of seconds, got {value!r}"
            )
        checked.append(float(value))
    ttl_, lease_, wait_, timeout_ = checked
    if ttl_ > _LONGEST_TTL:
        # Dates that far ahead overflow: every create would fail, not this line.
        raise ConfigurationError(
            f"{kind} ttl must be at most {_LONGEST_TTL:g} s (ten years), got {ttl_:g}"
        )
    if lease_ >= ttl_:
        raise ConfigurationError(f"{kind} lease ({lease_:g} s) must be shorter than ttl")
    return ttl_, lease_, wait_, timeout_


# -- the protocol ------------------------------------------------------------------------------


@runtime_checkable
class Ledger(Protocol):
    """
    Where idempotency keys and their outcomes are kept.

    `MemoryLedger` for one process, `SQLiteLedger` for one machine, and
    ``cronofy_async.redis.RedisLedger`` for many.
    ``claim`` must be atomic across every process that shares the ledger: of two callers
    claiming one free key, exactly one is granted it. Every method raises
    `LedgerUnavailableError` when the ledger cannot be reached in time::

        api = AsyncSchedulerAPI(ledger=SQLiteLedger("invites.db"))
        await api.create_scheduling_request(request, idempotency_key="order-42")
        entry = await api.ledger.get("order-42")
    """

    lease: float
    """Seconds a claim lives unless renewed."""
    wait: float
    """Seconds a call waits for another holder's outcome before `OutcomeUnknownError`."""

    async def get(self, key: str) -> LedgerEntry | None:
        """The entry for `key` as it stands now, or ``None``."""
        ...

    async def claim(
        self, key: str, fingerprint: str, *, owner: str, resend_unknown: bool = False
    ) -> LedgerEntry:
        """Claim `key` for `owner`: granted if the entry returned is `held_by` `owner`."""
        ...

    async def renew(self, key: str, *, owner: str) -> None:
        """Extend `owner`'s claim on `key` by a lease from now (nothing if not held)."""
        ...

    async def settle(
        self,
        key: str,
        *,
        owner: str,
        state: LedgerState,
        request_id: str | None = None,
        result: bytes | None = None,
    ) -> None:
        """Record the outcome of `owner`'s send of `key`."""
        ...

    async def release(self, key: str, *, owner: str) -> None:
        """Give `owner`'s claim on `key` back: nothing was sent."""
        ...

    async def aclose(self) -> None:
        """Let go of what the ledger holds open (a file, a connection)."""
        ...


class MemoryLedger:
    """
    A ledger in this process's memory: keys are kept only as long as the process lives.

    What ``idempotency_key=`` uses when the API object has no ledger: it stops a double
    click or a retried tool call in one process from inviting twice, but not a restart or a
    second process (use `SQLiteLedger` or ``RedisLedger`` for those)::

        api = AsyncSchedulerAPI(ledger=MemoryLedger())

    Args:
        ttl: seconds an entry is kept after its last change (7 days).
        lease: seconds a claim lives unless renewed.
        wait: seconds a call waits for another call's outcome with the same key.

    """

    def __init__(
        self, *, ttl: float = DEFAULT_TTL, lease: float = DEFAULT_LEASE, wait: float = DEFAULT_WAIT
    ) -> None:
        self.ttl, self.lease, self.wait, _ = check_ledger_options(
            "MemoryLedger", ttl=ttl, lease=lease, wait=wait, timeout=1.0
        )
        self._entries: dict[str, LedgerEntry] = {}
        self._writes = 0
        self._purge_at = 1024

    def __repr__(self) -> str:
        return f"<MemoryLedger entries={len(self._entries)}>"

    def _now(self) -> float:
        return time.time()

    def _current(self, key: str, now: float) -> LedgerEntry | None:
        entry = self._entries.get(key)
        if entry is not None and entry.expires_at.timestamp() <= now:
            del self._entries[key]
            return None
        return entry

    def _write(self, key: str, entry: LedgerEntry | None) -> None:
        if entry is None:
            self._entries.pop(key, None)
        else:
            self._entries[key] = entry
        self._writes += 1
        if self._writes >= self._purge_at:
            # Expired entries are purged lazily, once per as many writes as there are
            # entries: amortised, a write costs the same however many keys are kept.
            now = self._now()
            self._entries = {
                k: e for k, e in self._entries.items() if e.expires_at.timestamp() > now
            }
            self._purge_at = self._writes + max(1024, len(self._entries))

    async def get(self, key: str) -> LedgerEntry | None:
        """The entry for `key` as it stands now, or ``None``."""
        now = self._now()
        entry = self._current(key, now)
        return entry.as_of(now) if entry is not None else None

    async def claim(
        self, key: str, fingerprint: str, *, owner: str, resend_unknown: bool = False
    ) -> LedgerEntry:
        """Claim `key` for `owner` (see `Ledger.claim`)."""
        now = self._now()
        entry, changed = claim_transition(
            self._current(key, now),
            key=key,
            fingerprint=fingerprint,
            owner=owner,
            resend_unknown=resend_unknown,
            now=now,
            lease=self.lease,
            ttl=self.ttl,
        )
        if changed:
            # The lapse is news to this caller only: what is kept says nothing of it.
            self._write(key, _changed(entry) if entry.lapsed else entry)
        return entry

    async def renew(self, key: str, *, owner: str) -> None:
        """Extend `owner`'s claim on `key` (see `Ledger.renew`)."""
        now = self._now()
        entry = renew_transition(
            self._current(key, now), owner=owner, now=now, lease=self.lease, ttl=self.ttl
        )
        if entry is not None:
            self._write(key, entry)

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
        now = self._now()
        entry = settle_transition(
            self._current(key, now),
            owner=owner,
            state=state,
            request_id=request_id,
            result=result,
            now=now,
            ttl=self.ttl,
        )
        if entry is not None:
            self._write(key, entry)

    async def release(self, key: str, *, owner: str) -> None:
        """Give `owner`'s claim back unsent (see `Ledger.release`)."""
        now = self._now()
        entry, changed = release_transition(self._current(key, now), owner=owner, now=now)
        if changed:
            self._write(key, entry)

    async def aclose(self) -> None:
        """Nothing to let go of: the entries stay until the object is gone."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
