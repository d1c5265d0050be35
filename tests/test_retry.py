"""What is retried, what never is, how long each wait is, and the shared 429 pause."""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import random
from typing import Any

import httpx
import pytest
import respx

from cronofy_async import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AsyncSchedulerAPI,
    ConfigurationError,
    Event,
    Host,
    NewSchedulerRequest,
    RateLimitError,
    Recipient,
    ResponseFormatError,
    RetryPolicy,
    ServerError,
)

from .conftest import CREATE_URL, SECRET, SEED_RESPONSE, ok_response, seed_request
from .helpers import FakeClock, use_clock

NO_JITTER = RetryPolicy(wait_jitter=0)


@pytest.fixture
async def new_api(clock: FakeClock) -> Any:
    """Build API objects on virtual time, closed at the end of the test."""
    made: list[AsyncSchedulerAPI] = []

    def build(**options: Any) -> AsyncSchedulerAPI:
        api = AsyncSchedulerAPI(client_secret=SECRET, **options)
        use_clock(api, clock)
        made.append(api)
        return api

    yield build
    for api in made:
        await api.aclose()


def sequence(*outcomes: httpx.Response | Exception) -> Any:
    """A respx side effect that plays `outcomes` in order, then succeeds."""
    queue = list(outcomes)

    def respond(request: httpx.Request) -> httpx.Response:
        if not queue:
            return ok_response()
        outcome = queue.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    return respond


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ConnectError("refused"),
        httpx.ConnectTimeout("slow"),
        httpx.PoolTimeout("pool full"),
        httpx.Response(429),
    ],
    ids=["connect-error", "connect-timeout", "pool-timeout", "429"],
)
async def test_safe_failures_are_retried(
    new_api: Any, mock: respx.MockRouter, clock: FakeClock, failure: Any
) -> None:
    api = new_api(retry=NO_JITTER)
    route = mock.post(CREATE_URL).mock(side_effect=sequence(failure, failure))
    created = await api.create_scheduler_request(seed_request())
    assert created.scheduler_request_id == "srq_5987234923847923"
    assert route.call_count == 3
    assert clock.sleeps == [0.5, 1.0]


@pytest.mark.parametrize(
    ("failure", "cls"),
    [
        (httpx.ReadTimeout("slow answer"), APITimeoutError),
        (httpx.WriteTimeout("slow send"), APITimeoutError),
        (httpx.RemoteProtocolError("Server disconnected"), APIConnectionError),
        (httpx.ReadError("connection reset"), APIConnectionError),
        (httpx.Response(500), ServerError),
        (httpx.Response(503), ServerError),
    ],
)
async def test_unsafe_failures_are_not_retried_by_default(
    api: AsyncSchedulerAPI,
    mock: respx.MockRouter,
    clock: FakeClock,
    failure: Any,
    cls: type[APIError],
) -> None:
    route = mock.post(CREATE_URL).mock(side_effect=sequence(failure))
    with pytest.raises(cls) as info:
        await api.create_scheduler_request(seed_request())
    assert info.value.outcome_unknown is True
    assert info.value.attempts == 1
    assert route.call_count == 1
    assert clock.sleeps == []


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ReadTimeout("slow answer"),
        httpx.RemoteProtocolError("Server disconnected"),
        httpx.Response(502),
    ],
)
async def test_unsafe_failures_are_retried_on_opt_in(
    new_api: Any, mock: respx.MockRouter, failure: Any
) -> None:
    api = new_api(retry=RetryPolicy(retry_unsafe=True))
    route = mock.post(CREATE_URL).mock(side_effect=sequence(failure))
    await api.create_scheduler_request(seed_request())
    assert route.call_count == 2


@pytest.mark.parametrize("status", [400, 401, 402, 403, 404, 422, 423])
async def test_4xx_other_than_429_are_never_retried(
    new_api: Any, mock: respx.MockRouter, status: int
) -> None:
    api = new_api(retry=RetryPolicy(retry_unsafe=True, attempts=5))
    route = mock.post(CREATE_URL).mock(side_effect=sequence(httpx.Response(status)))
    with pytest.raises(APIError) as info:
        await api.create_scheduler_request(seed_request())
    assert info.value.outcome_unknown is False
    assert route.call_count == 1


async def test_a_malformed_success_is_never_retried(new_api: Any, mock: respx.MockRouter) -> None:
    # It was processed: sending it again is a certain duplicate, whatever the opt-in.
    api = new_api(retry=RetryPolicy(retry_unsafe=True, attempts=5))
    route = mock.post(CREATE_URL).mock(side_effect=sequence(httpx.Response(200, json={})))
    with pytest.raises(ResponseFormatError):
        await api.create_scheduler_request(seed_request())
    assert route.call_count == 1


