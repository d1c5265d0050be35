"""
The selection-rules family (ALPHA): show and update a rule that picks hosts from a pool.

``GET`` and ``PATCH /v1/scheduler/selection_rules/{id}``. Rules are created in Cronofy's UI; a
`SelectionRule` is also how a scheduling request names one as its host group
(``host_group=SelectionRule(sub="sel_...")``). The builders (what an update sends), the models
(what Cronofy answers) and the calls live here together.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any, Final, Literal

import attrs
import httpx

from ._errors import PayloadError
from ._operation import Calls, Operation, _malformed, json_body, loads
from ._payload import _EMAIL, _check_id, _require_str
from ._scheduling_models import ModelError, _mapping, _opt
from ._secret import ClientSecret

__all__ = [
    "SelectionRule",
    "SelectionRuleMember",
    "SelectionRuleUpdate",
    "SelectionRules",
    "check_email",
    "check_path_segment",
    "get_operation",
    "structure_selection_rule",
    "update_operation",
]

RULES_PATH: Final = "/v1/scheduler/selection_rules"

_EMPTY: Final[Mapping[str, Any]] = MappingProxyType({})

# What an id may be when it becomes a segment of a URL path: RFC 3986's unreserved characters.
# Anything else (/, ?, #, %, whitespace) could move the request somewhere else.
_SEGMENT: Final = re.compile(r"[A-Za-z0-9_~.-]+")


def check_path_segment(field: str, value: object) -> str:
    """
    Refuse an id that is not safe as one segment of a URL path; return it quoted.

    Only letters, digits and ``_ ~ . -`` are accepted (and not ``.`` or ``..`` alone, nor any
    ``..``): ``sel_1/../../v1/x`` or ``sel_1?x=1`` never reach the wire.
    """
    _check_id(field, value)
    text = str(value)
    if not _SEGMENT.fullmatch(text) or ".." in text or text == ".":
        raise PayloadError(
            field,
            f"{text!r} is not a valid id: only letters, digits and _ ~ . - are allowed",
        )
    return urllib.parse.quote(text, safe="")


@attrs.frozen(kw_only=True)
class SelectionRuleMember:
    """An account in a selection rule's pool, or one an update added or removed."""

    sub: str | None = None
    """The account's sub, ``acc_...``."""
    email: str | None = None
    """The account's email address."""
    display_name: str | None = None
    """The account's name."""
    raw: Mapping[str, Any] = attrs.field(default=_EMPTY, repr=False, eq=False, hash=False)
    """Every field Cronofy sent for this member."""


def _validate_rule_sub(_inst: object, _attr: attrs.Attribute[Any], value: object) -> None:
    _check_id("host_group.sub", value)


def _to_members(value: Iterable[SelectionRuleMember]) -> tuple[SelectionRuleMember, ...]:
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
        raise PayloadError(
            "members", f"must be a list of SelectionRuleMember, got {type(value).__name__}"
        )
    members = tuple(value)
    for index, member in enumerate(members):
        if not isinstance(member, SelectionRuleMember):
            raise PayloadError(
                f"members[{index}]", f"must be a SelectionRuleMember, got {type(member).__name__}"
            )
    return members


@attrs.frozen(kw_only=True)
class SelectionRule:
    """
    A Selection Rule (``sel_...``): a pool of hosts and how many of them must attend.

    What `AsyncSchedulerAPI.get_selection_rule` returns, and how a scheduling request names a
    rule as its host group (only `sub` is sent then)::

        rule = await api.get_selection_rule("sel_1")
        print(rule.name, rule.required, [m.email for m in rule.members])

        NewSchedulingRequest(host_group=SelectionRule(sub="sel_1"), ...)
    """

    sub: str = attrs.field(validator=_validate_rule_sub)
    """The rule's id, ``sel_...``."""
    name: str | None = None
    """The rule's name."""
    required: int | str | None = None
    """How many members must attend: a whole number or ``"all"``."""
    members: tuple[SelectionRuleMember, ...] = attrs.field(default=(), converter=_to_members)
    """The pool of hosts."""
    raw: Mapping[str, Any] = attrs.field(default=_EMPTY, repr=False, eq=False, hash=False)
    """The whole ``selection_rule`` object as Cronofy sent it (empty for one you built)."""


