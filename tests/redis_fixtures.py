"""Fixtures for tests that need Redis: one real redis-server for the session (see conftest)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio

from .redis_server import RedisServer, RedisUnavailableError, running_redis

__all__ = ["redis_client", "redis_namespace", "redis_server", "redis_url"]


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A real redis-server on 127.0.0.1 for the session; a test needing it fails without one."""
    try:
        with running_redis() as server:
            yield server
    except RedisUnavailableError as exc:
        pytest.fail(f"the Redis tests need a redis-server and none could start: {exc}")


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.url


@pytest.fixture
def redis_namespace() -> str:
    """A namespace no other test uses, so tests share one server without meeting."""
    return f"test-{uuid.uuid4().hex}"


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    """A client of the test's own, closed at the end."""
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()
