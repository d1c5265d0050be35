"""`RedisLedger`: idempotency keys shared by every process and machine using one Redis."""

from __future__ import annotations

import asyncio
import urllib.parse
import weakref
from collections.abc import Callable
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Final, Self

from redis.asyncio import Redis as AsyncRedis
from redis.commands.core import AsyncScript

from .._errors import ConfigurationError, LedgerUnavailableError
from .._ledger import (
    DEFAULT_LEASE,
    DEFAULT_LEDGER_TIMEOUT,
    DEFAULT_TTL,
    DEFAULT_WAIT,
    LedgerEntry,
    LedgerState,
    check_ledger_options,
)
from ._keys import ledger_prefix
from ._ledger_script import LEDGER
from ._limiter import _REDIS_FAILURES, _client_factory, _raise_if_cancelling, _redacted

__all__ = ["RedisLedger"]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _moment(milliseconds: Any) -> datetime:
    return datetime.fromtimestamp(int(_text(milliseconds)) / 1000, UTC)


def _entry(key: str, reply: Any) -> LedgerEntry | None:
    if not reply:
        return None
    print_, state, owner, lease, rid, result, resending, created, updated, expires, lapsed = reply
    owner_text, lease_text, rid_text = _text(owner), _text(lease), _text(rid)
    return LedgerEntry(
        key=key,
        state=LedgerState(_text(state)),
        fingerprint=_text(print_),
        owner=owner_text or None,
        lease_expires=int(lease_text) / 1000 if lease_text else None,
        request_id=rid_text or None,
        result=(result if isinstance(result, bytes) else str(result).encode()) or None,
        resending=_text(resending) == "1",
        created_at=_moment(created),
        updated_at=_moment(updated),
        expires_at=_moment(expires),
        lapsed=_text(lapsed) == "1",
    )


