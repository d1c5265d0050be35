"""
Scheduling requests against respx: each request pinned, each answer read, each retry rule.

Create is retried only when it provably was not processed; query and cancel are retried on
transient failures too. A query never says ``outcome_unknown``; a cancel does when it may have
happened.
"""

from __future__ import annotations

import json
import platform
from typing import Any

import httpx
import pytest
import respx

from cronofy_async import (
    APIConnectionError,
    APITimeoutError,
    AsyncSchedulerAPI,
    Event,
    Host,
    NewSchedulingRequest,
    NotFoundError,
    Outcome,
    RateLimit,
    Recipient,
    RecipientOperations,
    ResponseFormatError,
    SchedulingRequest,
    ServerError,
    __version__,
)
from cronofy_async._scheduling_models import ModelError, structure_scheduling_request

from .conftest import SECRET
from .helpers import FakeClock, use_clock
from .test_scheduling_payload import EXAMPLE_BODY, example_request

BASE = "https://api.cronofy.com"
CREATE_URL = f"{BASE}/v1/scheduling_requests"
QUERY_URL = f"{BASE}/v1/scheduling_requests/query"
CANCEL_URL = f"{BASE}/v1/scheduling_requests/cancel"

# A query item as Cronofy documents it (REFERENCE.md), with a field this library does not model.
ITEM: dict[str, Any] = {
    "scheduling_request_id": "srq_1",
    "slot_selection": "pending",
    "primary_select_url": "https://app.cronofy.com/s/abc",
    "dashboard_url": "https://app.cronofy.com/dashboard/srq_1",
    "summary": "Driving lessons - Marty & Doc",
    "duration": {"minutes": 30},
    "buffer": {"before": {"minutes": 20}, "after": {"minutes": 15}},
    "recipient_operations": {
        "view_url": "https://app.cronofy.com/v",
        "decline_url": "https://app.cronofy.com/d",
        "reschedule_url": "https://app.cronofy.com/r",
    },
    "recipients": [
        {
            "email": "marty@evenitron.com",
            "display_name": "Marty McFly",
            "slot_selector": True,
            "select_url": "https://app.cronofy.com/s/abc",
        }
    ],
    "event": {"summary": "Driving lessons - Marty & Doc"},
}


def item(request_id: str = "srq_1", **changes: Any) -> dict[str, Any]:
    return {**ITEM, "scheduling_request_id": request_id, **changes}


def created_response(**changes: Any) -> httpx.Response:
    return httpx.Response(200, json={"scheduling_request": item(**changes)})


def query_response(*items: Any) -> httpx.Response:
    return httpx.Response(200, json={"scheduling_requests": list(items)})


def wrapped(request_id: str, **changes: Any) -> dict[str, Any]:
    return {"scheduling_request": item(request_id, **changes)}


def assert_common_headers(sent: httpx.Request, *, with_body: bool) -> None:
    assert sent.headers["authorization"] == f"Bearer {SECRET}"
    assert sent.headers["accept"] == "application/json"
    user_agent = sent.headers["user-agent"]
    assert f"cronofy-async/{__version__}" in user_agent
    assert platform.python_version() in user_agent
    if with_body:
        assert sent.headers["content-type"] == "application/json; charset=utf-8"
    else:
        assert "content-type" not in sent.headers


# -- the requests, pinned --------------------------------------------------------------------


async def test_create_sends_the_documented_request(
    api: AsyncSchedulerAPI, mock: respx.MockRouter
) -> None:
    route = mock.post(CREATE_URL).mock(return_value=created_response())
    created = await api.create_scheduling_request(example_request())

    sent = route.calls.last.request
    assert sent.method == "POST"
    assert str(sent.url) == CREATE_URL
    assert json.loads(sent.content) == json.loads(EXAMPLE_BODY)
    assert_common_headers(sent, with_body=True)
    assert "cronofy-impersonate" not in sent.headers
    assert created.scheduling_request_id == "srq_1"
    assert created.select_url == "https://app.cronofy.com/s/abc"


