"""
FakeCronofy sends push notifications: `select_slot` POSTs ``scheduling_request_time_chosen``.

In process (a transport to the receiver) and over loopback TCP (the fake served, the receiver
under uvicorn); signed with every accepted secret; the select URL's link metadata carried back;
misdelivered on demand; and nothing a receiver does (down, slow, 401) breaks the fake.
"""

from __future__ import annotations

import asyncio
import doctest
import gc
import json
import logging
import socket
import warnings
from typing import Any

import httpx
import pytest

from cronofy_async import (
    AsyncSchedulerAPI,
    ConfigurationError,
    Event,
    Host,
    NewSchedulingRequest,
    Recipient,
    SchedulingRequest,
)
from cronofy_async._clock import SystemClock
from cronofy_async.notifications import (
    HEADER,
    TIME_CHOSEN,
    Notification,
    NotificationReceiver,
    add_link_metadata,
    parse_notification,
    verify_signature,
)
from cronofy_async.testing import Delivery, FakeCronofy, NotificationFaults

from .helpers import FakeClock, use_clock
from .test_notifications_receiver import Recorder, serving

SECRET = "sk_test_fake_notifications"
HOOK = "http://bot.test/cronofy/notifications"


def invite() -> NewSchedulingRequest:
    return NewSchedulingRequest(
        host=Host(sub="acc_1"),
        recipients=[Recipient(email="doc@evenitron.com", slot_selector=True)],
        event=Event(summary="Intro call", duration_minutes=30),
    )


def in_process(receiver: Any, **options: Any) -> FakeCronofy:
    """A fake whose notifications reach `receiver` (an ASGI app) in process."""
    options.setdefault("notification_url", HOOK)
    return FakeCronofy(
        [SECRET],
        members=["acc_1"],
        rate_limit=None,
        notification_transport=httpx.ASGITransport(app=receiver),
        **options,
    )


async def create(fake: FakeCronofy) -> SchedulingRequest:
    async with fake.api() as api:
        use_clock(api, FakeClock())
        return await api.create_scheduling_request(invite())


def link_of(created: SchedulingRequest, **metadata: str) -> str:
    assert created.select_url is not None
    return add_link_metadata(created.select_url, **metadata)