class RedisLedger:
    """
    Idempotency keys in Redis: shared by every process and machine of a namespace.

    Every change is one Lua script on Redis (atomic, on Redis's clock), so of the workers of a
    task queue claiming one key, exactly one sends; the others wait for its outcome. Keys are
    namespaced as `RedisLimiter`'s are, and expire on their own after `ttl`::

        from cronofy_async.redis import RedisLedger

        async with RedisLedger("redis://127.0.0.1:6379/0", namespace="invites") as ledger:
            api = AsyncSchedulerAPI(ledger=ledger)
            await api.create_scheduling_request(request, idempotency_key="order-42")

    Args:
        url_or_client: a Redis URL, whose connection the ledger opens and closes (`aclose`);
            or a ``redis.asyncio.Redis`` you own, which it never closes.
        namespace: names the set of keys: processes with the same Redis and namespace share
            them. The Redis keys hold it and the idempotency key, never the client secret.
        ttl: seconds an entry is kept after its last change (7 days).
        lease: seconds a claim lives unless renewed; a worker killed mid-send leaves its key
            `LedgerState.UNKNOWN` after it.
        wait: seconds a call waits for another call's outcome with the same key.
        timeout: seconds one exchange with Redis may take before `LedgerUnavailableError`
            (5 by default); nothing is sent then.

    Use Redis with persistence (AOF) if a restart of Redis must not forget which invites
    were sent.

    """

    def __init__(
        self,
        url_or_client: str | AsyncRedis,
        *,
        namespace: str,
        ttl: float = DEFAULT_TTL,
        lease: float = DEFAULT_LEASE,
        wait: float = DEFAULT_WAIT,
        timeout: float = DEFAULT_LEDGER_TIMEOUT,
    ) -> None:
        self.namespace: Final = namespace
        """The name of the shared set of keys."""
        self._prefix = ledger_prefix(namespace)
        self.ttl, self.lease, self.wait, self.timeout = check_ledger_options(
            "RedisLedger", ttl=ttl, lease=lease, wait=wait, timeout=timeout
        )
        self._args = (str(int(self.ttl * 1000)), str(int(self.lease * 1000)))
        self._given: tuple[AsyncRedis, AsyncScript] | None = None
        self._url: Callable[[], AsyncRedis] | None = None
        self._by_loop: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[AsyncRedis, AsyncScript]
        ] = weakref.WeakKeyDictionary()
        if isinstance(url_or_client, str):
            self._where = _redacted(url_or_client)
            self._url = _client_factory(url_or_client)
        elif isinstance(url_or_client, AsyncRedis):
            self._where = "a caller's redis.asyncio.Redis"
            self._given = (url_or_client, url_or_client.register_script(LEDGER))
        else:
            raise ConfigurationError(
                "RedisLedger needs a Redis URL or a redis.asyncio.Redis, got "
                f"{type(url_or_client).__module__}.{type(url_or_client).__name__}"
            )

    def __repr__(self) -> str:
        return f"RedisLedger({self._where!r}, namespace={self.namespace!r})"

    def redis_key(self, key: str) -> str:
        """
        The Redis key that holds idempotency key `key`'s entry.

        >>> RedisLedger("redis://127.0.0.1", namespace="invites").redis_key("a b")
        'cronofy-async:{invites}:ledger:a%20b'
        """
        return self._prefix + urllib.parse.quote(key, safe="-._~@")

    # -- the Ledger protocol -------------------------------------------------------------------

    async def get(self, key: str) -> LedgerEntry | None:
        """The entry for `key` as it stands now, or ``None``."""
        return _entry(key, await self._run("read the key", key, "get"))

    async def claim(
        self, key: str, fingerprint: str, *, owner: str, resend_unknown: bool = False
    ) -> LedgerEntry:
        """Claim `key` for `owner` (see `Ledger.claim`)."""
        reply = await self._run(
            "claim the key", key, "claim", fingerprint, owner, "1" if resend_unknown else "0"
        )
        entry = _entry(key, reply)
        if entry is None:  # pragma: no cover - the script always answers a claim's entry
            raise LedgerUnavailableError("the idempotency ledger lost a claim; nothing was sent")
        return entry

    async def renew(self, key: str, *, owner: str) -> None:
        """Extend `owner`'s claim on `key` (see `Ledger.renew`)."""
        await self._run("renew the claim", key, "renew", owner)

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
        if state is LedgerState.SENDING:
            raise ValueError("a send settles as CREATED, FAILED or UNKNOWN, not SENDING")
        await self._run(
            "record the outcome", key, "settle", owner, state.value, request_id or "", result or b""
        )

    async def release(self, key: str, *, owner: str) -> None:
        """Give `owner`'s claim back unsent (see `Ledger.release`)."""
        await self._run("give the claim back", key, "release", owner)

    # -- lifecycle -------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the connection this ledger opened (from a URL); a caller's client stays open."""
        if self._given is not None:
            return
        connection = self._by_loop.pop(asyncio.get_running_loop(), None)
        if connection is not None:
            await connection[0].aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- Redis ---------------------------------------------------------------------------------

    def _script(self) -> AsyncScript:
        if self._given is not None:
            return self._given[1]
        loop = asyncio.get_running_loop()
        connection = self._by_loop.get(loop)
        if connection is None:
            assert self._url is not None  # noqa: S101 - one of the two is always set
            client = self._url()
            connection = self._by_loop[loop] = (client, client.register_script(LEDGER))
        return connection[1]

    async def _run(self, what: str, key: str, operation: str, *args: str | bytes) -> Any:
        task = asyncio.current_task()
        try:
            async with asyncio.timeout(self.timeout):
                script = self._script()
                reply = await script(
                    keys=[self.redis_key(key)], args=[operation, *self._args, *args]
                )
        except _REDIS_FAILURES as exc:
            reason = (
                f"no answer within {self.timeout:g} s"
                if isinstance(exc, TimeoutError) and not str(exc)
                else f"{type(exc).__name__}: {exc}"
            )
            raise LedgerUnavailableError(
                f"the idempotency ledger (Redis at {self._where}, namespace "
                f"{self.namespace!r}) failed to {what}: {reason}; nothing was sent"
            ) from exc
        _raise_if_cancelling(task)
        return reply
