r"""
The ledger: one hash per invite in Redis, moved between states only by atomic scripts.

    queued --claim--> sending --complete--> created | failed | unknown | not_sent
                         \--claim again (redelivered: the sender died)--> unknown

An invite is moved to ``sending`` atomically before it is sent, so two workers can never both
send it; a job redelivered after its worker died finds ``sending`` and reports the invite
``unknown`` (it may exist) instead of sending it again. The sender, if it is in fact alive,
still records the real outcome over that ``unknown``.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Mapping
from typing import Any, Final

import attrs
import redis.asyncio

__all__ = ["Invite", "Ledger", "State"]

KEEP_SECONDS: Final = 14 * 24 * 3600
"""How long the ledger is kept after its last change: long enough to report and follow up."""


class State(enum.StrEnum):
    """Where an invite stands."""

    QUEUED = "queued"
    SENDING = "sending"
    CREATED = "created"
    FAILED = "failed"
    UNKNOWN = "unknown"
    NOT_SENT = "not_sent"


FINAL: Final = frozenset({State.CREATED, State.FAILED, State.UNKNOWN, State.NOT_SENT})


@attrs.frozen(kw_only=True)
class Invite:
    """One invite as the ledger holds it."""

    id: str
    email: str
    display_name: str | None = None
    host: str
    summary: str
    state: State = State.QUEUED
    scheduler_request_id: str | None = None
    select_url: str | None = None
    error: str | None = None
    token: str | None = None
    """Who claimed it last: the sending process's pid, then a random part."""

    @classmethod
    def from_fields(cls, invite_id: str, fields: Mapping[str, str]) -> Invite:
        """Read an invite from its hash."""
        return cls(
            id=invite_id,
            email=fields["email"],
            display_name=fields.get("display_name") or None,
            host=fields["host"],
            summary=fields["summary"],
            state=State(fields["state"]),
            scheduler_request_id=fields.get("scheduler_request_id") or None,
            select_url=fields.get("select_url") or None,
            error=fields.get("error") or None,
            token=fields.get("token") or None,
        )


_ADD: Final = """
-- KEYS[1] the invite, KEYS[2] the index; ARGV[1] id, ARGV[2] sequence, ARGV[3] ttl, then fields
local state = redis.call('HGET', KEYS[1], 'state')
if state and state ~= 'not_sent' then
  return 0
end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('HSET', KEYS[1], 'state', 'queued', 'error', '')
redis.call('ZADD', KEYS[2], 'NX', ARGV[2], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[3])
return 1
"""

_CLAIM: Final = """
-- KEYS[1] the invite; ARGV[1] this attempt's token, ARGV[2] ttl
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'queued' then
  redis.call('HSET', KEYS[1], 'state', 'sending', 'token', ARGV[1])
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  return 'claimed'
end
if state == 'sending' then
  redis.call('HSET', KEYS[1], 'state', 'unknown',
             'error', 'its worker stopped while sending it: it may exist')
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  return 'was_sending'
end
return state or 'missing'
"""

_COMPLETE: Final = """
-- KEYS[1] the invite; ARGV[1] the sender's token, ARGV[2] ttl, then field/value pairs
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"""


class Ledger:
    """Every invite of one namespace, in Redis (decoded strings in and out)."""

    def __init__(self, client: redis.asyncio.Redis, namespace: str) -> None:
        self._client = client
        self._prefix = f"cronofy-example:{{{namespace}}}"
        self._index = f"{self._prefix}:invites"
        self._add = client.register_script(_ADD)
        self._claim = client.register_script(_CLAIM)
        self._complete = client.register_script(_COMPLETE)

    def _key(self, invite_id: str) -> str:
        return f"{self._prefix}:invite:{invite_id}"

    async def add(self, invite: Invite, sequence: int) -> bool:
        """Record `invite` as queued; False if it is already known (and not ``not_sent``)."""
        fields: list[Any] = []
        for name, value in (
            ("email", invite.email),
            ("display_name", invite.display_name or ""),
            ("host", invite.host),
            ("summary", invite.summary),
        ):
            fields += [name, value]
        added = await self._add(
            keys=[self._key(invite.id), self._index],
            args=[invite.id, sequence, KEEP_SECONDS, *fields],
        )
        return bool(added)

    async def claim(self, invite_id: str, token: str) -> str:
        """``claimed`` (send it now), ``was_sending`` (now unknown) or its final state."""
        reply = await self._claim(keys=[self._key(invite_id)], args=[token, KEEP_SECONDS])
        return reply.decode() if isinstance(reply, bytes) else str(reply)

    async def complete(self, invite_id: str, token: str, state: State, **fields: str) -> bool:
        """Record the outcome of the send that holds `token`."""
        pairs: list[str] = ["state", str(state)]
        for name, value in fields.items():
            pairs += [name, value]
        done = await self._complete(keys=[self._key(invite_id)], args=[token, KEEP_SECONDS, *pairs])
        return bool(done)

    async def get(self, invite_id: str) -> Invite:
        """One invite."""
        raw: Any = await self._client.hgetall(self._key(invite_id))
        return Invite.from_fields(invite_id, _decoded(raw))

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
                yield Invite.from_fields(invite_id, _decoded(raw))


def _decoded(raw: Mapping[Any, Any]) -> dict[str, str]:
    def text(value: Any) -> str:
        return value.decode() if isinstance(value, bytes) else str(value)

    return {text(k): text(v) for k, v in raw.items()}