@attrs.frozen(kw_only=True)
class SelectionRuleUpdate:
    """
    The answer to `AsyncSchedulerAPI.update_selection_rule`: the rule, and what changed.

    ::

        update = await api.update_selection_rule("sel_1", add=["doc@evenitron.com"])
        if update.not_resolved:
            print("no such account:", ", ".join(update.not_resolved))
    """

    rule: SelectionRule
    """The rule after the update."""
    added: tuple[SelectionRuleMember, ...] = ()
    """Members the update added."""
    removed: tuple[SelectionRuleMember, ...] = ()
    """Members the update removed."""
    not_resolved: tuple[str, ...] = ()
    """Emails Cronofy could not match to an account of the Organizational Unit."""
    raw: Mapping[str, Any] = attrs.field(default=_EMPTY, repr=False, eq=False, hash=False)
    """The whole answer as Cronofy sent it."""


# -- reading ---------------------------------------------------------------------------------


def _member(path: str, value: object) -> SelectionRuleMember:
    if isinstance(value, str):  # an undocumented but plausible shorthand: the email alone
        return SelectionRuleMember(email=value)
    data = _mapping(path, value)
    return SelectionRuleMember(
        sub=_opt(path, data, "sub", str),
        email=_opt(path, data, "email", str),
        display_name=_opt(path, data, "display_name", str),
        raw=data,
    )


