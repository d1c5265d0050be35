"""
A row's resume key: what the row asks for, not where it sits in the input.

Two rows have the same key exactly when they ask for the same invite: the same kind of request
(a scheduler request or a scheduling request), in the same data center, to the same recipient
(email compared case-insensitively, spaces around it ignored), hosted the same way, about the
same summary. The display name is left out on purpose: a corrected spelling of someone's name
is not a reason to invite them twice. So is the impersonated account when the row names a host
or a rule: that decides who hosts, and the account the request is sent as does not change it.

The key is the SHA-256 of a canonical JSON object of those fields. A field that is absent is
left out of the object (not written as null), so a field added to the key later leaves the keys
of rows without it, and so every existing results file, unchanged.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Final

__all__ = [
    "KEY_FIELDS",
    "SCHEDULER_REQUEST",
    "SCHEDULING_REQUEST",
    "invite_key",
    "normalize_email",
]

SCHEDULER_REQUEST: Final = "scheduler_request"
"""What a row creates by default: one ``POST /v1/scheduler_requests`` (ALPHA)."""
SCHEDULING_REQUEST: Final = "scheduling_request"
"""What a row creates with ``--scheduling``: one ``POST /v1/scheduling_requests`` (BETA)."""

KEY_FIELDS: Final = (
    "kind",
    "data_center",
    "email",
    "host",
    "group_rule",
    "selection_rule",
    "impersonate",
    "summary",
)
"""What a key is made of, and all it is made of: other fields are refused, not ignored."""


def normalize_email(email: str) -> str:
    """An email as the key compares it: stripped and lower-cased."""
    return email.strip().lower()


def invite_key(fields: Mapping[str, str | None]) -> str:
    """
    The resume key of the invite these fields describe (64 hex digits).

    `fields` are the row's values after defaults are applied; ``None`` or empty means absent.
    ``impersonate`` names the account the request is sent as; when there is no ``host``, that
    account hosts, so it counts as the host: a row sent as ``acc_1`` and a row with host
    ``acc_1`` ask for the same invite. A host, a group rule or a selection rule decides who
    hosts, so with any of them the impersonated account is left out of the key: the same
    host sent as another account is the same invite.

    >>> a = invite_key({"kind": "scheduler_request", "data_center": "us",
    ...                 "email": " Ada@Example.com", "host": "acc_1", "summary": "Intro"})
    >>> a == invite_key({"kind": "scheduler_request", "data_center": "us",
    ...                  "email": "ada@example.com", "impersonate": "acc_1", "summary": "Intro"})
    True
    """
    unknown = set(fields) - set(KEY_FIELDS)
    if unknown:
        raise ValueError(f"not part of a resume key: {', '.join(sorted(unknown))}")
    values = {name: value.strip() for name, value in fields.items() if value and value.strip()}
    if "email" in values:
        values["email"] = normalize_email(values["email"])
    picked = "host" in values or "group_rule" in values or "selection_rule" in values
    if "impersonate" in values:
        # Who hosts is what makes the invite: a host or rule in the row decides it, and then
        # the account the request is sent as changes nothing the recipient gets.
        sent_as = values.pop("impersonate")
        if not picked:
            values["host"] = sent_as
    canonical = json.dumps(values, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    # surrogatepass: half a surrogate pair (refused as a row) still gets a key; text keys unchanged.
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()