@pytest.fixture
def virtual_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The fake waits a ``delay`` on the system clock: make that wait virtual, and record it."""
    waited: list[float] = []

    async def sleep(self: SystemClock, seconds: float) -> None:
        waited.append(seconds)
        await asyncio.sleep(0)

    monkeypatch.setattr(SystemClock, "sleep", sleep)
    return waited


# -- without a notification URL: as before ----------------------------------------------------


def test_without_a_url_select_slot_sends_nothing_and_needs_no_loop() -> None:
    fake = FakeCronofy(members=["acc_1"], rate_limit=None)
    created = asyncio.run(create(fake))
    entry = fake.select_slot(link_of(created, correlation_id="c1"))
    assert entry.slot_selection == "complete"
    assert entry.notification_task is None
    assert entry.link_metadata == {"correlation_id": "c1"}
    assert fake.notifications == []
    assert asyncio.run(fake.drain_notifications()) == []
    fake.notification_faults = NotificationFaults(repeat=2)  # kept, though nothing is sent
    assert fake.notification_faults.repeat == 2


# -- in process -------------------------------------------------------------------------------


async def test_select_slot_posts_the_documented_notification_with_the_links_metadata() -> None:
    recorder = Recorder()
    fake = in_process(NotificationReceiver(SECRET, recorder))
    created = await create(fake)
    link = link_of(created, correlation_id="order-42", utm_source="bot", utm_campaign="spring")
    entry = fake.select_slot(link)
    assert entry.slot_selection == "complete"
    assert entry.link_metadata == {
        "correlation_id": "order-42",
        "utm_source": "bot",
        "utm_campaign": "spring",
    }
    task = entry.notification_task
    assert task is not None
    [delivery] = await task
    assert await fake.drain_notifications() == [delivery]
    assert fake.notifications == [delivery]
    assert (delivery.status_code, delivery.type, delivery.url) == (200, TIME_CHOSEN, HOOK)
    assert verify_signature(delivery.body, delivery.signature, SECRET)

    [notification] = recorder.seen
    assert notification.type == TIME_CHOSEN
    assert notification.correlation_id == "order-42"
    assert dict(notification.utm) == {"utm_source": "bot", "utm_campaign": "spring"}
    assert notification.scheduling_request is not None
    assert notification.scheduling_request.scheduling_request_id == created.scheduling_request_id
    assert notification.scheduling_request.slot_selection == "complete"

    # The body's scheduling request is the query's answer, plus the scheduler metadata.
    body = json.loads(delivery.body)
    assert set(body) == {"notification", "scheduling_request"}
    assert set(body["notification"]) == {"type", "triggered_at"}
    sent = body["scheduling_request"]
    scheduler = sent["event"].pop("metadata")["scheduler"]
    assert scheduler == entry.link_metadata
    assert sent == entry.answer()
    assert {"recipient_operations", "primary_select_url", "dashboard_url"} <= set(sent)


async def test_selecting_by_id_or_bare_link_carries_no_metadata() -> None:
    recorder = Recorder()
    fake = in_process(NotificationReceiver(SECRET, recorder))
    first, second = await create(fake), await create(fake)
    fake.select_slot(first.scheduling_request_id)
    assert second.select_url is not None
    fake.select_slot(second.select_url)
    deliveries = await fake.drain_notifications()
    assert sorted(d.status_code or 0 for d in deliveries) == [200, 200]
    assert [n.correlation_id for n in recorder.seen] == [None, None]
    ids = {
        n.scheduling_request.scheduling_request_id for n in recorder.seen if n.scheduling_request
    }
    assert ids == {first.scheduling_request_id, second.scheduling_request_id}
    assert [e.link_metadata for e in fake.scheduling_requests] == [{}, {}]


async def test_captured_data_is_reported_under_its_prefix() -> None:
    recorder = Recorder()
    fake = in_process(NotificationReceiver(SECRET, recorder))
    created = await create(fake)
    entry = fake.select_slot(
        link_of(created, correlation_id="c1"), captured_data={"phone_number": "+44 7700 900123"}
    )
    [delivery] = await fake.drain_notifications()
    scheduler = json.loads(delivery.body)["scheduling_request"]["event"]["metadata"]["scheduler"]
    assert scheduler == {"correlation_id": "c1", "captured_data.phone_number": "+44 7700 900123"}
    assert dict(recorder.seen[0].captured_data) == {"phone_number": "+44 7700 900123"}
    assert entry.captured_data == {"phone_number": "+44 7700 900123"}


async def test_the_hooks_still_hear_the_query_answer() -> None:
    heard: list[dict[str, Any]] = []
    fake = in_process(NotificationReceiver(SECRET, Recorder()))
    fake._on_slot_selected.append(heard.append)
    created = await create(fake)
    fake.select_slot(link_of(created, correlation_id="c1"))
    await fake.drain_notifications()
    [answer] = heard
    assert "metadata" not in answer["event"]  # the hook gets the query's shape, unchanged


async def test_signed_with_every_accepted_secret_as_during_a_rotation() -> None:
    seen: list[httpx.Request] = []

    def capture(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    fake = FakeCronofy(
        ["sk_new", "sk_old", "sk_older"],
        members=["acc_1"],
        rate_limit=None,
        notification_url="https://bot.example.com/hook",  # a transport lifts the loopback rule
        notification_transport=httpx.MockTransport(capture),
    )
    async with fake.api() as api:
        use_clock(api, FakeClock())
        created = await api.create_scheduling_request(invite())
    fake.select_slot(created.scheduling_request_id)
    [delivery] = await fake.drain_notifications()
    [request] = seen
    assert str(request.url) == "https://bot.example.com/hook"
    assert request.headers["content-type"] == "application/json"
    entries = request.headers[HEADER].split(",")
    assert len(entries) == 3
    for secret in ("sk_new", "sk_old", "sk_older"):
        assert verify_signature(request.content, request.headers[HEADER], secret)
    assert not verify_signature(request.content, request.headers[HEADER], "sk_other")
    assert delivery.signature == request.headers[HEADER]
    # Every entry is one secret's signature: a receiver with only the old one accepts it.
    assert sum(verify_signature(request.content, e, "sk_old") for e in entries) == 1


async def test_cancelling_sends_nothing_as_cronofy_documents_no_such_event() -> None:
    fake = in_process(NotificationReceiver(SECRET, Recorder()))
    created = await create(fake)
    async with fake.api() as api:
        use_clock(api, FakeClock())
        await api.cancel_scheduling_request(created.scheduling_request_id)
    assert await fake.drain_notifications() == []


# -- misdelivery on demand --------------------------------------------------------------------


async def test_a_wrong_signature_is_refused_and_the_handler_never_runs() -> None:
    recorder = Recorder()
    fake = in_process(
        NotificationReceiver(SECRET, recorder),
        notification_faults=NotificationFaults(bad_signature=True),
    )
    fake.select_slot((await create(fake)).scheduling_request_id)
    [delivery] = await fake.drain_notifications()
    assert (delivery.status_code, delivery.signed_correctly) == (401, False)
    assert recorder.seen == []


async def test_a_repeated_delivery_posts_twice_the_same_bytes() -> None:
    posts: list[tuple[bytes, str]] = []
    recorder = Recorder()
    receiver = httpx.ASGITransport(app=NotificationReceiver(SECRET, recorder))

    async def counting(request: httpx.Request) -> httpx.Response:
        posts.append((await request.aread(), request.headers[HEADER]))
        return await receiver.handle_async_request(request)

    fake = FakeCronofy(
        [SECRET],
        members=["acc_1"],
        rate_limit=None,
        notification_url=HOOK,
        notification_transport=httpx.MockTransport(counting),
    )
    fake.notification_faults = NotificationFaults(repeat=2)
    created = await create(fake)
    fake.select_slot(link_of(created, correlation_id="c1"))
    deliveries = await fake.drain_notifications()
    assert [(d.attempt, d.status_code) for d in deliveries] == [(1, 200), (2, 200)]
    assert len(posts) == 2
    assert posts[0] == posts[1]
    assert posts[0] == (deliveries[0].body, deliveries[0].signature)
    assert [n.correlation_id for n in recorder.seen] == ["c1", "c1"]


async def test_faults_per_call_override_the_fakes(virtual_sleep: list[float]) -> None:
    recorder = Recorder()
    fake = in_process(NotificationReceiver(SECRET, recorder))
    fake.notification_faults = NotificationFaults(bad_signature=True)
    created = await create(fake)
    fake.select_slot(created.scheduling_request_id)
    fake.select_slot(created.scheduling_request_id, faults=NotificationFaults(delay=45))
    deliveries = await fake.drain_notifications()
    assert sorted((d.notification, d.status_code or 0) for d in deliveries) == [(0, 401), (1, 200)]
    assert virtual_sleep == [45.0]
    assert len(recorder.seen) == 1


async def test_a_late_delivery_arrives_after_the_caller_moved_on(
    virtual_sleep: list[float],
) -> None:
    recorder = Recorder()
    fake = in_process(
        NotificationReceiver(SECRET, recorder), notification_faults=NotificationFaults(delay=30)
    )
    created = await create(fake)
    entry = fake.select_slot(link_of(created, correlation_id="late"))
    async with fake.api() as api:  # the fake answers meanwhile
        [found] = await api.query_scheduling_requests([created.scheduling_request_id])
    assert found.slot_selection == "complete"
    assert recorder.seen == []
    assert entry.notification_task is not None
    assert not entry.notification_task.done()
    [delivery] = await fake.drain_notifications()
    assert virtual_sleep == [30.0]
    assert delivery.status_code == 200
    assert [n.correlation_id for n in recorder.seen] == ["late"]


# -- a receiver that misbehaves does not break the fake --------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_a_receiver_that_is_down_breaks_nothing() -> None:
    fake = FakeCronofy(
        [SECRET],
        members=["acc_1"],
        rate_limit=None,
        notification_url=f"http://127.0.0.1:{free_port()}/hook",
    )
    created = await create(fake)
    entry = fake.select_slot(link_of(created, correlation_id="c1"))
    assert entry.slot_selection == "complete"
    async with fake.api() as api:
        [found] = await api.query_scheduling_requests([created.scheduling_request_id])
    assert found.slot_selection == "complete"
    [delivery] = await fake.drain_notifications()
    assert delivery.status_code is None
    assert delivery.error is not None
    assert delivery.error.startswith("ConnectError")
    fake.select_slot(created.scheduling_request_id)  # and again: still fine
    assert len(await fake.drain_notifications()) == 2


async def test_a_slow_receiver_does_not_hold_up_the_fakes_answers() -> None:
    release = asyncio.Event()
    handled: list[Notification] = []

    async def slow(notification: Notification) -> None:
        await release.wait()
        handled.append(notification)

    async with serving(NotificationReceiver(SECRET, slow)) as hook:
        fake = FakeCronofy(
            [SECRET], members=["acc_1"], rate_limit=None, notification_url=f"{hook}/n"
        )
        async with (
            fake.serve() as base_url,
            AsyncSchedulerAPI(SECRET, base_url=base_url, rate_limit=None) as api,
            fake.api(rate_limit=None) as local,
        ):
            created = await api.create_scheduling_request(invite())
            fake.select_slot(link_of(created, correlation_id="c1"))
            # The delivery is in flight, held by the receiver; the fake answers anyway, over
            # TCP and in process.
            for client in (api, local, api):
                [found] = await client.query_scheduling_requests([created.scheduling_request_id])
                assert found.slot_selection == "complete"
            other = await api.create_scheduling_request(invite())
            assert fake.notifications == []
            assert handled == []
            release.set()
            [delivery] = await fake.drain_notifications()
    assert delivery.status_code == 200
    assert [n.correlation_id for n in handled] == ["c1"]
    assert other.scheduling_request_id != created.scheduling_request_id


# -- over loopback TCP: the fake served, the receiver under uvicorn ---------------------------


async def test_over_tcp_to_a_receiver_under_uvicorn() -> None:
    recorder = Recorder()
    async with serving(NotificationReceiver(SECRET, recorder)) as hook:
        fake = FakeCronofy(
            [SECRET], members=["acc_1"], rate_limit=None, notification_url=f"{hook}/cronofy"
        )
        async with fake.serve() as base_url:
            async with AsyncSchedulerAPI(SECRET, base_url=base_url, rate_limit=None) as api:
                created = await api.create_scheduling_request(invite())
            entry = fake.select_slot(link_of(created, correlation_id="tcp-1"))
            fake.notification_faults = NotificationFaults(bad_signature=True)
            fake.select_slot(created.scheduling_request_id)
            fake.notification_faults = NotificationFaults(repeat=2)
            fake.select_slot(link_of(created, correlation_id="tcp-2"))
            deliveries = await fake.drain_notifications()
    got = sorted((d.notification, d.attempt, d.status_code) for d in deliveries)
    assert got == [(0, 1, 200), (1, 1, 401), (2, 1, 200), (2, 2, 200)]
    assert [n.correlation_id for n in recorder.seen] == ["tcp-1", "tcp-2", "tcp-2"]
    assert entry.link_metadata == {"correlation_id": "tcp-2"}  # the latest pick's link
    sent = recorder.seen[0].scheduling_request
    assert sent is not None
    assert sent.primary_select_url == created.select_url  # links as the client saw them


# -- pending deliveries when everything stops -------------------------------------------------


@pytest.mark.parametrize("over_tcp", [False, True])
def test_pending_deliveries_when_the_loop_ends_leave_no_warning(
    over_tcp: bool, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def forever(self: SystemClock, seconds: float) -> None:
        await asyncio.Event().wait()  # a delivery far too late for this run

    monkeypatch.setattr(SystemClock, "sleep", forever)
    tasks: list[asyncio.Task[list[Delivery]]] = []

    async def scenario() -> None:
        fake = FakeCronofy(
            [SECRET],
            members=["acc_1"],
            rate_limit=None,
            notification_url=f"http://127.0.0.1:{free_port()}/hook",
            notification_faults=NotificationFaults(delay=3600),
        )
        if over_tcp:
            async with fake.serve() as base_url:
                async with AsyncSchedulerAPI(SECRET, base_url=base_url, rate_limit=None) as api:
                    created = await api.create_scheduling_request(invite())
                entry = fake.select_slot(created.scheduling_request_id)
        else:
            entry = fake.select_slot((await create(fake)).scheduling_request_id)
        assert entry.notification_task is not None
        tasks.append(entry.notification_task)
        await asyncio.sleep(0)  # the delivery is under way, waiting its delay

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with caplog.at_level(logging.WARNING, logger="asyncio"):
            asyncio.run(scenario())
            gc.collect()
    assert [str(w.message) for w in caught] == []
    assert [r.getMessage() for r in caplog.records if r.name == "asyncio"] == []
    [task] = tasks
    assert task.cancelled()  # asyncio.run cancelled it, as any task left over


# -- bad input ----------------------------------------------------------------------------------


def test_a_notification_url_off_loopback_needs_a_transport() -> None:
    with pytest.raises(ConfigurationError, match="not on loopback"):
        FakeCronofy(notification_url="https://bot.example.com/hook")
    with pytest.raises(ConfigurationError, match="absolute http"):
        FakeCronofy(notification_url="/hook")


def test_a_transport_without_a_url_or_a_url_not_a_string_is_refused() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200))
    with pytest.raises(ConfigurationError, match="notification_transport needs"):
        FakeCronofy(notification_transport=transport)
    with pytest.raises(ConfigurationError, match="notification_url must be a str, got URL"):
        FakeCronofy(notification_url=httpx.URL("http://127.0.0.1/"))  # type: ignore[arg-type]


def test_bad_notification_faults_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="NotificationFaults"):
        FakeCronofy(notification_faults={"repeat": 2})  # type: ignore[arg-type]
    fake = FakeCronofy(notification_url="http://127.0.0.1:9/hook")
    with pytest.raises(ConfigurationError, match="NotificationFaults"):
        fake.notification_faults = 2  # type: ignore[assignment]
    assert fake.notification_faults == NotificationFaults()


async def test_bad_select_slot_input_changes_nothing() -> None:
    fake = in_process(NotificationReceiver(SECRET, Recorder()))
    created = await create(fake)
    [entry] = fake.scheduling_requests
    with pytest.raises(ConfigurationError, match="no scheduling request with the select URL"):
        fake.select_slot("https://app.cronofy.test/s/nope?correlation_id=x")
    with pytest.raises(ConfigurationError, match="faults must be NotificationFaults"):
        fake.select_slot(created.scheduling_request_id, faults=2)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="captured_data must be a mapping"):
        fake.select_slot(created.scheduling_request_id, captured_data=["x"])  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="captured_data keys must be"):
        fake.select_slot(created.scheduling_request_id, captured_data={1: "x"})  # type: ignore[dict-item]
    with pytest.raises(ConfigurationError, match=r"captured_data\['when'\] must be JSON"):
        fake.select_slot(created.scheduling_request_id, captured_data={"when": object()})
    with pytest.raises(ConfigurationError, match="select_slot takes"):
        fake.select_slot(42)  # type: ignore[arg-type]
    assert entry.slot_selection == "pending"
    async with fake.api() as api:
        use_clock(api, FakeClock())
        await api.cancel_scheduling_request(created.scheduling_request_id)
    with pytest.raises(ConfigurationError, match="cancelled"):
        fake.select_slot(link_of(created, correlation_id="c1"))
    assert entry.slot_selection == "pending"
    assert entry.link_metadata == {}
    assert fake.notifications == []


def test_select_slot_outside_a_loop_with_a_url_says_so_and_changes_nothing() -> None:
    fake = in_process(NotificationReceiver(SECRET, Recorder()))
    created = asyncio.run(create(fake))
    with pytest.raises(ConfigurationError, match="running event loop"):
        fake.select_slot(created.scheduling_request_id)
    assert fake.scheduling_requests[0].slot_selection == "pending"


async def test_no_repr_or_record_shows_the_secret() -> None:
    fake = FakeCronofy(
        ["sk_hidden_value"],
        members=["acc_1"],
        rate_limit=None,
        notification_url=HOOK,
        notification_transport=httpx.MockTransport(lambda request: httpx.Response(200)),
    )
    created = await create(fake)
    entry = fake.select_slot(created.scheduling_request_id)
    [delivery] = await fake.drain_notifications()
    for shown in (repr(fake), repr(fake._notifier), repr(entry), repr(delivery), delivery.body):
        assert "sk_hidden_value" not in str(shown)


async def test_parse_notification_reads_what_the_fake_sends() -> None:
    fake = FakeCronofy(
        [SECRET],
        members=["acc_1"],
        rate_limit=None,
        notification_url=HOOK,
        notification_transport=httpx.MockTransport(lambda request: httpx.Response(204)),
    )
    created = await create(fake)
    fake.select_slot(link_of(created, utm_medium="email"))
    [delivery] = await fake.drain_notifications()
    notification = parse_notification(delivery.body)
    assert notification.correlation_id is None
    assert dict(notification.utm) == {"utm_medium": "email"}
    assert delivery.status_code == 204


# -- the surface ------------------------------------------------------------------------------


def test_exported_from_testing_and_documented() -> None:
    import cronofy_async.testing as testing
    from cronofy_async.testing import _notify

    for name in ("Delivery", "NotificationFaults"):
        assert name in testing.__all__
        obj = getattr(testing, name)
        assert obj.__module__ == "cronofy_async.testing"
        assert obj.__doc__
    for name in ("notification_faults", "notifications", "drain_notifications", "select_slot"):
        assert getattr(FakeCronofy, name).__doc__, name
    failures, tried = doctest.testmod(_notify)
    assert (failures, tried > 0) == (0, True)