async def test_query_sends_the_documented_request(
    api: AsyncSchedulerAPI, mock: respx.MockRouter
) -> None:
    route = mock.post(QUERY_URL).mock(return_value=query_response(wrapped("srq_1")))
    [found] = await api.query_scheduling_requests(["srq_1"])

    sent = route.calls.last.request
    assert sent.method == "POST"
    assert str(sent.url) == QUERY_URL
    assert sent.content == b'{"scheduling_request_ids":["srq_1"]}'
    assert_common_headers(sent, with_body=True)
    assert found.scheduling_request_id == "srq_1"


async def test_cancel_sends_the_documented_request(
    api: AsyncSchedulerAPI, mock: respx.MockRouter
) -> None:
    route = mock.post(CANCEL_URL).mock(return_value=httpx.Response(202))
    await api.cancel_scheduling_request("srq_1")

    sent = route.calls.last.request
    assert sent.method == "POST"
    assert str(sent.url) == CANCEL_URL
    assert sent.content == b'{"scheduling_request_id":"srq_1"}'
    assert_common_headers(sent, with_body=True)


async def test_create_and_cancel_may_be_impersonated(
    api: AsyncSchedulerAPI, mock: respx.MockRouter
) -> None:
    create = mock.post(CREATE_URL).mock(return_value=created_response())
    cancel = mock.post(CANCEL_URL).mock(return_value=httpx.Response(202))
    view = api.impersonate("acc_5ba21743f408617d1269ea1e")
    await view.create_scheduling_request(
        NewSchedulingRequest(
            recipients=[Recipient(email="marty@evenitron.com")], event=Event(summary="Hi")
        )
    )
    await view.cancel_scheduling_request("srq_1")
    for route in (create, cancel):
        sent = route.calls.last.request
        assert sent.headers["cronofy-impersonate"] == "acc_5ba21743f408617d1269ea1e"
    assert "host" not in json.loads(create.calls.last.request.content)


async def test_a_data_center_view_sends_there(mock: respx.MockRouter) -> None:
    route = mock.post("https://api-uk.cronofy.com/v1/scheduling_requests/query").mock(
        return_value=query_response()
    )
    async with AsyncSchedulerAPI(SECRET, data_center="uk", rate_limit=None) as api:
        assert await api.query_scheduling_requests(["srq_1"]) == []
    assert route.called


# -- reading answers -------------------------------------------------------------------------


def test_a_query_item_is_read_whole() -> None:
    request = structure_scheduling_request(item())
    assert request == SchedulingRequest(
        scheduling_request_id="srq_1",
        slot_selection="pending",
        primary_select_url="https://app.cronofy.com/s/abc",
        dashboard_url="https://app.cronofy.com/dashboard/srq_1",
        summary="Driving lessons - Marty & Doc",
        duration_minutes=30,
        recipients=request.recipients,
        recipient_operations=RecipientOperations(
            view_url="https://app.cronofy.com/v",
            decline_url="https://app.cronofy.com/d",
            reschedule_url="https://app.cronofy.com/r",
        ),
    )
    [recipient] = request.recipients
    assert (recipient.email, recipient.display_name) == ("marty@evenitron.com", "Marty McFly")
    assert recipient.slot_selector is True
    assert recipient.select_url == "https://app.cronofy.com/s/abc"
    assert request.event == {"summary": "Driving lessons - Marty & Doc"}
    assert request.raw["buffer"] == {"before": {"minutes": 20}, "after": {"minutes": 15}}


