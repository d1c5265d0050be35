"""`RedisLimiter`: one rate budget shared by every process and machine using one Redis."""

from __future__ import annotations

import asyncio
import logging
import os
import urllib.parse
import weakref
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Final, Self, TypeVar

import redis.exceptions
from redis.asyncio import Redis as AsyncRedis
from redis.asyncio.connection import BlockingConnectionPool, parse_url
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.commands.core import AsyncScript

from .._clock import Clock, SystemClock
from .._errors import ConfigurationError, LimiterUnavailableError
from .._ratelimit import RateLimit
from ._keys import Keys, keys_for
from ._script import PAUSE, RESERVE, pause_args, reserve_args

__all__ = ["DEFAULT_REDIS_TIMEOUT", "RedisLimiter"]

DEFAULT_REDIS_TIMEOUT: Final = 5.0
"""Seconds one exchange with Redis may take before `LimiterUnavailableError` is raised."""

logger: Final = logging.getLogger("cronofy_async")

T = TypeVar("T")

# What a failing Redis raises through redis-py: its own errors, a socket's, a timeout.
_POOL_SIZE: Final = 100
"""Connections a limiter built from a URL opens at most per event loop (as redis-py's pool)."""

_REDIS_FAILURES: Final = (redis.exceptions.RedisError, OSError, TimeoutError)


def _check_timeout(timeout: object) -> float:
    if not isinstance(timeout, int | float) or isinstance(timeout, bool) or not timeout > 0:
        raise ConfigurationError(
            f"RedisLimiter timeout must be a positive number of seconds, got {timeout!r}"
        )
    return float(timeout)


def _redacted(url: str) -> str:
    """
    The URL as shown in a repr or a message: the user name and password masked.

    Both where the URL's user info holds them and as query arguments (redis-py reads
    ``?password=`` and ``?username=`` too); any query argument whose name speaks of a user,
    a password or a secret is masked, the rest shown as given.

    >>> _redacted("redis://alice:pw@host:6379/3?db=3&password=pw")
    'redis://***@host:6379/3?db=3&password=***'
    """
    try:
        parse_url(url)
    except ValueError as exc:
        raise ConfigurationError(f"RedisLimiter: not a Redis URL ({exc})") from None
    parts = urllib.parse.urlsplit(url)
    _userinfo, at, where = parts.netloc.rpartition("@")
    netloc = f"***@{where}" if at else where
    query = "&".join(_redacted_argument(argument) for argument in parts.query.split("&"))
    shown = f"{parts.scheme}://{netloc}{parts.path}"
    shown += f"?{query}" if parts.query else ""
    return shown + ("#***" if parts.fragment else "")


_SECRET_WORDS: Final = ("user", "pass", "auth", "secret", "token", "key")


def _redacted_argument(argument: str) -> str:
    name, equals, _value = argument.partition("=")
    spoken = urllib.parse.unquote_plus(name).lower()
    if equals and any(word in spoken for word in _SECRET_WORDS):
        return f"{name}=***"
    return argument


class _Connection:
    """A client and the scripts registered on it (one per event loop for a URL)."""

    def __init__(self, client: AsyncRedis) -> None:
        self.client = client
        self.reserve: AsyncScript = client.register_script(RESERVE)
        self.pause: AsyncScript = client.register_script(PAUSE)
        # redis-py's plain pool raises MaxConnectionsError past its size instead of waiting:
        # our callers past it queue here (within the timeout) while Redis is healthy.
        pool = client.connection_pool
        self.slots: asyncio.Semaphore | None = (
            None
            if isinstance(pool, BlockingConnectionPool)
            else asyncio.Semaphore(max(1, pool.max_connections))
        )


