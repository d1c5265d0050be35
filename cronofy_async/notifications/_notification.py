"""
Reading a push notification body: `Notification` and `parse_notification` (pure).

Tolerant where Cronofy may grow (any ``type``, unknown fields kept in ``raw``), strict where a
handler would be misled (no ``notification``, no usable ``triggered_at``). Error messages name
the path and the problem, never a value: bodies carry personal data and errors get logged.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Final

import attrs

from .._errors import NotificationError
from .._scheduling_models import ModelError, SchedulingRequest, structure_scheduling_request

__all__ = ["TIME_CHOSEN", "Notification", "parse_notification"]

TIME_CHOSEN: Final = "scheduling_request_time_chosen"
"""The notification type Cronofy documents: the recipient picked a slot."""

_CAPTURED_PREFIX: Final = "captured_data."
_UTM_PREFIX: Final = "utm_"
_METADATA: Final = "scheduling_request.event.metadata"
_SCHEDULER: Final = f"{_METADATA}.scheduler"
_EMPTY: Final[Mapping[str, Any]] = MappingProxyType({})


@attrs.frozen(kw_only=True, repr=False)
class Notification:
    """
    One push notification from Cronofy, verified and parsed.

    `type` is Cronofy's string, kept whatever it is (`TIME_CHOSEN` is the one documented);
    the scheduler metadata of the event (the link's ``correlation_id`` and ``utm_*`` values,
    and what the booking page captured) is lifted out for you::

        async def on_notification(notification: Notification) -> None:
            if notification.type == TIME_CHOSEN:
                await mark_booked(notification.correlation_id, notification.triggered_at)

    Its repr names the scheduling request by id only, and leaves out `captured_data` and
    `raw`: they hold what people typed (names, emails, phone numbers, notes).
    """

    type: str
    """Cronofy's notification type, such as ``"scheduling_request_time_chosen"``."""
    triggered_at: datetime
    """When the event happened: an aware datetime (UTC unless Cronofy says otherwise)."""
    scheduling_request: SchedulingRequest | None = None
    """The scheduling request the notification is about, when the body carries one."""
    correlation_id: str | None = None
    """The ``correlation_id`` of the link the recipient used: your own record's id."""
    utm: Mapping[str, str] = attrs.field(default=_EMPTY, eq=False, hash=False)
    """The link's ``utm_*`` values, keyed by their full names (``utm_source``...)."""
    captured_data: Mapping[str, Any] = attrs.field(default=_EMPTY, eq=False, hash=False)
    """What the booking page captured, keyed without the ``captured_data.`` prefix."""
    raw: Mapping[str, Any] = attrs.field(default=_EMPTY, eq=False, hash=False)
    """The whole body as parsed, for anything not modelled here."""

    def __repr__(self) -> str:
        request = self.scheduling_request
        request_id = None if request is None else request.scheduling_request_id
        return (
            f"Notification(type={self.type!r}, triggered_at={self.triggered_at!r}, "
            f"scheduling_request_id={request_id!r}, correlation_id={self.correlation_id!r}, "
            f"utm={dict(self.utm)!r})"
        )


def _object(path: str, value: object) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise NotificationError(path, f"expected an object, got {_kind(value)}")
    return value


def _kind(value: object) -> str:
    return {dict: "an object", list: "a list", str: "a string", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def _load(body: bytes | bytearray | memoryview | str) -> Any:
    if isinstance(body, memoryview):
        body = body.tobytes()
    if not isinstance(body, bytes | bytearray | str):
        raise TypeError(f"body must be bytes or str, not {type(body).__name__}")
    try:
        return json.loads(body)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise NotificationError("body", f"not valid JSON ({exc.msg} at {where})") from None
    except UnicodeDecodeError as exc:
        # The exception holds the whole body (exc.object): neither chained nor quoted.
        raise NotificationError(
            "body", f"not valid JSON (not {exc.encoding} at byte {exc.start})"
        ) from None
    except (ValueError, RecursionError):  # an integer too long to convert, nesting too deep
        raise NotificationError("body", "not valid JSON (too long a number or too deep)") from None


def _triggered_at(notification: Mapping[str, Any]) -> datetime:
    path = "notification.triggered_at"
    value = notification.get("triggered_at")
    if value is None:
        raise NotificationError(path, "missing")
    if not isinstance(value, str):
        raise NotificationError(path, f"expected an ISO 8601 string, got {_kind(value)}")
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise NotificationError(path, "not an ISO 8601 date and time") from None
    # Cronofy's API gives every time in UTC; a time without an offset is read that way.
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _scheduler_metadata(request: SchedulingRequest | None) -> Mapping[str, Any]:
    if request is None:
        return _EMPTY
    metadata = request.event.get("metadata")
    if metadata is None:
        return _EMPTY
    scheduler = _object(_METADATA, metadata).get("scheduler")
    return _EMPTY if scheduler is None else _object(_SCHEDULER, scheduler)


def _text(path: str, value: object) -> str:
    if not isinstance(value, str):
        raise NotificationError(path, f"expected a string, got {_kind(value)}")
    return value


def parse_notification(body: bytes | bytearray | memoryview | str) -> Notification:
    """
    Parse a push notification body (verify its signature first: see `verify_signature`).

    >>> n = parse_notification(
    ...     b'{"notification": {"type": "scheduling_request_time_chosen",'
    ...     b' "triggered_at": "2025-01-19T16:14:11Z"}}'
    ... )
    >>> n.type, n.triggered_at.isoformat()
    ('scheduling_request_time_chosen', '2025-01-19T16:14:11+00:00')

    Raises:
        NotificationError: the body is not JSON, not an object, has no ``notification`` with
            a ``type`` and a ``triggered_at``, or a documented field has the wrong type; its
            `path` says which, and no value from the body is quoted.

    """
    data = _object("body", _load(body))
    if data.get("notification") is None:
        raise NotificationError("notification", "missing")
    notification = _object("notification", data["notification"])
    kind = notification.get("type")
    if kind is None or kind == "":
        raise NotificationError("notification.type", "missing")
    kind = _text("notification.type", kind)
    triggered_at = _triggered_at(notification)
    request = None
    if data.get("scheduling_request") is not None:
        try:
            request = structure_scheduling_request(data["scheduling_request"])
        except ModelError as exc:
            raise NotificationError(exc.path, exc.problem) from None
    metadata = _scheduler_metadata(request)
    correlation_id = metadata.get("correlation_id")
    utm = {
        key: _text(f"{_SCHEDULER}.{key}", value)
        for key, value in metadata.items()
        if key.startswith(_UTM_PREFIX) and value is not None
    }
    captured = {
        key.removeprefix(_CAPTURED_PREFIX): value
        for key, value in metadata.items()
        if key.startswith(_CAPTURED_PREFIX)
    }
    return Notification(
        type=kind,
        triggered_at=triggered_at,
        scheduling_request=request,
        correlation_id=(
            None
            if correlation_id is None
            else _text(f"{_SCHEDULER}.correlation_id", correlation_id)
        ),
        utm=MappingProxyType(utm),
        captured_data=MappingProxyType(captured),
        raw=data,
    )