def test_a_minimal_item_and_unknown_values_are_kept() -> None:
    request = structure_scheduling_request(
        {"scheduling_request_id": "srq_2", "slot_selection": "expired", "novel": [1]}
    )
    assert request.slot_selection == "expired"
    assert request.raw["novel"] == [1]
    assert request.recipients == ()
    assert request.select_url is None
    assert request.summary is None
    # The summary falls back to the event's.
    assert structure_scheduling_request(item(summary=None)).summary == ITEM["summary"]
    # The select_url falls back to the first recipient's.
    fallback = structure_scheduling_request(item(primary_select_url=None))
    assert fallback.select_url == "https://app.cronofy.com/s/abc"


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ([], "scheduling_request"),
        ({"slot_selection": "pending"}, "scheduling_request.scheduling_request_id"),
        (item(slot_selection=1), "scheduling_request.slot_selection"),
        (item(duration={"minutes": "30"}), "scheduling_request.duration.minutes"),
        (item(duration={"minutes": True}), "scheduling_request.duration.minutes"),
        (item(duration=30), "scheduling_request.duration"),
        (item(recipients={"a": 1}), "scheduling_request.recipients"),
        (item(recipients=["x"]), "scheduling_request.recipients[0]"),
        (
            item(recipients=[{"slot_selector": "yes"}]),
            "scheduling_request.recipients[0].slot_selector",
        ),
        (item(recipient_operations=[]), "scheduling_request.recipient_operations"),
        (item(event="x"), "scheduling_request.event"),
        (item(dashboard_url=1), "scheduling_request.dashboard_url"),
    ],
)
def test_a_malformed_item_names_its_field(value: Any, path: str) -> None:
    with pytest.raises(ModelError) as info:
        structure_scheduling_request(value)
    assert info.value.path == path


async def test_a_query_answers_what_was_asked_in_the_order_asked(
    api: AsyncSchedulerAPI, mock: respx.MockRouter
) -> None:
    # Cronofy answers out of order, omits one, repeats one, adds one nobody asked for, and
    # sends one item without the documented wrapper.
    mock.post(QUERY_URL).mock(
        return_value=query_response(
            wrapped("srq_3"),
            wrapped("srq_stranger"),
            item("srq_1", slot_selection="complete"),
            wrapped("srq_3", slot_selection="complete"),
            # Malformed, but about ids not asked for (or answered already): not read at all.
            {"scheduling_request": {"scheduling_request_id": "srq_other", "recipients": 5}},
            {"scheduling_request": {"scheduling_request_id": "srq_3", "duration": "long"}},
        )
    )
    found = await api.query_scheduling_requests(["srq_1", "srq_2", "srq_3", "srq_1"])
    assert [(r.scheduling_request_id, r.slot_selection) for r in found] == [
        ("srq_1", "complete"),
        ("srq_3", "pending"),
    ]


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"<html>oops</html>",
        b"[]",
        b"{}",
        b'{"scheduling_requests": {}}',
        b'{"scheduling_requests": [{"scheduling_request": {"slot_selection": "pending"}}]}',
    ],
)
async def test_a_malformed_query_answer_changes_nothing_and_is_not_retried(
    api: AsyncSchedulerAPI, mock: respx.MockRouter, body: bytes
) -> None:
    route = mock.post(QUERY_URL).mock(return_value=httpx.Response(200, content=body))
    with pytest.raises(ResponseFormatError) as info:
        await api.query_scheduling_requests(["srq_1"])
    assert info.value.outcome_unknown is False
    assert route.call_count == 1


async def test_a_malformed_create_answer_says_it_may_exist(
    api: AsyncSchedulerAPI, mock: respx.MockRouter
) -> None:
    route = mock.post(CREATE_URL).mock(
        return_value=httpx.Response(200, json={"scheduling_request": {"id": 1}})
    )
    with pytest.raises(ResponseFormatError, match="scheduling_request_id") as info:
        await api.create_scheduling_request(example_request())
    assert info.value.outcome_unknown is True
    assert route.call_count == 1


@pytest.mark.parametrize("body", [b"", b"garbage \x00\xff", b'{"scheduling_request": 1}'])
async def test_a_cancel_ignores_whatever_body_its_202_has(
    api: AsyncSchedulerAPI, mock: respx.MockRouter, body: bytes
) -> None:
    route = mock.post(CANCEL_URL).mock(return_value=httpx.Response(202, content=body))
    await api.cancel_scheduling_request("srq_1")  # no error, nothing to read
    assert route.call_count == 1


