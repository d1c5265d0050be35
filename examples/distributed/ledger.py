r"""
The batch's inventory in Redis, and what became of each invite, from the library's RedisLedger.

Each invite is a hash (what to send) in an index (in the order produced). Whether it was sent
is not kept here: every worker creates it with ``idempotency_key=<invite id>`` on one
`cronofy_async.redis.RedisLedger`, which claims the key atomically before the bytes leave and
records the outcome after. So the state of an invite is its ledger entry's::

    no entry ──worker claims──▶ sending ──▶ created | failed | unknown
    sending, its worker killed ──after the lease──▶ unknown (never sent again by itself)

A job redelivered after its worker died finds the key ``sending`` (it waits) or ``unknown``
(it stops): the invite is never sent twice. An invite refused before sending (a bad email)
has no ledger entry: its refusal is noted on its hash.
"""

from __future__ import annotations

import enum
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any, Final

import attrs
import redis.asyncio

from cronofy_async import LedgerEntry, LedgerState
from cronofy_async.redis import RedisLedger

__all__ = ["Invite", "Ledger", "State"]

KEEP_SECONDS: Final = 14 * 24 * 3600
"""How long the inventory and its keys are kept after their last change: to report, follow up."""


class State(enum.StrEnum):
    """Where an invite stands."""

    QUEUED = "queued"
    SENDING = "sending"
    CREATED = "created"
    FAILED = "failed"
    UNKNOWN = "unknown"
    NOT_SENT = "not_sent"
    """What a worker answers for an invite it could not send (a limiter or ledger down)."""


FINAL: Final = frozenset({State.CREATED, State.FAILED, State.UNKNOWN})


@attrs.frozen(kw_only=True)
class Invite:
    """One invite: what it asks for, and what became of it."""

    id: str
    email: str
    display_name: str | None = None
    host: str
    summary: str
    state: State = State.QUEUED
    scheduler_request_id: str | None = None
    select_url: str | None = None
    error: str | None = None
    owner: str | None = None
    """Who holds its claim while sending: the process's pid, then a random part."""


def _select_url(entry: LedgerEntry) -> str | None:
    try:
        answer = json.loads(entry.result or b"null")
        url = answer["scheduler_request"]["recipients"][0]["select_url"]
    except (ValueError, TypeError, KeyError, IndexError):
        return None
    return url if isinstance(url, str) else None


_ADD: Final = """
-- KEYS[1] the invite, KEYS[2] the index; ARGV[1] id, ARGV[2] sequence, ARGV[3] ttl, then fields
local new = redis.call('EXISTS', KEYS[1]) == 0
if new then
  redis.call('HSET', KEYS[1], unpack(ARGV, 4))
  redis.call('ZADD', KEYS[2], 'NX', ARGV[2], ARGV[1])
end
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[3])
return new and 1 or 0
"""


class Ledger:
    """Every invite of one namespace: the inventory, and the idempotency keys it is sent by."""

    def __init__(self, client: redis.asyncio.Redis, namespace: str, *, lease: float = 30.0) -> None:
        self._client = client
        self._prefix = f"cronofy-example:{{{namespace}}}"
        self._index = f"{self._prefix}:invites"
        self._add = client.register_script(_ADD)
        self.keys = RedisLedger(client, namespace=namespace, ttl=KEEP_SECONDS, lease=lease)
        """The library's ledger: what the workers' API objects send through."""

    def _key(self, invite_id: str) -> str:
        return f"{self._prefix}:invite:{invite_id}"

    async def add(self, invite: Invite, sequence: int) -> bool:
        """
        Record `invite`; whether to enqueue it: new, or never sent (no ledger entry).

        An invite queued but not yet run is enqueued again then: harmless, as its key is
        sent once whichever job runs first.
        """
        fields: list[Any] = []
        for name, value in (
            ("email", invite.email),
            ("display_name", invite.display_name or ""),
            ("host", invite.host),
            ("summary", invite.summary),
        ):
            fields += [name, value]
        new = await self._add(
            keys=[self._key(invite.id), self._index],
            args=[invite.id, sequence, KEEP_SECONDS, *fields],
        )
        if new:
            return True
        await self._client.hdel(self._key(invite.id), "refused")
        return await self.keys.get(invite.id) is None

    async def refuse(self, invite_id: str, error: str) -> None:
        """Note that `invite_id` was refused before anything was sent (a bad email, say)."""
        await self._client.hset(self._key(invite_id), "refused", error)

    async def get(self, invite_id: str) -> Invite:
        """One invite, with its state."""
        raw: Any = await self._client.hgetall(self._key(invite_id))
        return await self._invite(invite_id, _decoded(raw))

    async def _invite(self, invite_id: str, fields: Mapping[str, str]) -> Invite:
        entry = await self.keys.get(invite_id)
        state = State.FAILED if fields.get("refused") else State.QUEUED
        more: dict[str, Any] = {"error": fields.get("refused") or None}
        if entry is not None:
            state = State(str(entry.state))
            more = {
                "scheduler_request_id": entry.request_id,
                "select_url": _select_url(entry),
                "owner": entry.owner,
                "error": None if entry.state is LedgerState.CREATED else f"{entry.state}",
            }
        return Invite(
            id=invite_id,
            email=fields["email"],
            display_name=fields.get("display_name") or None,
            host=fields["host"],
            summary=fields["summary"],
            state=state,
            **more,
        )

    async def all(self) -> AsyncIterator[Invite]:
        """Every invite, in the order they were produced."""
        ids: Any = await self._client.zrange(self._index, 0, -1)
        for start in range(0, len(ids), 500):
            chunk = [i.decode() if isinstance(i, bytes) else i for i in ids[start : start + 500]]
            async with self._client.pipeline(transaction=False) as pipe:
                for invite_id in chunk:
                    pipe.hgetall(self._key(invite_id))
                hashes = await pipe.execute()
            for invite_id, raw in zip(chunk, hashes, strict=True):
                yield await self._invite(invite_id, _decoded(raw))


def _decoded(raw: Mapping[Any, Any]) -> dict[str, str]:
    def text(value: Any) -> str:
        return value.decode() if isinstance(value, bytes) else str(value)

    return {text(k): text(v) for k, v in raw.items()}
