"""
The fake Cronofy's push notifications: the body Cronofy documents, signed and POSTed.

`build_notification_body` is pure (a scheduling request, a type, a time and the link's
metadata in; the documented body out). `NotificationSender` delivers bodies in the background
over loopback, and can misbehave as a real sender may: sign wrongly, deliver twice, deliver
late. Every delivery is recorded with the status the receiver answered. `FakeNotifications` is
the part of `FakeCronofy` that owns a sender and sends when a slot is picked.
"""

from __future__ import annotations

import asyncio
import copy
import ipaddress
import json
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

import attrs
import httpx

from .._clock import Clock, SystemClock
from .._errors import ConfigurationError
from ..notifications._links import LINK_METADATA_KEYS
from ..notifications._notification import TIME_CHOSEN
from ..notifications._signature import (
    HEADER,
    Secrets,
    hold_secrets,
    require_secrets,
    signature_header,
)

__all__ = [
    "Delivery",
    "FakeNotifications",
    "NotificationFaults",
    "NotificationSender",
    "build_notification_body",
    "link_metadata_from_url",
]

_USER_AGENT: Final = "cronofy-async-fake/notifications"
_LOOPBACK_NAMES: Final = frozenset({"localhost", "localhost.localdomain"})


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{name} must be an int of at least 1, got {value!r}")
    return value


def _repeat(value: object) -> int:
    return _positive_int("repeat", value)


