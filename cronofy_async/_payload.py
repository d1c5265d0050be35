"""
The payload builders for a create: frozen, keyword-only attrs classes.

Each one checks its fields when it is built, so bad input is refused with a `PayloadError`
naming the field before anything is sent. The one rule that depends on how the request is
sent (a host is needed unless the call is impersonated) is checked at send time by
`check_host_mode`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Final

import attrs

from ._errors import PayloadError

__all__ = [
    "MAX_SUMMARY_LENGTH",
    "Event",
    "GroupRule",
    "Host",
    "NewSchedulerRequest",
    "Recipient",
    "check_host_mode",
    "check_impersonation_sub",
]

MAX_SUMMARY_LENGTH: Final = 1024
"""Cronofy's documented limit on ``event.summary``."""

# Deliberately loose: one @, something on each side, a dot in the domain, no spaces. Cronofy is
# the judge of deliverability; this only catches the typo and the wrong-column mistake early.
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
# Whitespace or control characters in an id would break the header it may travel in.
_BAD_ID_CHARS = re.compile(r"[\s\x00-\x1f\x7f]")

_EMPTY: Final[Mapping[str, Any]] = MappingProxyType({})


def _require_str(path: str, value: object) -> str:
    if not isinstance(value, str):
        raise PayloadError(path, f"must be a string, got {type(value).__name__}")
    if type(value) is str and value.isascii():  # the common case, with nothing to encode
        return value
    try:
        value.encode()
    except UnicodeEncodeError as exc:
        # Half of a surrogate pair (a string cut in the middle of an emoji, say) has no UTF-8
        # form: the body could never be encoded, so it is refused here rather than at send time.
        raise PayloadError(
            path, f"contains a lone surrogate at position {exc.start}, which is not valid text"
        ) from None
    return value


def _check_id(path: str, value: object) -> None:
    # The usual id, told without the checks below: printable ASCII without a space.
    usual = type(value) is str and value != "" and value.isascii() and value.isprintable()
    if usual and " " not in value:  # type: ignore[operator]
        return
    text = _require_str(path, value)
    if not text:
        raise PayloadError(path, "must not be empty")
    if _BAD_ID_CHARS.search(text):
        raise PayloadError(path, f"must not contain whitespace or control characters: {text!r}")


def check_impersonation_sub(sub: object) -> str:
    """Refuse a sub that is empty, could inject into the header, or is not ASCII."""
    _check_id("Cronofy-Impersonate", sub)
    text = str(sub)
    if not text.isascii():
        raise PayloadError("Cronofy-Impersonate", f"must be ASCII, like every sub: {text!r}")
    return text


def _freeze_extra(
    value: Mapping[str, Any] | None, path: str, reserved: frozenset[str]
) -> Mapping[str, Any]:
    """Check an ``extra`` mapping and freeze a copy of it."""
    if not value:
        return _EMPTY
    if not isinstance(value, Mapping):
        raise PayloadError(path, f"must be a mapping, got {type(value).__name__}")
    for key in value:
        if not isinstance(key, str) or not key:
            raise PayloadError(path, f"keys must be non-empty strings, got {key!r}")
        if key in reserved:
            raise PayloadError(
                f"{path}.{key}", "is a modelled field: set it on the builder, not in extra"
            )
    # Encoded exactly as the body will be, so whatever this accepts can be sent; and kept as
    # JSON reads it back: a deep copy (a later change to the caller's dict is not sent) whose
    # keys are all strings, as a request's canonical form (its fingerprint) needs.
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False)
        text.encode()
        copy = json.loads(text)
    except RecursionError:
        raise PayloadError(path, "is nested too deeply to be sent as JSON") from None
    except UnicodeEncodeError as exc:
        raise PayloadError(
            path, f"contains text that is not valid UTF-8 (a lone surrogate): {exc.reason}"
        ) from None
    except ValueError as exc:
        if "Out of range float" in str(exc):
            raise PayloadError(path, "contains NaN or Infinity, which JSON cannot carry") from None
        raise PayloadError(path, f"must be JSON-serializable: {exc}") from None
    except TypeError as exc:
        raise PayloadError(path, f"must be JSON-serializable: {exc}") from None
    return MappingProxyType(copy)


_RECIPIENT_FIELDS: Final = frozenset({"email", "display_name"})
_EVENT_FIELDS: Final = frozenset({"summary"})
_REQUEST_FIELDS: Final = frozenset({"recipients", "event", "host", "scheduler_group_rule"})