def _members(path: str, value: object) -> tuple[SelectionRuleMember, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ModelError(path, f"expected a list, got {type(value).__name__}")
    return tuple(_member(f"{path}[{i}]", item) for i, item in enumerate(value))


def structure_selection_rule(value: object, path: str = "selection_rule") -> SelectionRule:
    """Parse a ``selection_rule`` object; raises `ModelError` naming a malformed field."""
    data = _mapping(path, value)
    sub = data.get("sub")
    if not isinstance(sub, str) or not sub:
        raise ModelError(f"{path}.sub", "missing or not a string")
    return SelectionRule(
        sub=sub,
        name=_opt(path, data, "name", str),
        required=_opt(path, data, "required", (int, str)),
        members=_members(f"{path}.members", data.get("members")),
        raw=data,
    )


def _not_resolved(path: str, value: object) -> tuple[str, ...]:
    emails = []
    for member in _members(path, value):
        if member.email is None:
            raise ModelError(path, "an entry has no email")
        emails.append(member.email)
    return tuple(emails)


def structure_update(data: Mapping[str, Any]) -> SelectionRuleUpdate:
    """Parse a whole update answer: ``selection_rule`` and, when present, ``diff_applied``."""
    if "selection_rule" not in data:
        raise ModelError("selection_rule", "missing")
    rule = structure_selection_rule(data["selection_rule"])
    diff = data.get("diff_applied")
    # No diff at all (a rename, say) is read as "no member changed", not as an error: the
    # update did happen, and failing now would only hide that.
    members = _EMPTY if diff is None else _mapping("diff_applied", diff).get("members")
    changes = _EMPTY if members is None else _mapping("diff_applied.members", members)
    return SelectionRuleUpdate(
        rule=rule,
        added=_members("diff_applied.members.added", changes.get("added")),
        removed=_members("diff_applied.members.removed", changes.get("removed")),
        not_resolved=_not_resolved(
            "diff_applied.members.not_resolved", changes.get("not_resolved")
        ),
        raw=data,
    )


def _read_rule(
    content: bytes, response: Callable[[], httpx.Response], secret: ClientSecret | None
) -> SelectionRule:
    data = _object(content, response, secret, processed=False)
    try:
        if "selection_rule" not in data:
            raise ModelError("selection_rule", "missing")
        return structure_selection_rule(data["selection_rule"])
    except (TypeError, ValueError) as exc:
        raise _malformed(str(exc), content, response, secret, processed=False) from None


def _read_update(
    content: bytes, response: Callable[[], httpx.Response], secret: ClientSecret | None
) -> SelectionRuleUpdate:
    data = _object(content, response, secret, processed=True)
    try:
        return structure_update(data)
    except (TypeError, ValueError) as exc:
        raise _malformed(str(exc), content, response, secret, processed=True) from None


def _object(
    content: bytes,
    response: Callable[[], httpx.Response],
    secret: ClientSecret | None,
    *,
    processed: bool,
) -> Mapping[str, Any]:
    try:
        data = loads(content)
    except ValueError:
        data = None
    if not isinstance(data, Mapping):
        raise _malformed(
            "the body is not a JSON object", content, response, secret, processed=processed
        )
    return data


# -- building --------------------------------------------------------------------------------


def check_email(field: str, value: object) -> str:
    """Refuse what is not an email address (the same loose rule as a recipient's)."""
    text = _require_str(field, value)
    if not _EMAIL.fullmatch(text):
        raise PayloadError(field, f"{text!r} is not a valid email address")
    return text


def _emails(field: str, values: Iterable[str]) -> list[str]:
    if isinstance(values, str | bytes | Mapping) or not isinstance(values, Iterable):
        raise PayloadError(field, f"must be a list of email addresses, got {type(values).__name__}")
    found: dict[str, str] = {}
    for index, value in enumerate(values):
        email = check_email(f"{field}[{index}]", value)
        found.setdefault(email.lower(), email)
    return list(found.values())


def _check_required(field: str, value: object) -> None:
    if value == "all" and isinstance(value, str):
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise PayloadError(field, f"must be a whole number >= 1 or 'all', got {value!r}")


def update_body(
    *,
    name: str | None,
    required: int | Literal["all"] | None,
    add: Iterable[str],
    remove: Iterable[str],
) -> dict[str, Any]:
    """The ``PATCH`` body: only what changes; refuses an update that changes nothing."""
    body: dict[str, Any] = {}
    if name is not None:
        if not isinstance(name, str) or not name.strip():
            raise PayloadError("name", f"must be a non-blank string, got {name!r}")
        _require_str("name", name)  # and valid text: no lone surrogate
        body["name"] = name
    if required is not None:
        _check_required("required", required)
        body["required"] = required
    adding = _emails("members.add", add)
    removing = _emails("members.remove", remove)
    both = {e.lower() for e in adding} & {e.lower() for e in removing}
    if both:
        raise PayloadError(
            "members", f"{', '.join(sorted(both))}: asked to be both added and removed"
        )
    members: dict[str, Any] = {}
    if adding:
        members["add"] = [{"email": email} for email in adding]
    if removing:
        members["remove"] = [{"email": email} for email in removing]
    if members:
        body["members"] = members
    if not body:
        raise PayloadError(
            "selection_rule", "nothing to update: give name, required, add or remove"
        )
    return body


def get_operation(sub: str) -> Operation[SelectionRule]:
    """``GET /v1/scheduler/selection_rules/{sub}``: changes nothing, safe to retry."""
    segment = check_path_segment("selection_rule_id", sub)
    return Operation(
        name="get_selection_rule",
        method="GET",
        path=f"{RULES_PATH}/{segment}",
        read=_read_rule,
        idempotent=True,
        mutates=False,
    )


def update_operation(
    sub: str,
    *,
    name: str | None = None,
    required: int | Literal["all"] | None = None,
    add: Iterable[str] = (),
    remove: Iterable[str] = (),
) -> Operation[SelectionRuleUpdate]:
    """``PATCH /v1/scheduler/selection_rules/{sub}``: applying it twice changes nothing more."""
    segment = check_path_segment("selection_rule_id", sub)
    body = update_body(name=name, required=required, add=add, remove=remove)
    return Operation(
        name="update_selection_rule",
        method="PATCH",
        path=f"{RULES_PATH}/{segment}",
        body=json_body(body),
        read=_read_update,
        idempotent=True,
        mutates=True,
    )


class SelectionRules(Calls):
    """`AsyncSchedulerAPI`'s selection-rule calls."""

    __slots__ = ()

    async def get_selection_rule(self, sub: str) -> SelectionRule:
        """
        Show a selection rule (``GET /v1/scheduler/selection_rules/{sub}``).

        Raises `PayloadError` before sending for an id that is not a safe path segment, and
        `NotFoundError` if Cronofy does not know the rule. Safe to retry: 5xx and lost
        answers are retried by default, and ``outcome_unknown`` is always ``False``::

            rule = await api.get_selection_rule("sel_1")
            print(rule.name, rule.required, [member.email for member in rule.members])
        """
        self._check_open()
        return await self._call(get_operation(sub))

    async def update_selection_rule(
        self,
        sub: str,
        *,
        name: str | None = None,
        required: int | Literal["all"] | None = None,
        add: Iterable[str] = (),
        remove: Iterable[str] = (),
    ) -> SelectionRuleUpdate:
        """
        Rename a selection rule, change `required`, or add and remove members by email.

        ``PATCH /v1/scheduler/selection_rules/{sub}``. Only what you pass is sent; an update
        that changes nothing, an address that is not one, or one both added and removed is
        refused with `PayloadError` before sending. The update is idempotent, so 5xx and lost
        answers are retried by default; if it still fails, ``outcome_unknown`` says whether it
        may have been applied (applying it again is safe)::

            update = await api.update_selection_rule(
                "sel_1", required=1, add=["doc@evenitron.com"], remove=["biff@example.com"]
            )
            print(update.added, update.removed, update.not_resolved)
        """
        self._check_open()
        operation = update_operation(sub, name=name, required=required, add=add, remove=remove)
        return await self._call(operation)