class RedisLimiter:
    """
    Paces every process that shares a Redis and a namespace under one `RateLimit`.

    Cronofy's limits are per application, so several processes (workers of a web service,
    replicas of a bot, shards of a batch) must share one budget. Pass the same limiter setup
    to each as ``rate_limit=``::

        from cronofy_async import AsyncSchedulerAPI, RateLimit
        from cronofy_async.redis import RedisLimiter

        async with (
            RedisLimiter("redis://127.0.0.1:6379/0", RateLimit(), namespace="invites") as limiter,
            AsyncSchedulerAPI(rate_limit=limiter) as api,
        ):
            await api.create_scheduler_request(...)

    The contract is the in-process limiter's, across all of them: never more than a window's
    count in any window of each limit (widened by the margin, and spaced unless
    ``burst=True``, as `RateLimit` says), each request admitted the moment it fits, in the
    order the requests reached Redis. Admissions are booked by one Lua script on Redis's own
    clock, so the clocks of the machines never matter. A 429 seen by any process pauses all
    of them until its wait is over. A caller cancelled while waiting gives its slot back.

    Args:
        redis: a URL (``redis://host:6379/0``, ``rediss://...``, ``unix://...``), whose
            connection the limiter opens and closes (`aclose`, or ``async with``); or a
            ``redis.asyncio.Redis`` you own, which the limiter never closes. Callers past
            the connection pool's size wait for a connection (within `timeout`) rather than
            fail; with a client of yours whose pool is not a ``BlockingConnectionPool``, the
            limiter queues its own calls to the pool's size, but your other uses of that pool
            share it.
        rate_limit: the budget every process of the namespace shares (Cronofy's 50/s and
            500/min by default). Give every process the same one.
        namespace: names the shared budget: processes with the same Redis and namespace share
            it. Any non-empty string; the keys hold it, never the client secret.
        timeout: seconds one exchange with Redis may take (5 by default). Past it, or when
            Redis fails, `LimiterUnavailableError` is raised and nothing is sent.

    The keys expire on their own a couple of minutes after the last request.

    """

    def __init__(
        self,
        redis: str | AsyncRedis,
        rate_limit: RateLimit = RateLimit(),  # noqa: B008 - frozen
        *,
        namespace: str,
        timeout: float = DEFAULT_REDIS_TIMEOUT,
    ) -> None:
        if not isinstance(rate_limit, RateLimit):
            raise ConfigurationError(
                f"RedisLimiter rate_limit must be a RateLimit, got {type(rate_limit).__name__}"
            )
        self.rate_limit: Final = rate_limit
        """The budget shared by the namespace."""
        self.namespace: Final = namespace
        """The name of the shared budget."""
        self.keys: Final[Keys] = keys_for(namespace)
        """The Redis keys of the namespace."""
        self.timeout: Final = _check_timeout(timeout)
        """Seconds one exchange with Redis may take."""
        self._clock: Clock = SystemClock()
        self._limit_args = reserve_args(rate_limit, "", 0)[2:]  # the same for every booking
        self._given: _Connection | None = None
        self._url: Callable[[], AsyncRedis] | None = None
        self._where: str
        # A redis.asyncio client belongs to the event loop it first connected in: a limiter
        # built from a URL opens one per loop that uses it.
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Connection] = (
            weakref.WeakKeyDictionary()
        )
        self._releases: set[asyncio.Task[None]] = set()
        if isinstance(redis, str):
            self._where = _redacted(redis)
            self._url = _client_factory(redis)
        elif isinstance(redis, AsyncRedis):
            self._where = "a caller's redis.asyncio.Redis"
            self._given = _Connection(redis)
        else:
            raise ConfigurationError(
                "RedisLimiter needs a Redis URL or a redis.asyncio.Redis, got "
                f"{type(redis).__module__}.{type(redis).__name__}"
            )

    def __repr__(self) -> str:
        where = self._where if self._given is None else "<caller's client>"
        return f"RedisLimiter({where!r}, {self.rate_limit!r}, namespace={self.namespace!r})"

    # -- the Limiter protocol -----------------------------------------------------------------

    async def acquire(self) -> None:
        """
        Wait for this request's turn in the shared budget.

        Raises `LimiterUnavailableError` if Redis fails or does not answer within `timeout`:
        the request must then not be sent. Cancelled while waiting, the booked slot is given
        back.
        """
        member = os.urandom(9).hex()
        held = 0
        task = asyncio.current_task()
        try:
            while True:
                wait_us, held = await self._reserve(member, held)
                _raise_if_cancelling(task)
                if wait_us <= 0:
                    return
                await self._clock.sleep(wait_us / 1_000_000)
                # Woken: confirm with Redis, where a 429 may have paused everyone meanwhile.
        except asyncio.CancelledError:
            await self._give_back(member)
            raise

    async def pause(self, seconds: float) -> None:
        """
        Hold every process of the namespace for `seconds` from now (a 429 asked for it).

        A longer pause in force is never shortened. If Redis fails, this is logged and the
        pause stays in this process only; the next `acquire` then raises.
        """
        try:
            await self._call(
                "pause", lambda c: c.pause(keys=[self.keys.pause], args=pause_args(seconds))
            )
        except LimiterUnavailableError as exc:
            logger.warning("could not share a 429 pause of %.2f s: %s", seconds, exc)

    # -- lifecycle -------------------------------------------------------------------------

    async def aclose(self) -> None:
        """
        Close the connection this limiter opened (from a URL); a caller's client stays open.

        A limiter closed this way may be used again: it reconnects.
        """
        if self._given is not None:
            return
        connection = self._by_loop.pop(asyncio.get_running_loop(), None)
        if connection is not None:
            await connection.client.aclose()

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

    def _connection(self) -> _Connection:
        if self._given is not None:
            return self._given
        loop = asyncio.get_running_loop()
        connection = self._by_loop.get(loop)
        if connection is None:
            assert self._url is not None  # noqa: S101 - one of the two is always set
            connection = self._by_loop[loop] = _Connection(self._url())
        return connection

    async def _call(self, what: str, command: Callable[[_Connection], Awaitable[T]]) -> T:
        """Run one exchange with Redis, bounded by `timeout`; any failure becomes ours."""
        try:
            async with asyncio.timeout(self.timeout):
                connection = self._connection()
                if connection.slots is None:
                    return await command(connection)
                async with connection.slots:
                    return await command(connection)
        except _REDIS_FAILURES as exc:
            reason = (
                f"no answer within {self.timeout:g} s"
                if isinstance(exc, TimeoutError) and not str(exc)
                else f"{type(exc).__name__}: {exc}"
            )
            raise LimiterUnavailableError(
                f"the shared rate limiter (Redis at {self._where}, namespace "
                f"{self.namespace!r}) failed to {what}: {reason}; nothing was sent"
            ) from exc

    async def _reserve(self, member: str, held: int) -> tuple[int, int]:
        reply: Any = await self._call(
            "book a slot",
            lambda c: c.reserve(
                keys=[self.keys.log, self.keys.pause],
                args=[member, held, *self._limit_args],
            ),
        )
        return int(reply[0]), int(reply[1])

    async def _give_back(self, member: str) -> None:
        """Delete a cancelled caller's booking, even if the caller is cancelled again."""

        async def release() -> None:
            try:
                await self._call("give a slot back", lambda c: c.client.zrem(self.keys.log, member))
            except LimiterUnavailableError as exc:
                # The booking then only expires: it errs on the slow side, never the fast one.
                logger.warning("could not give a cancelled request's slot back: %s", exc)

        task = asyncio.create_task(release())
        self._releases.add(task)
        task.add_done_callback(self._releases.discard)
        await asyncio.shield(task)


def _raise_if_cancelling(task: asyncio.Task[Any] | None) -> None:
    # redis-py may swallow a cancel that lands while it opens a connection (asyncio.wait_for
    # on 3.11): the caller's deadline passed all the same, so the cancel still stands.
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _client_factory(url: str) -> Callable[[], AsyncRedis]:
    def connect() -> AsyncRedis:
        # A couple of quick retries on a fresh connection ride over a restarted server or a
        # stale pooled socket. No socket timeouts: the limiter's own bounds the whole exchange
        # (retries included), and a command it cuts short has its connection dropped.
        # A blocking pool: a caller past its size waits for a connection (the limiter's
        # timeout bounds the wait) rather than fail while Redis is healthy.
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=_POOL_SIZE,
            timeout=None,
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 2),
        )
        return AsyncRedis.from_pool(pool)

    return connect