# Named converters: mypy's attrs plugin derives each __init__ parameter type from them.
def _recipient_extra(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return _freeze_extra(value, "recipients", _RECIPIENT_FIELDS) if value else _EMPTY


def _event_extra(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return _freeze_extra(value, "event", _EVENT_FIELDS) if value else _EMPTY


def _request_extra(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return _freeze_extra(value, "extra", _REQUEST_FIELDS) if value else _EMPTY


# Each builder checks all its fields, in field order, in one validator on its last field
# (`extra`), which attrs runs once every field is set, rather than with a validator per
# field: a batch builds one of each per item, and the calls were a third of the cost of
# building them. A validator, not __attrs_post_init__: a subclass overriding that would skip
# the checks, while validators are inherited.


def _check_email(value: object) -> None:
    email = _require_str("recipients.email", value)
    if not email:
        raise PayloadError("recipients.email", "is required")
    if not _EMAIL.fullmatch(email):
        raise PayloadError("recipients.email", f"{email!r} is not a valid email address")


def _check_not_in_extra(
    path: str, extra: Mapping[str, Any], modelled: Iterable[tuple[str, str, object]]
) -> None:
    # A key that extra= carried before it was modelled keeps working on its own; given both
    # ways, which one wins would be a guess, so neither does.
    for name, key, value in modelled:
        if value is not None and key in extra:
            raise PayloadError(
                f"{path}.{key}", f"is given both as {name}= and in extra; give it once"
            )


def _check_recipient(
    recipient: Recipient, _attribute: attrs.Attribute[Any], _value: object
) -> None:
    _check_email(recipient.email)
    if recipient.display_name is not None:
        _require_str("recipients.display_name", recipient.display_name)
    slot_selector = recipient.slot_selector
    if slot_selector is not None and not isinstance(slot_selector, bool):
        raise PayloadError(
            "recipients.slot_selector", f"must be True, False or None, got {slot_selector!r}"
        )
    if recipient.extra:
        _check_not_in_extra(
            "recipients", recipient.extra, [("slot_selector", "slot_selector", slot_selector)]
        )


@attrs.frozen(kw_only=True)
class Recipient:
    """
    The person invited to pick a slot.

    >>> Recipient(email="doc@evenitron.com", display_name="Dr Emmet Brown").display_name
    'Dr Emmet Brown'
    """

    email: str
    """The recipient's email address (required)."""
    display_name: str | None = None
    """The recipient's name, as the invite greets them."""
    slot_selector: bool | None = None
    """Whether this recipient picks the slot (scheduling requests); ``None`` leaves it unsent."""
    extra: Mapping[str, Any] = attrs.field(
        default=None,
        converter=_recipient_extra,
        validator=_check_recipient,
        hash=False,
        repr=lambda m: repr(dict(m)),
    )
    """Fields Cronofy documents that this class does not model yet; merged into the recipient."""

    def __attrs_post_init__(self) -> None:
        """Nothing more to check; here so that a subclass's own may call up to it."""


def _check_summary(value: object) -> None:
    summary = _require_str("event.summary", value)
    if not summary.strip():
        raise PayloadError("event.summary", "is required and must not be blank")
    if len(summary) > MAX_SUMMARY_LENGTH:
        raise PayloadError(
            "event.summary",
            f"is {len(summary)} characters long; Cronofy allows at most {MAX_SUMMARY_LENGTH}",
        )


def _check_optional_text(path: str, value: object) -> None:
    """A text that may be left out: not blank when given (called only when it is)."""
    text = _require_str(path, value)
    if not text.strip():
        raise PayloadError(path, "must not be blank (leave it None to send nothing)")


def _check_duration(value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise PayloadError("event.duration.minutes", f"must be a whole number >= 1, got {value!r}")


def _check_event(event: Event, _attribute: attrs.Attribute[Any], _value: object) -> None:
    _check_summary(event.summary)
    if event.description is not None:
        _check_optional_text("event.description", event.description)
    if event.location is not None:
        _check_optional_text("event.location.description", event.location)
    if event.duration_minutes is not None:
        _check_duration(event.duration_minutes)
    if event.locale is not None:
        _check_optional_text("event.locale", event.locale)
    if event.extra:
        _check_not_in_extra(
            "event",
            event.extra,
            [
                ("description", "description", event.description),
                ("location", "location", event.location),
                ("duration_minutes", "duration", event.duration_minutes),
                ("locale", "locale", event.locale),
            ],
        )


@attrs.frozen(kw_only=True)
class Event:
    """
    The event pushed into the host's calendar once the recipient picks a slot.

    `description`, `location`, `duration_minutes` and `locale` are sent as Cronofy documents
    them: ``description``, ``location.description``, ``duration.minutes`` and ``locale``.

    >>> Event(summary="Driving lessons", location="Hill Valley", duration_minutes=30).location
    'Hill Valley'
    """

    summary: str
    """The event's name, 1 to 1024 characters."""
    description: str | None = None
    """The event's description."""
    location: str | None = None
    """The location's description (``location.description``)."""
    duration_minutes: int | None = None
    """The event's length in minutes (``duration.minutes``)."""
    locale: str | None = None
    """The locale of the invitation pages, such as ``en-GB``."""
    extra: Mapping[str, Any] = attrs.field(
        default=None,
        converter=_event_extra,
        validator=_check_event,
        hash=False,
        repr=lambda m: repr(dict(m)),
    )
    """Documented event fields not modelled yet; merged into the event."""

    def __attrs_post_init__(self) -> None:
        """Nothing more to check; here so that a subclass's own may call up to it."""


def _validate_host_sub(_inst: object, _attr: attrs.Attribute[Any], value: object) -> None:
    _check_id("host.sub", value)


@attrs.frozen(kw_only=True)
class Host:
    """The Cronofy account hosting the meeting, by its sub (``acc_...``)."""

    sub: str = attrs.field(validator=_validate_host_sub)
    """The account's sub; it must be a member of the application's Organizational Unit."""


def _validate_rule_id(_inst: object, _attr: attrs.Attribute[Any], value: object) -> None:
    _check_id("scheduler_group_rule.id", value)


@attrs.frozen(kw_only=True)
class GroupRule:
    """A Scheduler Group Rule (``sgr_...``) that picks the host dynamically."""

    id: str = attrs.field(validator=_validate_rule_id)
    """The rule's id, from the Developer Details at the foot of the Group Rules page."""


def _to_recipients(value: Iterable[Recipient]) -> tuple[Recipient, ...]:
    # The common case first, without the abstract-class checks below.
    if type(value) in (list, tuple):
        items: Sequence[object] = value  # type: ignore[assignment]
        if len(items) == 1 and type(items[0]) is Recipient:
            return (items[0],)
    if isinstance(value, Recipient | str | bytes | Mapping) or not isinstance(value, Iterable):
        raise PayloadError("recipients", f"must be a list of Recipient, got {type(value).__name__}")
    recipients = tuple(value)
    for index, item in enumerate(recipients):
        if not isinstance(item, Recipient):
            raise PayloadError(
                f"recipients[{index}]", f"must be a Recipient, got {type(item).__name__}"
            )
    if len(recipients) != 1:
        raise PayloadError(
            "recipients",
            f"exactly one recipient is supported by Cronofy today, got {len(recipients)}",
        )
    return recipients


def _check_instance(path: str, value: object, cls: type) -> None:
    if type(value) is not cls and not isinstance(value, cls):
        raise PayloadError(path, f"must be a {cls.__name__}, got {type(value).__name__}")


def _check_request(
    request: NewSchedulerRequest, _attribute: attrs.Attribute[Any], _value: object
) -> None:
    host, rule = request.host, request.scheduler_group_rule
    if host is not None:
        _check_instance("host", host, Host)
    if rule is not None:
        _check_instance("scheduler_group_rule", rule, GroupRule)
    if request.event is None:
        raise PayloadError("event", "is required")
    _check_instance("event", request.event, Event)


@attrs.frozen(kw_only=True)
class NewSchedulerRequest:
    """
    The body of ``POST /v1/scheduler_requests``.

    Name the host in one of three ways: `host`, `scheduler_group_rule`, or neither and send the
    call impersonated (``api.impersonate(sub)``), in which case the impersonated account hosts.

    >>> NewSchedulerRequest(
    ...     host=Host(sub="acc_61815034636bd5c5ce4edd"),
    ...     recipients=[Recipient(email="doc@evenitron.com")],
    ...     event=Event(summary="Driving lessons - Marty & Doc"),
    ... ).host
    Host(sub='acc_61815034636bd5c5ce4edd')
    """

    host: Host | None = None
    """The hosting account; leave unset with a group rule or an impersonated call."""
    scheduler_group_rule: GroupRule | None = None
    """A group rule that resolves the host; exclusive with `host`."""
    recipients: tuple[Recipient, ...] = attrs.field(converter=_to_recipients)
    """Who is invited; Cronofy supports exactly one recipient today."""
    event: Event
    """The event to create once a slot is picked."""
    extra: Mapping[str, Any] = attrs.field(
        default=None,
        converter=_request_extra,
        validator=_check_request,
        hash=False,
        repr=lambda m: repr(dict(m)),
    )
    """Top-level fields Cronofy documents that this class does not model yet (``tags``...)."""

    def __attrs_post_init__(self) -> None:
        # Here, as ever, rather than in the validator: it holds with validators disabled too.
        if self.host is not None and self.scheduler_group_rule is not None:
            raise PayloadError(
                "host",
                "give either host or scheduler_group_rule, not both: they both pick the host",
            )


def check_host_mode(request: NewSchedulerRequest, *, impersonating: bool) -> None:
    """Refuse a request that names no host on a call that is not impersonated."""
    if request.host is None and request.scheduler_group_rule is None and not impersonating:
        raise PayloadError(
            "host",
            "no host given. Choose one of Cronofy's three ways: host=Host(sub=...), "
            "scheduler_group_rule=GroupRule(id=...), or send through api.impersonate(sub) "
            "so the impersonated account hosts",
        )
