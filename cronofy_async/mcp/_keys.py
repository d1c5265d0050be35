"""
Which idempotency key a ``create_invite`` rides, so that a retry never invites twice.

A call without ``idempotency_key`` rides the key derived from its arguments (`invite_key`);
a call with one rides that key. Agents do not always retry word for word: a model adds a
key it made up, or drops the one it gave. So the two are linked through the ledger:

- a keyed call whose key is new, made after a keyless call for the same invite (created,
  or being sent now), answers that invite;
- a keyed call that sends claims the arguments' *keyed alias* first and records there what
  became of its send (created, or unknown), so a later keyless call for the same invite
  answers that invite, or says it may exist, and never sends it again; a send proved to
  have failed gives the alias back.

A keyed call never rides another keyed call's invite: a new key with the same arguments is
how an agent sends a second, deliberate invite. In one process, the calls for one invite's
arguments take turns, so a keyed and a keyless call in flight at once see each other's
outcome; across processes sharing a ledger, a keyless call that reads the alias before a
keyed call claims it may still send.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator
from typing import Final

from .._client import AsyncSchedulerAPI
from .._errors import CronofyError, IdempotencyConflictError, OutcomeUnknownError
from .._idempotency import fingerprint
from .._ledger import Ledger, LedgerEntry, LedgerState
from .._scheduling_models import SchedulingRequest
from .._scheduling_requests import NewSchedulingRequest, create_operation
from ._tools import KEY_PREFIX, Invite, invite_answer, invite_key

__all__ = ["keyed_alias", "send_invite"]

_log = logging.getLogger("cronofy_async.mcp")
_ALIAS: Final = KEY_PREFIX + "keyed-"
_LIVE: Final = frozenset({LedgerState.CREATED, LedgerState.SENDING})
_STANDING: Final = frozenset({LedgerState.CREATED, LedgerState.SENDING, LedgerState.UNKNOWN})


def keyed_alias(derived: str) -> str:
    """
    The ledger key under which a keyed call's invite is found by a keyless retry.

    >>> keyed_alias("mcp-invite-0123")
    'mcp-invite-keyed-0123'
    """
    return _ALIAS + derived.removeprefix(KEY_PREFIX)


class _Watch:
    """The pipeline's `on_send`: tells a create answered from the ledger from one sent now."""

    __slots__ = ("replayed_", "sent")

    def __init__(self) -> None:
        self.sent = 0
        self.replayed_ = False

    def __call__(self) -> None:
        self.sent += 1

    def settled(self, maybe_processed: bool) -> None:
        """An attempt failed (the pipeline tells every watcher; nothing to do here)."""

    def replayed(self) -> None:
        """The answer came from the idempotency ledger: nothing was sent."""
        self.replayed_ = True


async def _create(
    api: AsyncSchedulerAPI, request: NewSchedulingRequest, key: str
) -> tuple[SchedulingRequest, bool]:
    watch = _Watch()
    created = await api._create_scheduling(request, watch, idempotency_key=key)
    return created, watch.replayed_


async def _ride(
    api: AsyncSchedulerAPI, request: NewSchedulingRequest, key: str
) -> tuple[SchedulingRequest, bool] | None:
    # Another call's key: the same invite only if what it sent is what this one would.
    try:
        return await _create(api, request, key)
    except IdempotencyConflictError:
        return None


class _Turns:
    """The calls of this process for one invite's arguments, one at a time."""

    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


_TURNS: Final[dict[tuple[int, int, str], _Turns]] = {}


@contextlib.asynccontextmanager
async def _turn(ledger: Ledger, derived: str) -> AsyncIterator[None]:
    """
    Wait for the other calls of this process for the same arguments, keyed or not.

    A keyed and a keyless call for one invite ride different keys: without taking turns,
    each would read the ledger before the other claimed and both would send.
    """
    at = (id(asyncio.get_running_loop()), id(ledger), derived)
    turns = _TURNS.get(at)
    if turns is None:
        turns = _TURNS[at] = _Turns()
    turns.users += 1
    try:
        try:
            async with asyncio.timeout(ledger.wait):
                await turns.lock.acquire()
        except TimeoutError:
            raise OutcomeUnknownError(
                derived, f"another call has been sending it for more than {ledger.wait:g} s"
            ) from None
        try:
            yield
        finally:
            turns.lock.release()
    finally:
        turns.users -= 1
        if turns.users == 0:
            del _TURNS[at]