def _delay(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ConfigurationError(f"delay must be a number of seconds >= 0, got {value!r}")
    return float(value)


@attrs.frozen(kw_only=True)
class NotificationFaults:
    """
    How the fake misdelivers its notifications, to test a handler's checks and idempotency.

    >>> NotificationFaults(repeat=2)  # every notification arrives twice, identical
    NotificationFaults(bad_signature=False, repeat=2, delay=0.0)
    """

    bad_signature: bool = False
    """Sign with the wrong key: a receiver must answer 401 and not act."""
    repeat: int = attrs.field(default=1, converter=_repeat)
    """Deliver each notification this many times, one after the other, byte for byte equal."""
    delay: float = attrs.field(default=0.0, converter=_delay)
    """Seconds to wait before the first delivery (late: after the caller has moved on)."""


@attrs.frozen(kw_only=True)
class Delivery:
    """
    One POST of one notification, and what the receiver answered.

    The fake's `notifications` and `drain_notifications` give them::

        [delivery] = await fake.drain_notifications()
        assert delivery.status_code == 401 and not delivery.signed_correctly
    """

    notification: int
    """Which notification (from 0, in the order they were sent)."""
    attempt: int
    """Which delivery of it (from 1; more than 1 with ``repeat``)."""
    url: str
    """Where it was POSTed."""
    type: str
    """The notification's type."""
    signed_correctly: bool
    """Whether the signature was genuine (``False`` with ``bad_signature``)."""
    status_code: int | None
    """The receiver's answer, or ``None`` if none came (see `error`)."""
    error: str | None = None
    """Why no answer came (the httpx exception's class and message), else ``None``."""
    body: bytes = attrs.field(repr=False)
    """The exact bytes POSTed."""
    signature: str = attrs.field(repr=False)
    """The ``Cronofy-HMAC-SHA256`` header sent."""


def _timestamp(value: datetime | str) -> str:
    if isinstance(value, str):
        return value
    if value.tzinfo is None:
        raise ConfigurationError("triggered_at must be an aware datetime (or an ISO string)")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_notification_body(
    scheduling_request: Mapping[str, Any],
    *,
    type: str = TIME_CHOSEN,
    triggered_at: datetime | str,
    metadata: Mapping[str, str] | None = None,
    captured_data: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """
    The body Cronofy documents for a push notification about `scheduling_request`.

    `scheduling_request` is the ``scheduling_request`` object as the fake answers it (copied,
    never changed); `metadata` is the link's ``correlation_id`` and ``utm_*`` values (see
    `link_metadata_from_url`) and `captured_data` what the booking page captured. Both land
    in ``scheduling_request.event.metadata.scheduler``, where Cronofy reports them.

    >>> body = build_notification_body(
    ...     {"scheduling_request_id": "srq_1", "slot_selection": "complete"},
    ...     triggered_at="2025-01-19T16:14:11Z",
    ...     metadata={"correlation_id": "order-42"},
    ... )
    >>> body["notification"]
    {'type': 'scheduling_request_time_chosen', 'triggered_at': '2025-01-19T16:14:11Z'}
    >>> body["scheduling_request"]["event"]["metadata"]["scheduler"]
    {'correlation_id': 'order-42'}
    """
    if not isinstance(scheduling_request, Mapping):
        raise ConfigurationError("scheduling_request must be a mapping (the JSON object)")
    request = copy.deepcopy(dict(scheduling_request))
    scheduler: dict[str, Any] = {}
    for key, value in (metadata or {}).items():
        if key not in LINK_METADATA_KEYS:
            raise ConfigurationError(
                f"unknown link metadata key {key!r}; known: {', '.join(LINK_METADATA_KEYS)}"
            )
        scheduler[key] = value
    for key, value in (captured_data or {}).items():
        scheduler[f"captured_data.{key}"] = value
    if scheduler:
        event = request.setdefault("event", {})
        event_metadata = event.setdefault("metadata", {})
        event_metadata.setdefault("scheduler", {}).update(scheduler)
    return {
        "notification": {"type": type, "triggered_at": _timestamp(triggered_at)},
        "scheduling_request": request,
    }


def link_metadata_from_url(url: str) -> dict[str, str]:
    """
    The link metadata in a select URL's query (what Cronofy stores when the slot is picked).

    >>> link_metadata_from_url("https://app.cronofy.test/r/x?correlation_id=42&utm_source=bot")
    {'correlation_id': '42', 'utm_source': 'bot'}
    """
    query = urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query, keep_blank_values=False)
    return {key: value for key, value in query if key in LINK_METADATA_KEYS}


def _check_loopback(url: str) -> str:
    try:
        host = httpx.URL(url).host
    except (httpx.InvalidURL, TypeError):
        raise ConfigurationError(f"notification_url {url!r} is not a valid URL") from None
    if not url.startswith(("http://", "https://")) or not host:
        raise ConfigurationError(f"notification_url {url!r} must be an absolute http(s) URL")
    if host.lower() in _LOOPBACK_NAMES:
        return url
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ConfigurationError(
            f"notification_url {url!r} is not on loopback; the fake only delivers to this "
            "machine (pass a transport to deliver elsewhere, for example in process)"
        )
    return url


class NotificationSender:
    """
    Signs notification bodies and POSTs them to `url` in the background, recording each.

    `send` returns at once; `drain` waits until every delivery scheduled so far (and any
    scheduled meanwhile) has finished::

        async with NotificationSender(url, "sk_test") as sender:
            sender.send(build_notification_body(request, triggered_at=now))
            [delivery] = await sender.drain()
            assert delivery.status_code == 200

    Args:
        url: the push notification URL; loopback only, unless a `transport` is given.
        secret: the client secret(s) to sign with: several give a comma-separated header,
            as Cronofy sends during a rotation.
        faults: the default misbehaviour of every `send`.
        transport: an httpx transport (``httpx.ASGITransport(app=receiver)`` delivers in
            process, no sockets).
        timeout: seconds to wait for each answer.
        clock: where ``delay`` is waited (tests pass a virtual clock).

    """

    def __init__(
        self,
        url: str,
        secret: Secrets,
        *,
        faults: NotificationFaults = NotificationFaults(),
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 5.0,
        clock: Clock | None = None,
    ) -> None:
        held = hold_secrets(secret)
        del secret  # only masked copies from here, whatever raises
        self._keys = require_secrets(held)
        self.url = url if transport is not None else _check_loopback(url)
        """Where notifications are POSTed."""
        if not isinstance(faults, NotificationFaults):
            raise ConfigurationError(f"faults must be NotificationFaults, got {faults!r}")
        self.faults = faults
        """The default faults of every `send`; assign new ones to change them mid-test."""
        self._transport = transport
        self._timeout = timeout
        self._clock: Clock = clock or SystemClock()
        self._pending: set[asyncio.Task[list[Delivery]]] = set()
        self._sent = 0
        self.deliveries: list[Delivery] = []
        """Every delivery made so far, in the order they finished."""

    def __repr__(self) -> str:
        return (
            f"<NotificationSender url={self.url!r} sent={self._sent} "
            f"delivered={len(self.deliveries)} pending={len(self._pending)}>"
        )

    async def __aenter__(self) -> NotificationSender:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    @property
    def pending(self) -> int:
        """How many notifications are still being delivered."""
        return len(self._pending)

    def send(
        self, body: Mapping[str, Any], *, faults: NotificationFaults | None = None
    ) -> asyncio.Task[list[Delivery]]:
        """
        Deliver `body` in the background (needs a running event loop); returns its task.

        The body is serialised and signed now, so later changes to `body` do not show. The
        task's result is this notification's deliveries; it never raises for a failed POST
        (see `Delivery.error`).
        """
        faults = self.faults if faults is None else faults
        data = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        notification = body.get("notification")
        kind = notification.get("type") if isinstance(notification, Mapping) else None
        keys = _wrong_keys(self._keys) if faults.bad_signature else self._keys
        header = signature_header(data, keys)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise ConfigurationError(
                "sending a notification needs a running event loop (call it from async code)"
            ) from None
        number = self._sent
        self._sent += 1
        task = loop.create_task(
            self._deliver(number, "" if kind is None else str(kind), data, header, faults),
            name=f"fake-cronofy-notification-{number}",
        )
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        return task

    async def drain(self) -> list[Delivery]:
        """Wait for every pending delivery, including ones scheduled while waiting; all so far."""
        while self._pending:
            await asyncio.gather(*self._pending)
        return list(self.deliveries)

    async def aclose(self) -> None:
        """Finish pending deliveries (nothing else holds resources between deliveries)."""
        await self.drain()

    def _http(self) -> httpx.AsyncClient:
        # One client per notification, closed with it: nothing stays open between
        # deliveries, so an owner that never calls aclose leaks no socket. trust_env=False:
        # a proxy from the environment must not carry loopback traffic.
        transport = None if self._transport is None else _Borrowed(self._transport)
        return httpx.AsyncClient(transport=transport, timeout=self._timeout, trust_env=False)

    async def _deliver(
        self, number: int, kind: str, body: bytes, header: str, faults: NotificationFaults
    ) -> list[Delivery]:
        if faults.delay:
            await self._clock.sleep(faults.delay)
        made = []
        async with self._http() as client:
            for attempt in range(1, faults.repeat + 1):
                status: int | None = None
                error: str | None = None
                try:
                    response = await client.post(
                        self.url,
                        content=body,
                        headers={
                            "Content-Type": "application/json",
                            HEADER: header,
                            "User-Agent": _USER_AGENT,
                        },
                    )
                    status = response.status_code
                except httpx.HTTPError as exc:
                    error = f"{type(exc).__name__}: {exc}"
                delivery = Delivery(
                    notification=number,
                    attempt=attempt,
                    url=self.url,
                    type=kind,
                    signed_correctly=not faults.bad_signature,
                    status_code=status,
                    error=error,
                    body=body,
                    signature=header,
                )
                self.deliveries.append(delivery)
                made.append(delivery)
        return made


class _Borrowed(httpx.AsyncBaseTransport):
    """A caller's transport, used but never closed: it outlives each delivery's client."""

    def __init__(self, transport: httpx.AsyncBaseTransport) -> None:
        self._transport = transport

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send through the caller's transport."""
        return await self._transport.handle_async_request(request)


def _wrong_keys(keys: Iterable[Any]) -> tuple[str, ...]:
    # A key no receiver holds; derived from nothing secret, so it leaks nothing either.
    return tuple(f"wrong-key-{index}" for index, _ in enumerate(keys))


def _faults(value: object) -> NotificationFaults:
    if not isinstance(value, NotificationFaults):
        raise ConfigurationError(f"faults must be NotificationFaults, got {value!r}")
    return value


def _captured(value: object) -> Mapping[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ConfigurationError(
            f"captured_data must be a mapping of field name to value, got {type(value).__name__}"
        )
    if not all(isinstance(key, str) and key for key in value):
        raise ConfigurationError("captured_data keys must be non-empty strings (field names)")
    for key, item in value.items():
        try:
            json.dumps(item)
        except (TypeError, ValueError):
            raise ConfigurationError(
                f"captured_data[{key!r}] must be JSON (a string, as a form field is), "
                f"got {type(item).__name__}"
            ) from None
    return value


class FakeNotifications:
    """
    The part of `FakeCronofy` that sends push notifications, when given a notification URL.

    `FakeCronofy.select_slot` sends ``scheduling_request_time_chosen``; `notifications` is what
    was delivered, `drain_notifications` waits for what is in flight and `notification_faults`
    makes the fake misdeliver::

        fake = FakeCronofy(notification_url="http://127.0.0.1:8080/cronofy")
        fake.notification_faults = NotificationFaults(repeat=2)  # every one twice
        fake.select_slot(link)  # the select URL the recipient followed, metadata and all
        [first, again] = await fake.drain_notifications()
    """

    _notifier: NotificationSender | None = None
    _notification_faults: NotificationFaults = NotificationFaults()

    def _init_notifications(
        self,
        *,
        url: str | None,
        secrets: Sequence[str],
        faults: NotificationFaults,
        transport: httpx.AsyncBaseTransport | None,
    ) -> None:
        self._notification_faults = _faults(faults)
        if url is None:
            if transport is not None:
                raise ConfigurationError("notification_transport needs a notification_url")
            return
        if not isinstance(url, str):
            raise ConfigurationError(f"notification_url must be a str, got {type(url).__name__}")
        # Every accepted secret signs, one entry each, as Cronofy does during a rotation.
        self._notifier = NotificationSender(url, secrets, faults=faults, transport=transport)

    @property
    def notification_faults(self) -> NotificationFaults:
        """How notifications are misdelivered; assign new `NotificationFaults` mid-test."""
        return self._notification_faults

    @notification_faults.setter
    def notification_faults(self, faults: NotificationFaults) -> None:
        self._notification_faults = _faults(faults)
        if self._notifier is not None:
            self._notifier.faults = faults

    @property
    def notifications(self) -> list[Delivery]:
        """
        Every delivery so far (a copy), in the order they finished; empty without a URL.

        Each records the exact body and signature POSTed and the receiver's answer.
        """
        return [] if self._notifier is None else list(self._notifier.deliveries)

    async def drain_notifications(self) -> list[Delivery]:
        """
        Wait until every notification in flight is delivered (late ones too); all so far.

        A delivery that failed is recorded (`Delivery.error`), never raised.
        """
        return [] if self._notifier is None else await self._notifier.drain()

    def _check_notification(
        self, faults: object, captured_data: object
    ) -> tuple[NotificationFaults | None, Mapping[str, Any] | None]:
        """Refuse bad input, and a send that could not happen, before the fake changes."""
        checked = None if faults is None else _faults(faults)
        captured = _captured(captured_data)
        if self._notifier is not None:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                raise ConfigurationError(
                    "the fake sends a notification when a slot is picked: call select_slot "
                    "from async code (a running event loop)"
                ) from None
        return checked, captured

    def _notify_time_chosen(
        self,
        scheduling_request: Mapping[str, Any],
        *,
        metadata: Mapping[str, str],
        captured_data: Mapping[str, Any] | None,
        faults: NotificationFaults | None,
    ) -> asyncio.Task[list[Delivery]] | None:
        if self._notifier is None:
            return None
        body = build_notification_body(
            scheduling_request,
            triggered_at=datetime.now(UTC),
            metadata=metadata,
            captured_data=captured_data,
        )
        return self._notifier.send(body, faults=faults)
