"""What Cronofy answers: the parsed response models."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import attrs

__all__ = ["ScheduledRecipient", "SchedulerRequest", "structure_scheduler_request"]

_EMPTY: Mapping[str, Any] = MappingProxyType({})


@attrs.frozen(kw_only=True)
class ScheduledRecipient:
    """A recipient as Cronofy echoes it back, with the link to send them."""

    email: str
    """The recipient's email address."""
    display_name: str | None = None
    """The recipient's name, if one was given."""
    select_url: str | None = None
    """The URL the recipient visits to pick a slot: the link to send."""
    raw: Mapping[str, Any] = attrs.field(default=_EMPTY, repr=False, eq=False, hash=False)
    """Every field Cronofy sent for this recipient, including ones this class does not model."""


@attrs.frozen(kw_only=True)
class SchedulerRequest:
    """
    A created scheduler request.

    Unknown response fields are kept in `raw`, as Cronofy asks clients to tolerate them.
    """

    scheduler_request_id: str
    """Cronofy's id for the request, ``srq_...``."""
    recipients: tuple[ScheduledRecipient, ...] = ()
    """The recipients, each with their `select_url`."""
    primary_select_url: str | None = None
    """The select URL of the first recipient, where Cronofy sends one (newer API revisions)."""
    raw: Mapping[str, Any] = attrs.field(default=_EMPTY, repr=False, eq=False, hash=False)
    """The whole ``scheduler_request`` object as Cronofy sent it."""

    @property
    def select_url(self) -> str | None:
        """The link to send: `primary_select_url`, else the first recipient's `select_url`."""
        if self.primary_select_url is not None:
            return self.primary_select_url
        return self.recipients[0].select_url if self.recipients else None


_MISSING: Any = object()


def _field(data: Mapping[str, Any], key: str, path: str, *, required: bool = False) -> str | None:
    value = data.get(key, _MISSING)
    if value is _MISSING or (value is None and not required):
        if required:
            raise TypeError(f"required field missing @ {path}.{key}")
        return None
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__} @ {path}.{key}")
    return value


def _recipient(data: object, index: int) -> ScheduledRecipient:
    if type(data) is dict:
        email, name, url = data.get("email"), data.get("display_name"), data.get("select_url")
        if (
            type(email) is str
            and (name is None or type(name) is str)
            and (url is None or type(url) is str)
        ):  # the usual answer, read without the checks below
            return ScheduledRecipient(email=email, display_name=name, select_url=url, raw=data)
    path = f"scheduler_request.recipients[{index}]"
    if not isinstance(data, Mapping):
        raise TypeError(f"expected an object, got {type(data).__name__} @ {path}")
    return ScheduledRecipient(
        email=_field(data, "email", path, required=True),  # type: ignore[arg-type]
        display_name=_field(data, "display_name", path),
        select_url=_field(data, "select_url", path),
        raw=data,
    )


def structure_scheduler_request(data: object) -> SchedulerRequest:
    """
    Parse the ``scheduler_request`` object Cronofy answers a create with.

    Tolerant of fields it does not model (kept in ``raw``); raises ``TypeError`` naming a
    documented field that is missing or of the wrong type. Written by hand rather than with
    cattrs: it runs once per create, and the generated structure plus ``raw`` cost twice as much.
    """
    if type(data) is dict:
        request_id, primary = data.get("scheduler_request_id"), data.get("primary_select_url")
        recipients = data.get("recipients")
        if (
            type(request_id) is str
            and (primary is None or type(primary) is str)
            and type(recipients) is list
        ):  # the usual answer, read without the checks below
            return SchedulerRequest(
                scheduler_request_id=request_id,
                recipients=tuple([_recipient(item, i) for i, item in enumerate(recipients)]),
                primary_select_url=primary,
                raw=data,
            )
    path = "scheduler_request"
    if type(data) is not dict and not isinstance(data, Mapping):  # no ABC check per create
        raise TypeError(f"{path} is malformed: expected an object, got {type(data).__name__}")
    request_id = _field(data, "scheduler_request_id", path, required=True)
    recipients = data.get("recipients")
    if recipients is None:
        recipients = ()
    elif not isinstance(recipients, list | tuple):
        raise TypeError(f"expected a list, got {type(recipients).__name__} @ {path}.recipients")
    return SchedulerRequest(
        scheduler_request_id=request_id,  # type: ignore[arg-type]
        recipients=tuple([_recipient(item, i) for i, item in enumerate(recipients)]),
        primary_select_url=_field(data, "primary_select_url", path),
        raw=data,
    )