async def test_attempt_limit_and_the_count_on_the_error(
    new_api: Any, mock: respx.MockRouter, clock: FakeClock
) -> None:
    api = new_api(retry=RetryPolicy(attempts=5, wait_jitter=0))
    route = mock.post(CREATE_URL).mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(APIConnectionError) as info:
        await api.create_scheduler_request(seed_request())
    assert route.call_count == 5
    assert info.value.attempts == 5
    assert str(info.value).endswith("(after 5 attempts)")
    assert info.value.outcome_unknown is False
    assert clock.sleeps == [0.5, 1.0, 2.0, 4.0]


async def test_default_is_three_attempts(api: AsyncSchedulerAPI, mock: respx.MockRouter) -> None:
    route = mock.post(CREATE_URL).mock(return_value=httpx.Response(429))
    with pytest.raises(RateLimitError) as info:
        await api.create_scheduler_request(seed_request())
    assert route.call_count == 3
    assert info.value.attempts == 3


async def test_retry_none_turns_retries_off(new_api: Any, mock: respx.MockRouter) -> None:
    api = new_api(retry=None)
    route = mock.post(CREATE_URL).mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(APIConnectionError):
        await api.create_scheduler_request(seed_request())
    assert route.call_count == 1


async def test_deadline_stops_retries_that_would_end_past_it(
    new_api: Any, mock: respx.MockRouter, clock: FakeClock
) -> None:
    api = new_api(retry=RetryPolicy(attempts=10, deadline=2.0, wait_jitter=0))
    route = mock.post(CREATE_URL).mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(APIConnectionError) as info:
        await api.create_scheduler_request(seed_request())
    # Waits of 0.5 and 1.0 fit in 2 s; the next (2.0) would end at 3.5 s.
    assert clock.sleeps == [0.5, 1.0]
    assert route.call_count == 3
    assert info.value.attempts == 3


def test_backoff_doubles_from_half_a_second_capped_at_8_with_jitter() -> None:
    rng = random.Random(7)
    assert [NO_JITTER.backoff(n, rng) for n in range(1, 8)] == [0.5, 1, 2, 4, 8, 8, 8]
    jittered = RetryPolicy()
    for n, full in enumerate([0.5, 1, 2, 4, 8, 8], start=1):
        waits = [jittered.backoff(n, rng) for _ in range(200)]
        assert all(full * 0.75 <= w <= full for w in waits)
        assert len(set(waits)) > 100  # really random, not a constant


# -- Retry-After ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"Retry-After": "2.5"}, 2.5),
        ({"retry-after-ms": "1500"}, 1.5),
        ("date+30", 30.0),
        ({}, 0.5),  # no header: the backoff
    ],
)
async def test_429_waits_what_the_server_asks(
    new_api: Any, mock: respx.MockRouter, clock: FakeClock, headers: Any, expected: float
) -> None:
    if headers == "date+30":
        headers = {"Retry-After": email.utils.formatdate(clock.wall() + 30, usegmt=True)}
    api = new_api(retry=NO_JITTER)
    calls: list[float] = []

    def respond(request: httpx.Request) -> httpx.Response:
        calls.append(clock.now)
        return httpx.Response(429, headers=headers) if len(calls) == 1 else ok_response()

    mock.post(CREATE_URL).mock(side_effect=respond)
    await api.create_scheduler_request(seed_request())
    assert calls[1] - calls[0] == pytest.approx(expected)


async def test_a_wait_over_the_cap_raises_instead_of_sleeping(
    new_api: Any, mock: respx.MockRouter, clock: FakeClock
) -> None:
    api = new_api()
    route = mock.post(CREATE_URL).mock(
        side_effect=sequence(httpx.Response(429, headers={"Retry-After": "61"}))
    )
    with pytest.raises(RateLimitError) as info:
        await api.create_scheduler_request(seed_request())
    assert info.value.retry_after == 61.0
    assert info.value.outcome_unknown is False
    assert route.call_count == 1
    assert clock.sleeps == []


async def test_the_cap_is_configurable(
    new_api: Any, mock: respx.MockRouter, clock: FakeClock
) -> None:
    api = new_api(retry=RetryPolicy(max_retry_after=120))
    mock.post(CREATE_URL).mock(
        side_effect=sequence(httpx.Response(429, headers={"Retry-After": "90"}))
    )
    await api.create_scheduler_request(seed_request())
    assert clock.sleeps == [90.0]


# -- the shared pause ---------------------------------------------------------------------------


async def until(condition: Any) -> None:
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


