"""The fake's notification machinery: the documented body, signed, delivered, misdelivered."""

from __future__ import annotations

import asyncio
import json
import socket
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from cronofy_async import ConfigurationError
from cronofy_async.notifications import (
    HEADER,
    TIME_CHOSEN,
    Notification,
    NotificationReceiver,
    add_link_metadata,
    parse_notification,
    verify_signature,
)
from cronofy_async.testing._notify import (
    Delivery,
    NotificationFaults,
    NotificationSender,
    build_notification_body,
    link_metadata_from_url,
)

from .helpers import FakeClock
from .notification_samples import PHONE, SECRET, documented_body
from .test_notifications_receiver import Recorder, serving

WHEN = datetime(2025, 1, 19, 16, 14, 11, tzinfo=UTC)
PLUS_ONE = timezone(timedelta(hours=1))
REQUEST: dict[str, Any] = {
    "scheduling_request_id": "srq_1",
    "slot_selection": "complete",
    "primary_select_url": "https://app.cronofy.test/r/1",
    "recipients": [{"email": "doc@evenitron.com", "slot_selector": True}],
    "event": {"summary": "Driving lessons"},
}


def body(**options: Any) -> dict[str, Any]:
    options.setdefault("triggered_at", WHEN)
    return build_notification_body(REQUEST, **options)


# -- build_notification_body --------------------------------------------------------------------


def test_builds_the_documented_shape() -> None:
    built = build_notification_body(
        documented_body()["scheduling_request"] | {"event": {"summary": "Driving lessons"}},
        triggered_at=WHEN,
        metadata={
            "correlation_id": "foobar",
            "utm_medium": "email",
            "utm_source": "newsletter",
            "utm_campaign": "spring",
        },
        captured_data={"phone_number": PHONE, "notes": "Bring the DeLorean"},
    )
    expected = documented_body()
    expected["scheduling_request"]["event"]["summary"] = "Driving lessons"
    assert built == expected


def test_what_it_builds_parses_back() -> None:
    notification = parse_notification(
        json.dumps(
            body(
                metadata={"correlation_id": "order-42", "utm_source": "bot"},
                captured_data={"notes": "hi"},
            )
        )
    )
    assert notification.type == TIME_CHOSEN
    assert notification.triggered_at == WHEN
    assert notification.correlation_id == "order-42"
    assert dict(notification.utm) == {"utm_source": "bot"}
    assert dict(notification.captured_data) == {"notes": "hi"}
    assert notification.scheduling_request is not None
    assert notification.scheduling_request.scheduling_request_id == "srq_1"


def test_the_scheduling_request_is_copied_not_changed() -> None:
    before = json.dumps(REQUEST)
    built = body(metadata={"correlation_id": "x"})
    assert json.dumps(REQUEST) == before
    assert built["scheduling_request"]["event"]["metadata"] == {
        "scheduler": {"correlation_id": "x"}
    }


def test_without_metadata_the_event_is_left_alone() -> None:
    assert body()["scheduling_request"] == REQUEST
    bare = build_notification_body({"scheduling_request_id": "srq_2"}, triggered_at=WHEN)
    assert bare["scheduling_request"] == {"scheduling_request_id": "srq_2"}


def test_existing_scheduler_metadata_is_merged() -> None:
    request = {"scheduling_request_id": "srq_3", "event": {"metadata": {"scheduler": {"a": 1}}}}
    built = build_notification_body(request, triggered_at=WHEN, metadata={"correlation_id": "c"})
    assert built["scheduling_request"]["event"]["metadata"]["scheduler"] == {
        "a": 1,
        "correlation_id": "c",
    }


@pytest.mark.parametrize(
    ("triggered_at", "expected"),
    [
        (WHEN, "2025-01-19T16:14:11Z"),
        (datetime(2025, 1, 19, 17, 14, 11, 999, tzinfo=PLUS_ONE), "2025-01-19T16:14:11Z"),
        ("2025-01-19T16:14:11.5Z", "2025-01-19T16:14:11.5Z"),
    ],
)  # fmt: skip
def test_triggered_at_is_cronofys_utc_format(triggered_at: Any, expected: str) -> None:
    assert body(triggered_at=triggered_at)["notification"]["triggered_at"] == expected


def test_other_types_can_be_sent() -> None:
    assert body(type="scheduling_request_cancelled")["notification"]["type"] == (
        "scheduling_request_cancelled"
    )


@pytest.mark.parametrize(
    ("request_", "options", "fragment"),
    [
        (REQUEST, {"triggered_at": datetime(2025, 1, 19)}, "aware datetime"),
        (REQUEST, {"triggered_at": WHEN, "metadata": {"utm_bogus": "x"}}, "unknown link metadata"),
        (["srq_1"], {"triggered_at": WHEN}, "must be a mapping"),
    ],
)
def test_bad_builder_input(request_: Any, options: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ConfigurationError, match=fragment):
        build_notification_body(request_, **options)