async def _keyless(
    api: AsyncSchedulerAPI, request: NewSchedulingRequest, derived: str, alias: str
) -> Invite:
    ledger = api.ledger
    mine, keyed = await ledger.get(derived), await ledger.get(alias)
    # What stands under either key is answered, never sent again: the keyless invite if it
    # was created, else a keyed call's (created, being sent, or of unknown outcome).
    order = []
    if mine is not None and mine.state is LedgerState.CREATED:
        order.append(derived)
    if keyed is not None and keyed.state in _STANDING:
        order.append(alias)
    if mine is not None and mine.state in _STANDING and derived not in order:
        order.append(derived)
    conflict: IdempotencyConflictError | None = None
    for key in order or [derived]:
        try:
            created, replayed = await _create(api, request, key)
        except IdempotencyConflictError as exc:
            conflict = conflict or exc
            continue
        return invite_answer(created, key=key, replayed=replayed)
    assert conflict is not None  # noqa: S101 - every key tried conflicted
    raise conflict


def _print(api: AsyncSchedulerAPI, request: NewSchedulingRequest) -> str:
    """The fingerprint the library records for `request` sent through `api`."""
    operation = create_operation(request, impersonating=api.impersonating is not None)
    return fingerprint(operation, base_url=api.base_url, impersonate=api.impersonating)


async def _keep(ledger: Ledger, alias: str, owner: str) -> None:
    """Renew the alias' claim while the keyed call sends (else it lapses to unknown)."""
    while True:
        await asyncio.sleep(ledger.lease / 3)
        with contextlib.suppress(CronofyError):
            await ledger.renew(alias, owner=owner)


async def _claim_alias(ledger: Ledger, alias: str, print_: str) -> str:
    """Claim `alias` for a keyed call about to send; the owner, or "" if not granted."""
    owner = f"mcp-alias-{secrets.token_hex(6)}"
    try:
        # Over an unknown: this keyed call is the agent's deliberate resend after checking.
        claimed = await ledger.claim(alias, print_, owner=owner, resend_unknown=True)
    except asyncio.CancelledError:
        # The claim may have landed as the cancel did: nothing was sent, so give it back.
        with contextlib.suppress(CronofyError):
            await asyncio.shield(ledger.release(alias, owner=owner))
        raise
    except CronofyError as exc:
        _log.warning("create_invite: could not link %s to its arguments (%s)", alias, exc)
        return ""
    return owner if claimed.held_by(owner) else ""


async def _record(ledger: Ledger, key: str, alias: str, owner: str, print_: str) -> None:
    """
    Record under `alias` what became of `key`'s send: created, unknown, or nothing.

    Only a send of these very arguments: a key that already stood for another invite (a
    conflict) leaves the alias as it was.
    """
    try:
        entry: LedgerEntry | None = await ledger.get(key)
        if entry is None or entry.fingerprint != print_:
            await ledger.release(alias, owner=owner)
        elif entry.state is LedgerState.CREATED:
            await ledger.settle(
                alias,
                owner=owner,
                state=LedgerState.CREATED,
                request_id=entry.request_id,
                result=entry.result,
            )
        elif entry.state in (LedgerState.UNKNOWN, LedgerState.SENDING):
            await ledger.settle(alias, owner=owner, state=LedgerState.UNKNOWN)
        else:
            await ledger.release(alias, owner=owner)
    except CronofyError as exc:
        # Left claimed, the alias lapses to unknown: a keyless retry is told it may exist.
        _log.warning("create_invite: could not link %s to its arguments (%s)", key, exc)


async def _keyed(
    api: AsyncSchedulerAPI,
    request: NewSchedulingRequest,
    explicit: str,
    derived: str,
    alias: str,
) -> Invite:
    ledger = api.ledger
    given = await ledger.get(explicit)
    if given is not None and given.state in _STANDING:
        created, replayed = await _create(api, request, explicit)
        return invite_answer(created, key=explicit, replayed=replayed)
    keyless = await ledger.get(derived)
    if keyless is not None and keyless.state in _LIVE:
        routed = await _ride(api, request, derived)
        if routed is not None:
            return invite_answer(routed[0], key=explicit, replayed=routed[1])
    print_ = _print(api, request)
    # A key that is the alias itself (an answer given back) is recorded there by its send.
    owner = await _claim_alias(ledger, alias, print_) if explicit != alias else ""
    keeping = asyncio.ensure_future(_keep(ledger, alias, owner)) if owner else None
    try:
        created, replayed = await _create(api, request, explicit)
    finally:
        if keeping is not None:
            keeping.cancel()
            # Shielded: a cancelled call must still say what became of its send.
            await asyncio.shield(_record(ledger, explicit, alias, owner, print_))
    return invite_answer(created, key=explicit, replayed=replayed)


async def send_invite(
    api: AsyncSchedulerAPI, request: NewSchedulingRequest, explicit: str | None
) -> Invite:
    """
    Create `request` at most once, under `explicit` or the derived key, and say how it went.

    The answer's ``idempotency_key`` is the key to give again for the same invite.
    """
    derived = invite_key(request)
    alias = keyed_alias(derived)
    async with _turn(api.ledger, derived):
        if explicit is None:
            return await _keyless(api, request, derived, alias)
        return await _keyed(api, request, explicit, derived, alias)