# -- retry rules, per operation --------------------------------------------------------------


def play(*outcomes: httpx.Response | Exception, then: httpx.Response) -> Any:
    queue = list(outcomes)

    def respond(request: httpx.Request) -> httpx.Response:
        if not queue:
            return then
        outcome = queue.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    return respond


TRANSIENT = [
    httpx.Response(503),
    httpx.Response(500, text="<html>"),
    httpx.ReadTimeout("slow"),
    httpx.RemoteProtocolError("dropped"),
]
TRANSIENT_IDS = ["503", "500", "read-timeout", "dropped"]


@pytest.mark.parametrize("failure", TRANSIENT, ids=TRANSIENT_IDS)
async def test_a_query_is_retried_after_a_transient_failure(
    api: AsyncSchedulerAPI, mock: respx.MockRouter, clock: FakeClock, failure: Any
) -> None:
    route = mock.post(QUERY_URL).mock(
        side_effect=play(failure, then=query_response(wrapped("srq_1")))
    )
    [found] = await api.query_scheduling_requests(["srq_1"])
    assert found.scheduling_request_id == "srq_1"
    assert route.call_count == 2
    assert len(clock.sleeps) == 1


@pytest.mark.parametrize("failure", TRANSIENT, ids=TRANSIENT_IDS)
async def test_a_cancel_is_retried_after_a_transient_failure(
    api: AsyncSchedulerAPI, mock: respx.MockRouter, failure: Any
) -> None:
    route = mock.post(CANCEL_URL).mock(side_effect=play(failure, then=httpx.Response(202)))
    await api.cancel_scheduling_request("srq_1")
    assert route.call_count == 2


@pytest.mark.parametrize("failure", TRANSIENT, ids=TRANSIENT_IDS)
async def test_a_create_is_not_retried_after_a_failure_that_may_hide_a_create(
    api: AsyncSchedulerAPI, mock: respx.MockRouter, failure: Any
) -> None:
    route = mock.post(CREATE_URL).mock(side_effect=play(failure, then=created_response()))
    with pytest.raises((ServerError, APIConnectionError)) as info:
        await api.create_scheduling_request(example_request())
    assert info.value.outcome_unknown is True
    assert info.value.attempts == 1
    assert route.call_count == 1


async def test_a_create_is_retried_when_it_provably_was_not_sent(
    api: AsyncSchedulerAPI, mock: respx.MockRouter
) -> None:
    route = mock.post(CREATE_URL).mock(
        side_effect=play(
            httpx.ConnectError("refused"), httpx.Response(429), then=created_response()
        )
    )
    created = await api.create_scheduling_request(example_request())
    assert created.scheduling_request_id == "srq_1"
    assert route.call_count == 3


async def test_a_query_that_keeps_failing_never_says_outcome_unknown(
    api: AsyncSchedulerAPI, mock: respx.MockRouter
) -> None:
    route = mock.post(QUERY_URL).mock(
        side_effect=play(httpx.ReadTimeout("slow"), httpx.Response(503), then=httpx.Response(500))
    )
    with pytest.raises(ServerError) as info:
        await api.query_scheduling_requests(["srq_1"])
    assert info.value.outcome_unknown is False
    assert info.value.attempts == 3
    assert route.call_count == 3


async def test_a_cancel_that_keeps_failing_says_it_may_have_happened(
    api: AsyncSchedulerAPI, mock: respx.MockRouter
) -> None:
    route = mock.post(CANCEL_URL).mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(APITimeoutError) as info:
        await api.cancel_scheduling_request("srq_1")
    assert info.value.outcome_unknown is True
    assert info.value.attempts == 3
    assert route.call_count == 3