def test_link_metadata_round_trips_from_a_link() -> None:
    link = add_link_metadata(
        "https://app.cronofy.test/r/1?lang=en",
        correlation_id="order 42/é",
        utm_source="bot",
        utm_content="c",
    )
    assert link_metadata_from_url(link) == {
        "correlation_id": "order 42/é",
        "utm_source": "bot",
        "utm_content": "c",
    }
    assert link_metadata_from_url("https://app.cronofy.test/r/1") == {}


# -- NotificationSender, in process -------------------------------------------------------------


def in_process(receiver: NotificationReceiver, **options: Any) -> NotificationSender:
    options.setdefault("clock", FakeClock())
    return NotificationSender(
        "http://bot.test/cronofy",
        SECRET,
        transport=httpx.ASGITransport(app=receiver),
        **options,
    )


async def test_delivers_a_signed_notification_in_the_background() -> None:
    recorder = Recorder()
    async with in_process(NotificationReceiver(SECRET, recorder)) as sender:
        task = sender.send(body(metadata={"correlation_id": "order-42"}))
        assert sender.pending == 1
        assert recorder.seen == []  # not yet: it runs in the background
        [delivery] = await task
        assert await sender.drain() == [delivery]
    assert sender.pending == 0
    assert delivery.status_code == 200
    assert delivery.error is None
    assert (delivery.notification, delivery.attempt, delivery.type) == (0, 1, TIME_CHOSEN)
    assert delivery.signed_correctly
    assert verify_signature(delivery.body, delivery.signature, SECRET)
    assert json.loads(delivery.body)["scheduling_request"]["scheduling_request_id"] == "srq_1"
    [notification] = recorder.seen
    assert notification.correlation_id == "order-42"


async def test_what_a_receiver_sees_on_the_wire() -> None:
    seen: list[httpx.Request] = []

    async def capture(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    async with NotificationSender(
        "http://bot.test/hook", [SECRET, "old"], transport=httpx.MockTransport(capture)
    ) as sender:
        sender.send(body())
        [delivery] = await sender.drain()
    [request] = seen
    assert request.method == "POST"
    assert str(request.url) == "http://bot.test/hook"
    assert request.headers["content-type"] == "application/json"
    entries = request.headers[HEADER].split(",")
    assert len(entries) == 2  # one per secret, as Cronofy sends during a rotation
    assert verify_signature(request.content, request.headers[HEADER], "old")
    assert delivery.status_code == 204


async def test_a_bad_signature_is_refused_and_the_handler_never_runs() -> None:
    recorder = Recorder()
    faults = NotificationFaults(bad_signature=True)
    async with in_process(NotificationReceiver(SECRET, recorder), faults=faults) as sender:
        sender.send(body())
        [delivery] = await sender.drain()
    assert delivery.status_code == 401
    assert not delivery.signed_correctly
    assert not verify_signature(delivery.body, delivery.signature, SECRET)
    assert recorder.seen == []


async def test_a_repeated_delivery_is_byte_for_byte_the_same() -> None:
    recorder = Recorder()
    booked: set[str] = set()

    async def idempotent(notification: Notification) -> None:
        await recorder(notification)
        assert notification.correlation_id is not None
        booked.add(notification.correlation_id)

    async with in_process(NotificationReceiver(SECRET, idempotent)) as sender:
        sender.send(body(metadata={"correlation_id": "c1"}), faults=NotificationFaults(repeat=3))
        deliveries = await sender.drain()
    assert [d.attempt for d in deliveries] == [1, 2, 3]
    assert {d.notification for d in deliveries} == {0}
    assert len({(d.body, d.signature) for d in deliveries}) == 1
    assert [d.status_code for d in deliveries] == [200, 200, 200]
    assert len(recorder.seen) == 3
    assert booked == {"c1"}


async def test_a_late_delivery_waits_on_the_clock() -> None:
    clock = FakeClock()
    recorder = Recorder()
    faults = NotificationFaults(delay=30)
    async with in_process(NotificationReceiver(SECRET, recorder), faults=faults, clock=clock) as s:
        s.send(body())
        s.send(body(), faults=NotificationFaults())  # on time: overtakes the late one
        deliveries = await s.drain()
    assert clock.sleeps == [30.0]
    assert [d.notification for d in deliveries] == [1, 0]


async def test_faults_can_be_changed_between_sends() -> None:
    recorder = Recorder()
    async with in_process(NotificationReceiver(SECRET, recorder)) as sender:
        sender.faults = NotificationFaults(bad_signature=True)
        sender.send(body())
        sender.faults = NotificationFaults()
        sender.send(body())
        deliveries = await sender.drain()
    assert sorted(d.status_code or 0 for d in deliveries) == [200, 401]


async def test_drain_waits_for_what_is_sent_while_draining() -> None:
    sender: NotificationSender

    async def chain(notification: Notification) -> None:
        if notification.correlation_id == "first":
            sender.send(body(metadata={"correlation_id": "second"}))

    sender = in_process(NotificationReceiver(SECRET, chain))
    async with sender:
        sender.send(body(metadata={"correlation_id": "first"}))
        deliveries = await sender.drain()
    assert [d.notification for d in deliveries] == [0, 1]


async def test_the_body_is_frozen_when_sent() -> None:
    recorder = Recorder()
    async with in_process(NotificationReceiver(SECRET, recorder)) as sender:
        data = body(metadata={"correlation_id": "before"})
        sender.send(data)
        data["scheduling_request"]["event"]["metadata"]["scheduler"]["correlation_id"] = "after"
        await sender.drain()
    assert recorder.seen[0].correlation_id == "before"


async def test_a_failed_post_is_recorded_not_raised() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with NotificationSender(f"http://127.0.0.1:{port}/", SECRET) as sender:
        sender.send(body(), faults=NotificationFaults(repeat=2))
        deliveries = await sender.drain()
    assert [d.status_code for d in deliveries] == [None, None]
    assert all(d.error and d.error.startswith("ConnectError") for d in deliveries)


def test_sending_needs_a_running_loop() -> None:
    sender = NotificationSender("http://127.0.0.1:9/", SECRET)
    with pytest.raises(ConfigurationError, match="running event loop"):
        sender.send(body())


def test_the_repr_and_records_hide_secret_and_body() -> None:
    sender = NotificationSender("http://127.0.0.1:9/", SECRET)
    assert SECRET not in repr(sender)
    assert "sent=0" in repr(sender)
    delivery = Delivery(
        notification=0,
        attempt=1,
        url="u",
        type="t",
        signed_correctly=True,
        status_code=200,
        body=b'{"secret-body": 1}',
        signature="sig-value",
    )
    assert "secret-body" not in repr(delivery)
    assert "sig-value" not in repr(delivery)


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8000/", "http://127.5.0.1/x", "http://[::1]:8000/", "http://localhost/"],
)
def test_loopback_urls_are_accepted(url: str) -> None:
    assert NotificationSender(url, SECRET).url == url


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("https://example.com/hook", "not on loopback"),
        ("http://10.0.0.1/hook", "not on loopback"),
        ("/relative", "absolute http\\(s\\) URL"),
        ("ftp://127.0.0.1/", "absolute http\\(s\\) URL"),
        ("http://[::1/", "not a valid URL"),
    ],
)
def test_other_urls_are_refused_without_a_transport(url: str, fragment: str) -> None:
    with pytest.raises(ConfigurationError, match=fragment):
        NotificationSender(url, SECRET)


