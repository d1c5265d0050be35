"""What Cronofy answers: the parsed response models."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import attrs

__all__ = ["ScheduledRecipient", "SchedulerRequest"]

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
