"""
Which idempotency key a ``create_invite`` rides, so that a retry never invites twice.

A call without ``idempotency_key`` rides the key derived from its arguments (`invite_key`);
a call with one rides that key. Agents do not always retry word for word: a model adds a
key it made up, or drops the one it gave. So the two are linked through the ledger:

- a keyed call whose key is new, made after a keyless call for the same invite (created,
  or being sent now), answers that invite;
- a keyed call that sends records what it created under the arguments' *keyed alias* too,
  so a later keyless call for the same invite answers it.

A keyed call never rides another keyed call's invite: a new key with the same arguments is
how an agent sends a second, deliberate invite. Two calls racing, one keyed and one not,
may each send: the link is read from the ledger before sending, not claimed.
"""

from __future__ import annotations

import logging
import secrets
from typing import Final

from .._client import AsyncSchedulerAPI
from .._errors import CronofyError, IdempotencyConflictError
from .._ledger import LedgerEntry, LedgerState
from .._scheduling_models import SchedulingRequest
from .._scheduling_requests import NewSchedulingRequest
from ._tools import KEY_PREFIX, Invite, invite_answer, invite_key

__all__ = ["keyed_alias", "send_invite"]

_log = logging.getLogger("cronofy_async.mcp")
_ALIAS: Final = KEY_PREFIX + "keyed-"
_LIVE: Final = frozenset({LedgerState.CREATED, LedgerState.SENDING})


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


async def _remember(api: AsyncSchedulerAPI, key: str, alias: str) -> None:
    """Copy `key`'s created entry under `alias`; a failure costs only the link."""
    ledger = api.ledger
    owner = f"mcp-alias-{secrets.token_hex(6)}"
    try:
        entry: LedgerEntry | None = await ledger.get(key)
        if entry is None or entry.state is not LedgerState.CREATED:
            return
        claimed = await ledger.claim(alias, entry.fingerprint, owner=owner)
        if claimed.held_by(owner):
            await ledger.settle(
                alias,
                owner=owner,
                state=LedgerState.CREATED,
                request_id=entry.request_id,
                result=entry.result,
            )
    except CronofyError as exc:
        # The invite exists and is answered; only a keyless retry of it would not find it.
        _log.warning("create_invite: could not link %s to its arguments (%s)", key, exc)


async def send_invite(
    api: AsyncSchedulerAPI, request: NewSchedulingRequest, explicit: str | None
) -> Invite:
    """
    Create `request` at most once, under `explicit` or the derived key, and say how it went.

    The answer's ``idempotency_key`` is the key to give again for the same invite.
    """
    derived = invite_key(request)
    alias = keyed_alias(derived)
    ledger = api.ledger
    if explicit is None:
        keyed = await ledger.get(alias)
        if keyed is not None and keyed.state is LedgerState.CREATED:
            routed = await _ride(api, request, alias)
            if routed is not None:
                return invite_answer(routed[0], key=alias, replayed=routed[1])
        created, replayed = await _create(api, request, derived)
        return invite_answer(created, key=derived, replayed=replayed)
    if await ledger.get(explicit) is None:
        keyless = await ledger.get(derived)
        if keyless is not None and keyless.state in _LIVE:
            routed = await _ride(api, request, derived)
            if routed is not None:
                return invite_answer(routed[0], key=explicit, replayed=routed[1])
    created, replayed = await _create(api, request, explicit)
    if not replayed:
        await _remember(api, explicit, alias)
    return invite_answer(created, key=explicit, replayed=replayed)