async def test_a_429_pauses_every_request_of_the_api_object(
    api: AsyncSchedulerAPI, mock: respx.MockRouter, clock: FakeClock
) -> None:
    calls: list[tuple[float, str | None]] = []

    def respond(request: httpx.Request) -> httpx.Response:
        calls.append((clock.now, request.headers.get("cronofy-impersonate")))
        if len(calls) == 1:
            return httpx.Response(429, headers={"Retry-After": "5"})
        return ok_response()

    mock.post(CREATE_URL).mock(side_effect=respond)
    start = clock.now
    first = asyncio.create_task(api.create_scheduler_request(seed_request()))
    await until(lambda: len(calls) == 1)
    # Sent after the 429: through the root and through a view; neither may reach Cronofy early.
    hostless = NewSchedulerRequest(
        recipients=[Recipient(email="a@example.com")], event=Event(summary="x")
    )
    others = [
        api.create_scheduler_request(seed_request()),
        api.impersonate("acc_1").create_scheduler_request(hostless),
    ]
    await asyncio.gather(first, *others)
    assert len(calls) == 4
    assert all(when >= start + 5 for when, _ in calls[1:])
    assert {sub for _, sub in calls[1:]} == {None, "acc_1"}


async def test_a_pause_longer_than_the_cap_fails_the_others_fast_unsent(
    api: AsyncSchedulerAPI, mock: respx.MockRouter, clock: FakeClock
) -> None:
    route = mock.post(CREATE_URL).mock(
        side_effect=sequence(httpx.Response(429, headers={"Retry-After": "600"}))
    )
    with pytest.raises(RateLimitError):
        await api.create_scheduler_request(seed_request())
    with pytest.raises(RateLimitError) as info:
        await api.create_scheduler_request(seed_request())
    assert route.call_count == 1
    assert info.value.attempts == 0
    assert info.value.outcome_unknown is False
    assert info.value.retry_after == pytest.approx(600)
    assert str(info.value).startswith("not sent: a 429 asked every request to wait 600 s")
    assert clock.sleeps == []


async def test_a_429_pauses_the_others_even_with_retries_off(
    new_api: Any, mock: respx.MockRouter, clock: FakeClock
) -> None:
    api = new_api(retry=None)
    calls: list[float] = []

    def respond(request: httpx.Request) -> httpx.Response:
        calls.append(clock.now)
        return (
            httpx.Response(429, headers={"Retry-After": "3"}) if len(calls) == 1 else ok_response()
        )

    mock.post(CREATE_URL).mock(side_effect=respond)
    with pytest.raises(RateLimitError):
        await api.create_scheduler_request(seed_request())
    await api.create_scheduler_request(seed_request())
    assert calls[1] - calls[0] == pytest.approx(3)


# -- logging ------------------------------------------------------------------------------------


async def test_each_retry_is_logged_without_secret_or_body(
    new_api: Any, mock: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="cronofy_async")
    api = new_api(retry=NO_JITTER)
    mock.post(CREATE_URL).mock(
        side_effect=sequence(
            httpx.ConnectError("refused"),
            httpx.Response(429, headers={"Retry-After": "2"}, text="BODY-TEXT"),
        )
    )
    await api.create_scheduler_request(seed_request())
    messages = [r.getMessage() for r in caplog.records if r.name == "cronofy_async"]
    create = "create_scheduler_request (POST /v1/scheduler_requests)"
    assert [m for m in messages if m.startswith("retrying")] == [
        f"retrying {create} in 0.50 s: attempt 1 of 3 failed, not sent (ConnectError)",
        f"retrying {create} in 2.00 s: attempt 2 of 3 failed, rate limited (429)",
    ]
    assert SECRET not in caplog.text
    assert "BODY-TEXT" not in caplog.text
    assert "doc@evenitron.com" not in caplog.text


# -- composition with other transports --------------------------------------------------------


async def test_retries_apply_through_a_callers_mock_transport(
    clock: FakeClock,
) -> None:
    seen: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(1)
        if len(seen) == 1:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200, content=SEED_RESPONSE)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        api = AsyncSchedulerAPI(client_secret=SECRET, http_client=client)
        use_clock(api, clock)
        await api.create_scheduler_request(seed_request())
    assert len(seen) == 2


async def test_retries_apply_through_an_asgi_transport(clock: FakeClock) -> None:
    bodies: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        message = await receive()
        bodies.append(json.loads(message["body"]))
        status, body = (429, b"{}") if len(bodies) == 1 else (200, SEED_RESPONSE.encode())
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": body})

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport) as client:
        api = AsyncSchedulerAPI(
            client_secret=SECRET, http_client=client, base_url="http://cronofy.test"
        )
        use_clock(api, clock)
        created = await api.create_scheduler_request(seed_request())
    assert created.scheduler_request_id == "srq_5987234923847923"
    assert len(bodies) == 2
    assert bodies[0] == bodies[1]