def test_a_transport_lifts_the_loopback_rule() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200))
    sender = NotificationSender("https://example.com/hook", SECRET, transport=transport)
    assert sender.url == "https://example.com/hook"


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"repeat": 0}, "repeat must be an int of at least 1"),
        ({"repeat": 1.5}, "repeat must be an int"),
        ({"repeat": True}, "repeat must be an int"),
        ({"delay": -1}, "delay must be a number of seconds >= 0"),
        ({"delay": float("nan")}, "delay must be"),
        ({"delay": "1"}, "delay must be"),
    ],
)
def test_bad_faults(options: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ConfigurationError, match=fragment):
        NotificationFaults(**options)


def test_bad_sender_configuration() -> None:
    with pytest.raises(ConfigurationError, match="NotificationFaults"):
        NotificationSender("http://127.0.0.1/", SECRET, faults={"repeat": 2})  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="non-empty client secret"):
        NotificationSender("http://127.0.0.1/", [])


# -- over loopback, to a receiver under uvicorn -------------------------------------------------


async def test_over_loopback_to_a_receiver_under_uvicorn() -> None:
    recorder = Recorder()
    receiver = NotificationReceiver(SECRET, recorder)
    async with serving(receiver) as url, NotificationSender(f"{url}/cronofy", SECRET) as sender:
        sender.send(body(metadata={"correlation_id": "c1"}))
        sender.send(body(), faults=NotificationFaults(bad_signature=True))
        sender.send(body(metadata={"correlation_id": "c3"}), faults=NotificationFaults(repeat=2))
        deliveries = await sender.drain()
    by_notification = sorted((d.notification, d.attempt, d.status_code) for d in deliveries)
    assert by_notification == [(0, 1, 200), (1, 1, 401), (2, 1, 200), (2, 2, 200)]
    assert sorted(n.correlation_id or "" for n in recorder.seen) == ["c1", "c3", "c3"]


async def test_a_given_transport_is_borrowed_not_closed() -> None:
    closed: list[bool] = []

    class Transport(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            return httpx.Response(200)

        async def aclose(self) -> None:
            closed.append(True)

    async with NotificationSender("http://x/", SECRET, transport=Transport()) as sender:
        sender.send(body())
        sender.send({"not": "a notification"})
        sender.send({"notification": "odd"})
        deliveries = await sender.drain()
    assert closed == []
    assert sorted(d.type for d in deliveries) == ["", "", TIME_CHOSEN]


async def test_aclose_finishes_pending_deliveries() -> None:
    recorder = Recorder()
    sender = in_process(NotificationReceiver(SECRET, recorder))
    sender.send(body())
    await sender.aclose()
    assert len(recorder.seen) == 1
    await sender.aclose()  # twice is fine
    await asyncio.sleep(0)
