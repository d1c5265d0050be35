"""
What Cronofy answers about a scheduling request (BETA): the parsed models.

Shared by the scheduling-requests family (create, query) and push notifications, which carry
the same object. Parsing is tolerant: every documented field is optional except the id, unknown
fields are kept in ``raw``, and a documented field of the wrong type is an error naming it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Final

import attrs

__all__ = [
    "RecipientOperations",
    "SchedulingRecipient",
    "SchedulingRequest",
    "structure_scheduling_request",
]

_EMPTY: Final[Mapping[str, Any]] = MappingProxyType({})


@attrs.frozen(kw_only=True)
class SchedulingRecipient:
    """A recipient of a scheduling request, with the link that lets them pick a slot."""

    email: str | None = None
    """The recipient's email address."""
    display_name: str | None = None
    """The recipient's name, if one was given."""
    slot_selector: bool | None = None
    """Whether this recipient is the one who picks the slot."""
    select_url: str | None = None
    """The URL the recipient visits to pick a slot."""
    raw: Mapping[str, Any] = attrs.field(default=_EMPTY, repr=False, eq=False, hash=False)
    """Every field Cronofy sent for this recipient."""


@attrs.frozen(kw_only=True)
class RecipientOperations:
    """Links a recipient can use after the slot is chosen."""

    view_url: str | None = None
    decline_url: str | None = None
    reschedule_url: str | None = None
    raw: Mapping[str, Any] = attrs.field(default=_EMPTY, repr=False, eq=False, hash=False)


@attrs.frozen(kw_only=True)
class SchedulingRequest:
    """
    A scheduling request (BETA) as Cronofy describes it.

    `slot_selection` is ``"pending"`` until the recipient picks a time and ``"complete"`` after;
    any other value Cronofy may add is kept as its string. Unknown fields are kept in `raw`::

        [request] = await api.query_scheduling_requests(["srq_..."])
        if request.slot_selection == "complete":
            ...
    """

    scheduling_request_id: str
    """Cronofy's id for the request, ``srq_...``."""
    slot_selection: str | None = None
    """``"pending"`` or ``"complete"`` (or whatever else Cronofy sends)."""
    primary_select_url: str | None = None
    """The link to send to the recipient who picks the slot."""
    dashboard_url: str | None = None
    """Where the host sees the request in Cronofy's dashboard."""
    summary: str | None = None
    """The event's summary."""
    duration_minutes: int | None = None
    """``duration.minutes``: the length of the event."""
    recipients: tuple[SchedulingRecipient, ...] = ()
    """The recipients, each with their `select_url`."""
    recipient_operations: RecipientOperations | None = None
    """View, decline and reschedule links, once Cronofy sends them."""
    event: Mapping[str, Any] = attrs.field(default=_EMPTY, eq=False, hash=False)
    """The ``event`` object as Cronofy sent it (summary, metadata...)."""
    raw: Mapping[str, Any] = attrs.field(default=_EMPTY, repr=False, eq=False, hash=False)
    """The whole ``scheduling_request`` object as Cronofy sent it."""

    @property
    def select_url(self) -> str | None:
        """The link to send: `primary_select_url`, else the first recipient's `select_url`."""
        if self.primary_select_url is not None:
            return self.primary_select_url
        return next((r.select_url for r in self.recipients if r.select_url), None)


class ModelError(TypeError):
    """A documented field of the wrong type; `path` names it in Cronofy's dotted terms."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


def _mapping(path: str, value: object) -> Mapping[str, Any]:
    if type(value) is dict:  # what JSON gives, told without the abstract-class check
        return value
    if not isinstance(value, Mapping):
        raise ModelError(path, f"expected an object, got {type(value).__name__}")
    return value


def _opt(path: str, data: Mapping[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    value = data.get(key)
    if value is None or type(value) is kind:  # the usual answer, without the checks below
        return value
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        expected = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise ModelError(f"{path}.{key}", f"expected {expected}, got {type(value).__name__}")
    return value


def _recipient(path: str | Callable[[], str], value: object) -> SchedulingRecipient:
    if callable(path):  # spelled out only when it is needed: for an error, or unusual input
        if type(value) is dict:
            email, name = value.get("email"), value.get("display_name")
            selector, url = value.get("slot_selector"), value.get("select_url")
            if (
                (email is None or type(email) is str)
                and (name is None or type(name) is str)
                and (selector is None or type(selector) is bool)
                and (url is None or type(url) is str)
            ):
                return SchedulingRecipient(
                    email=email,
                    display_name=name,
                    slot_selector=selector,
                    select_url=url,
                    raw=value,
                )
        path = path()
    data = _mapping(path, value)
    return SchedulingRecipient(
        email=_opt(path, data, "email", str),
        display_name=_opt(path, data, "display_name", str),
        slot_selector=_opt(path, data, "slot_selector", bool),
        select_url=_opt(path, data, "select_url", str),
        raw=data,
    )


def structure_scheduling_request(
    value: object, path: str = "scheduling_request"
) -> SchedulingRequest:
    """Parse one ``scheduling_request`` object; raises `ModelError` naming a malformed field."""
    data = _mapping(path, value)
    request_id = data.get("scheduling_request_id")
    if not isinstance(request_id, str) or not request_id:
        raise ModelError(f"{path}.scheduling_request_id", "missing or not a string")
    duration = data.get("duration")
    minutes = (
        None
        if duration is None
        else _opt(f"{path}.duration", _mapping(f"{path}.duration", duration), "minutes", int)
    )
    recipients = data.get("recipients") or ()
    if not isinstance(recipients, list | tuple):
        raise ModelError(f"{path}.recipients", f"expected a list, got {type(recipients).__name__}")
    operations = data.get("recipient_operations")
    ops = None
    if operations is not None:
        ops_data = _mapping(f"{path}.recipient_operations", operations)
        ops_path = f"{path}.recipient_operations"
        ops = RecipientOperations(
            view_url=_opt(ops_path, ops_data, "view_url", str),
            decline_url=_opt(ops_path, ops_data, "decline_url", str),
            reschedule_url=_opt(ops_path, ops_data, "reschedule_url", str),
            raw=ops_data,
        )
    event = data.get("event")
    event_data = _EMPTY if event is None else _mapping(f"{path}.event", event)
    summary = _opt(path, data, "summary", str)
    if summary is None:
        summary = _opt(f"{path}.event", event_data, "summary", str)
    return SchedulingRequest(
        scheduling_request_id=request_id,
        slot_selection=_opt(path, data, "slot_selection", str),
        primary_select_url=_opt(path, data, "primary_select_url", str),
        dashboard_url=_opt(path, data, "dashboard_url", str),
        summary=summary,
        duration_minutes=minutes,
        recipients=tuple(
            [
                _recipient(lambda i=i: f"{path}.recipients[{i}]", item)  # type: ignore[misc]
                for i, item in enumerate(recipients)
            ]
        ),
        recipient_operations=ops,
        event=event_data,
        raw=data,
    )
