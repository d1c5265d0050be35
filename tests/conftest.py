from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import respx

from cronofy_async import AsyncSchedulerAPI, Event, Host, NewSchedulerRequest, Recipient
from cronofy_async._clock import SystemClock
from cronofy_async.testing import FakeCronofy

from .helpers import FakeClock, use_clock

SECRET = "sk_test_cronofy_super_secret_value"
CREATE_URL = "https://api.cronofy.com/v1/scheduler_requests"

# The seed page's example request body, verbatim.
SEED_BODY = """{
  "host": {
    "sub": "acc_61815034636bd5c5ce4edd"
  },
  "recipients": [
    {
      "email": "doc@evenitron.com",
      "display_name": "Dr Emmet Brown"
    }
  ],
  "event": {
    "summary": "Driving lessons - Marty & Doc"
  }
}"""

# The seed page's example response body, verbatim.
SEED_RESPONSE = """{
  "scheduler_request": {
    "scheduler_request_id": "srq_5987234923847923",
    "recipients": [
      {
        "email": "doc@evenitron.com",
        "display_name": "Dr Emmet Brown",
        "select_url": "https://app.cronofy.com/r/234ebnd"
      }
    ]
  }
}"""


def seed_request() -> NewSchedulerRequest:
    return NewSchedulerRequest(
        host=Host(sub="acc_61815034636bd5c5ce4edd"),
        recipients=[Recipient(email="doc@evenitron.com", display_name="Dr Emmet Brown")],
        event=Event(summary="Driving lessons - Marty & Doc"),
    )


def ok_response(**overrides: Any) -> httpx.Response:
    body = json.loads(SEED_RESPONSE)
    body["scheduler_request"].update(overrides)
    return httpx.Response(200, json=body)


@pytest.fixture(autouse=True)
def _no_cronofy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # The developer's own shell must not leak into tests.
    monkeypatch.delenv("CRONOFY_CLIENT_SECRET", raising=False)
    monkeypatch.delenv("CRONOFY_DATA_CENTER", raising=False)
    monkeypatch.delenv("CRONOFY_REDIS_URL", raising=False)


@pytest.fixture(autouse=True)
def _no_real_sleep(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    # Retries, pauses and pacing must run on a FakeClock in tests: never wait for real. Only a
    # test against a server that counts real arrivals may opt out, with @pytest.mark.real_time.
    if request.node.get_closest_marker("real_time"):
        return

    async def refuse(self: object, seconds: float) -> None:
        raise AssertionError(f"a test tried to sleep {seconds} s for real; use FakeClock")

    monkeypatch.setattr(SystemClock, "sleep", refuse)


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    # assert_all_mocked: a request no route matches fails instead of reaching the network.
    with respx.mock(assert_all_called=False, assert_all_mocked=True) as router:
        yield router


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def api(clock: FakeClock) -> AsyncIterator[AsyncSchedulerAPI]:
    """An API object with default settings, on virtual time."""
    async with AsyncSchedulerAPI(client_secret=SECRET) as api:
        use_clock(api, clock)
        yield api


@pytest.fixture
def loopback_fake() -> FakeCronofy:
    """A fake Cronofy with one member, acc_1, and no rate limit."""
    return FakeCronofy(members=["acc_1"], rate_limit=None)


@pytest.fixture
async def loopback_url(loopback_fake: FakeCronofy) -> AsyncIterator[str]:
    """`loopback_fake` served over TCP on 127.0.0.1 for the test."""
    async with loopback_fake.serve() as url:
        yield url


# Tests that need Redis get a real redis-server, started once per session (tests/redis_server.py).
from .redis_fixtures import redis_client, redis_namespace, redis_server, redis_url  # noqa: E402, F401