async def test_a_cancel_of_an_unknown_id_is_a_404_not_retried(
    api: AsyncSchedulerAPI, mock: respx.MockRouter
) -> None:
    route = mock.post(CANCEL_URL).mock(
        return_value=httpx.Response(404, json={"error": "not_found"})
    )
    with pytest.raises(NotFoundError) as info:
        await api.cancel_scheduling_request("srq_unknown")
    assert info.value.outcome_unknown is False
    assert route.call_count == 1


class CountingLimiter:
    def __init__(self) -> None:
        self.acquired = 0

    async def acquire(self) -> None:
        self.acquired += 1


async def test_every_operation_shares_the_pace_and_the_429_pause(
    mock: respx.MockRouter, clock: FakeClock
) -> None:
    limiter = CountingLimiter()
    mock.post(QUERY_URL).mock(
        side_effect=play(httpx.Response(429, headers={"retry-after": "7"}), then=query_response())
    )
    mock.post(CANCEL_URL).mock(return_value=httpx.Response(202))
    mock.post(CREATE_URL).mock(return_value=created_response())
    async with AsyncSchedulerAPI(SECRET, rate_limit=limiter) as api:
        use_clock(api, clock)
        await api.query_scheduling_requests(["srq_1"])
        await api.impersonate("acc_1").cancel_scheduling_request("srq_1")
        await api.create_scheduling_request(example_request())
    assert limiter.acquired == 4
    assert clock.sleeps == [7.0]


async def test_a_429_on_one_operation_pauses_the_others(
    mock: respx.MockRouter, clock: FakeClock
) -> None:
    mock.post(QUERY_URL).mock(return_value=httpx.Response(429, headers={"retry-after": "9"}))
    create = mock.post(CREATE_URL).mock(return_value=created_response())
    async with AsyncSchedulerAPI(SECRET, rate_limit=RateLimit(), retry=None) as api:
        use_clock(api, clock)
        with pytest.raises(Exception, match="429"):
            await api.query_scheduling_requests(["srq_1"])
        start = clock.now
        await api.create_scheduling_request(example_request())
    assert create.called
    assert clock.now - start >= 9


# -- batches ---------------------------------------------------------------------------------


def numbered(i: int) -> NewSchedulingRequest:
    return NewSchedulingRequest(
        host=Host(sub="acc_1"),
        recipients=[Recipient(email=f"person{i}@example.com")],
        event=Event(summary="Intro"),
    )


async def test_a_batch_of_scheduling_requests_has_the_same_outcomes(
    api: AsyncSchedulerAPI, mock: respx.MockRouter
) -> None:
    def respond(request: httpx.Request) -> httpx.Response:
        email = json.loads(request.content)["recipients"][0]["email"]
        if email == "person1@example.com":
            return httpx.Response(422, json={"errors": {"recipients.email": [{"key": "x"}]}})
        if email == "person2@example.com":
            return httpx.Response(500)
        return created_response(scheduling_request_id=f"srq_{email[6]}")

    mock.post(CREATE_URL).mock(side_effect=respond)
    report = await api.batch_create_scheduling_requests(
        [numbered(i) for i in range(4)], concurrency=2
    )
    outcomes = [(r.index, r.outcome) for r in report.results]
    assert outcomes == [
        (0, Outcome.CREATED),
        (1, Outcome.FAILED),
        (2, Outcome.UNKNOWN),
        (3, Outcome.CREATED),
    ]
    first = report.results[0]
    assert isinstance(first.created, SchedulingRequest)
    assert first.created.scheduling_request_id == "srq_0"
    assert first.scheduler_request is None  # only scheduler requests fill the old field
    assert report.results[2].attempts == 1


async def test_a_401_stops_a_scheduling_batch(
    api: AsyncSchedulerAPI, mock: respx.MockRouter
) -> None:
    route = mock.post(CREATE_URL).mock(return_value=httpx.Response(401))
    async with api.iter_create_scheduling_requests(
        (numbered(i) for i in range(50)), concurrency=1
    ) as results:
        seen = [result async for result in results]
    assert route.call_count == 1
    assert len(seen) == 50
    assert {r.outcome for r in seen[1:]} == {Outcome.NOT_SENT}