# -- configuration ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"attempts": 0}, "attempts"),
        ({"attempts": 2.5}, "attempts"),
        ({"wait_initial": -1}, "wait_initial"),
        ({"wait_max": "8"}, "wait_max"),
        ({"wait_exp_base": 0.5}, "wait_exp_base"),
        ({"wait_jitter": 1.5}, "wait_jitter"),
        ({"deadline": 0}, "deadline"),
        ({"deadline": True}, "deadline"),
        ({"max_retry_after": -5}, "max_retry_after"),
    ],
)
def test_bad_retry_policy(options: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigurationError, match=rf"RetryPolicy\.{field} must be"):
        RetryPolicy(**options)


def test_retry_must_be_a_policy() -> None:
    with pytest.raises(ConfigurationError, match="retry must be a RetryPolicy or None, got int"):
        AsyncSchedulerAPI(client_secret=SECRET, retry=3)  # type: ignore[arg-type]


async def test_under_a_fault_storm_nothing_unsafe_is_ever_sent_twice(
    api: AsyncSchedulerAPI, mock: respx.MockRouter
) -> None:
    rng = random.Random(2026)
    safe = ["429", "connect"]
    unsafe = ["503", "dropped", "read-timeout"]
    history: dict[str, list[str]] = {}

    def respond(request: httpx.Request) -> httpx.Response:
        address = json.loads(request.content)["recipients"][0]["email"]
        outcome = rng.choice([*safe, *unsafe, "ok", "ok"])
        history.setdefault(address, []).append(outcome)
        match outcome:
            case "429":
                return httpx.Response(429, headers={"Retry-After": "1"})
            case "connect":
                raise httpx.ConnectError("refused")
            case "503":
                return httpx.Response(503)
            case "dropped":
                raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
            case "read-timeout":
                raise httpx.ReadTimeout("timed out")
        return ok_response()

    mock.post(CREATE_URL).mock(side_effect=respond)

    async def create(i: int) -> tuple[str, BaseException | None]:
        address = f"person{i}@example.com"
        request = NewSchedulerRequest(
            host=Host(sub="acc_1"), recipients=[Recipient(email=address)], event=Event(summary="x")
        )
        try:
            await api.create_scheduler_request(request)
        except APIError as error:
            return address, error
        return address, None

    results = await asyncio.gather(*(create(i) for i in range(300)))
    assert len(results) == 300
    for address, error in results:
        sent = history[address]
        assert 1 <= len(sent) <= 3
        # Every send but the last was a provably unprocessed failure.
        assert all(outcome in safe for outcome in sent[:-1]), sent
        if error is None:
            assert sent[-1] == "ok"
        else:
            assert isinstance(error, APIError)
            assert error.attempts == len(sent)
            assert error.outcome_unknown is (sent[-1] in unsafe), (sent, error)
    assert sum(1 for _, e in results if e is None) > 100


@pytest.mark.parametrize(
    "first",
    [httpx.Response(500), httpx.ReadTimeout("slow answer"), httpx.RemoteProtocolError("gone")],
    ids=["500", "read-timeout", "dropped"],
)
async def test_an_unknown_outcome_on_any_attempt_sticks_to_the_final_error(
    new_api: Any, mock: respx.MockRouter, first: Any
) -> None:
    # The first attempt may have created the invite; the 429s after it prove nothing about it.
    api = new_api(retry=RetryPolicy(retry_unsafe=True, attempts=3, wait_jitter=0))
    mock.post(CREATE_URL).mock(
        side_effect=sequence(first, httpx.Response(429), httpx.Response(429))
    )
    with pytest.raises(RateLimitError) as info:
        await api.create_scheduler_request(seed_request())
    assert info.value.attempts == 3
    assert info.value.outcome_unknown is True


async def test_an_unknown_outcome_sticks_when_a_long_pause_ends_the_call(
    new_api: Any, mock: respx.MockRouter
) -> None:
    api = new_api(retry=RetryPolicy(retry_unsafe=True, attempts=3, max_retry_after=5))
    mock.post(CREATE_URL).mock(
        side_effect=sequence(
            httpx.Response(503), httpx.Response(429, headers={"Retry-After": "600"})
        )
    )
    with pytest.raises(RateLimitError) as info:
        await api.create_scheduler_request(seed_request())
    assert info.value.outcome_unknown is True
