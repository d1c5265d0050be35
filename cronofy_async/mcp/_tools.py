"""
What the MCP tools do, without the MCP SDK's server.

Arguments to requests, models to answers, an invite's idempotency key, and any exception as
the one sentence an agent reads.

Pure functions, so that each rule is tested on its own and `_server` stays a thin layer.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Final

# pydantic (which the MCP SDK builds schemas with) reads nested TypedDicts only from
# typing_extensions before Python 3.12; the SDK depends on it.
from typing_extensions import TypedDict

from .._errors import (
    APIConnectionError,
    APIError,
    AuthenticationError,
    ConfigurationError,
    CronofyError,
    IdempotencyConflictError,
    LedgerUnavailableError,
    NotFoundError,
    OutcomeUnknownError,
    PaginationError,
    PayloadError,
    PaymentRequiredError,
    PermissionDeniedError,
    RateLimitError,
    ResponseFormatError,
    ValidationError,
)
from .._members import OrganizationalUnitMember
from .._payload import Event, Host, Recipient
from .._scheduling_models import SchedulingRequest
from .._scheduling_requests import NewSchedulingRequest
from .._secret import ClientSecret
from .._selection_rules import SelectionRule

__all__ = [
    "KEY_PREFIX",
    "ArgumentError",
    "HostEntry",
    "Invite",
    "InviteStatus",
    "RuleAnswer",
    "RuleMember",
    "explain",
    "given_id",
    "given_key",
    "holding_no_secret",
    "host_answer",
    "invite_answer",
    "invite_key",
    "invite_request",
    "invite_status",
    "rule_answer",
    "schema_error",
    "unknown_arguments",
]

KEY_PREFIX: Final = "mcp-invite-"
"""How a derived key starts, so that it is told from a caller's own in a shared ledger."""


class ArgumentError(ValueError):
    """A tool's arguments that cannot make a request; the message names the argument."""


class Invite(TypedDict):
    """What `create_invite` answers."""

    scheduling_request_id: str
    select_url: str | None
    replayed: bool
    idempotency_key: str


class InviteStatus(TypedDict):
    """One scheduling request, as `get_invites` answers it."""

    scheduling_request_id: str
    slot_selection: str | None
    select_url: str | None
    dashboard_url: str | None
    summary: str | None


def _words(text: str) -> str:
    # A retried call that differs only in spacing is the same invite, and sends the same body.
    return " ".join(text.split())


# Default-ignorable code points outside category Cf (Unicode's DerivedCoreProperties), and
# the braille blank: shown as nothing, yet another address and another key.
_IGNORABLE: Final = re.compile(
    "[\u034f\u115f\u1160\u17b4\u17b5\u180b-\u180f\u2800\u3164\ufe00-\ufe0f\uffa0"
    "\U000e0100-\U000e01ef]"
)
_JOINERS: Final = "\u200c\u200d"


def _invisible(value: str, at: int) -> bool:
    char = value[at]
    if char in _JOINERS:
        # ZWNJ and ZWJ spell Persian and Indic words (IDNA allows them there): kept between
        # two letters or marks of a script, refused elsewhere.
        around = value[at - 1 : at] + value[at + 1 : at + 2]
        return not (
            len(around) == 2
            and all(not c.isascii() and unicodedata.category(c)[0] in "LM" for c in around)
        )
    return (
        unicodedata.category(char) == "Cf"
        or (char.isspace() and char != " ")
        or _IGNORABLE.match(char) is not None
    )


def _plain(name: str, value: str, *, lines: bool = False, visible: bool = False) -> str:
    """
    `value`, unless it holds a character no person should see; then `ArgumentError`.

    A control character (a NUL, an escape) is a model's slip; line breaks pass when `lines`.
    With `visible`, an invisible one (a zero-width space, a tab) is refused too.
    """
    allowed = "\n\t\r" if lines else ""
    for at, char in enumerate(value):
        if unicodedata.category(char) == "Cc" and char not in allowed:
            kind = "a control character"
        elif visible and _invisible(value, at):
            kind = "an invisible character"
        else:
            continue
        raise ArgumentError(f"{name}: holds {kind} (U+{ord(char):04X}) at position {at}")
    return value


def _optional(name: str, value: str | None, *, lines: bool = False) -> str | None:
    if value is None:
        return None
    value = _plain(name, value.strip(), lines=lines)
    if not value:
        raise ArgumentError(f"{name}: give text or leave it out, not an empty string")
    return value


_ASCII_LOWER: Final = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _normal_email(email: str) -> str:
    # The key folds case (Marty@ and marty@ are one recipient), so the body must too: else a
    # retry with other capitals would meet its own first call as a conflict. ASCII letters
    # only: str.lower() rewrites some non-ASCII letters into other code points ("İ" becomes
    # two), which would invite an address nobody gave.
    # An invisible character (a zero-width space pasted along) would make another key for
    # the same person, and another address: refused, not dropped, since it is not ours to fix.
    return _plain("email", email.strip(), visible=True).translate(_ASCII_LOWER)


def given_key(key: str | None) -> str | None:
    """
    An explicit idempotency key as the ledger keeps it: outer spaces dropped.

    A model that copies a key back often adds a space or a newline; the same key with one
    is the same invite. A key of only spaces is refused, naming ``idempotency_key``.

    >>> given_key("  order-42 ")
    'order-42'
    """
    if key is None:
        return None
    stripped = key.strip()
    if not stripped:
        raise ArgumentError("idempotency_key: give text or leave it out, not only spaces")
    return _plain("idempotency_key", stripped)


def holding_no_secret(secret: str, **given: object) -> None:
    """
    Refuse, naming it, an argument that holds the client secret: it is never sent or echoed.

    An id comes back in the answer (``not_found``) and a text reaches Cronofy and the
    invitee; a secret pasted into one is refused before either.

    >>> holding_no_secret("sk_1", id="srq_1", summary=None)
    """
    if not secret:
        return
    for name, value in given.items():
        values = value if isinstance(value, list) else [value]
        for at, item in enumerate(values):
            if isinstance(item, str) and secret in item:
                where = f"{name}[{at}]" if isinstance(value, list) else name
                raise ArgumentError(f"{where}: must not contain the client secret")


def given_id(name: str, value: str) -> str:
    """
    An id an agent gave (``srq_...``, ``sel_...``), outer spaces dropped, else `ArgumentError`.

    >>> given_id("id", " srq_1 ")
    'srq_1'
    """
    stripped = value.strip()
    if not stripped:
        raise ArgumentError(f"{name}: give an id, not an empty string")
    if any(char.isspace() or unicodedata.category(char) == "Cc" for char in stripped):
        raise ArgumentError(f"{name}: an id holds no spaces or control characters")
    return stripped


def invite_request(
    *,
    email: str,
    summary: str,
    host: str | None = None,
    selection_rule: str | None = None,
    display_name: str | None = None,
    duration_minutes: int | None = None,
    description: str | None = None,
) -> NewSchedulingRequest:
    """
    The scheduling request `create_invite` sends, its arguments normalised.

    Raises `ArgumentError` naming the argument, or `PayloadError` naming Cronofy's field,
    before anything is sent.

    >>> request = invite_request(email=" Marty@Evenitron.com", summary="Lesson", host="acc_1")
    >>> request.recipients[0].email
    'marty@evenitron.com'
    """
    host = _optional("host", host)
    selection_rule = _optional("selection_rule", selection_rule)
    if (host is None) == (selection_rule is None):
        raise ArgumentError(
            "give exactly one of host (an account sub from list_hosts, acc_...) or "
            "selection_rule (a rule id, sel_...)"
        )
    if not _plain("summary", summary).strip():
        raise ArgumentError("summary: give the event's title, not an empty string")
    if duration_minutes is not None and not 1 <= duration_minutes <= 1440:
        raise ArgumentError(
            f"duration_minutes: {duration_minutes} is outside 1..1440 (a day, in minutes)"
        )
    return NewSchedulingRequest(
        host=Host(sub=host) if host is not None else None,
        host_group=SelectionRule(sub=selection_rule) if selection_rule is not None else None,
        recipients=[
            Recipient(
                email=_normal_email(email),
                display_name=_optional("display_name", display_name),
                slot_selector=True,
            )
        ],
        event=Event(
            summary=_words(summary),
            description=_optional("description", description, lines=True),
            duration_minutes=duration_minutes,
        ),
    )


def invite_key(request: NewSchedulingRequest) -> str:
    """
    The idempotency key of an invite given none: who is invited, by whom, to what, how long.

    The email is case-folded and the summary's spacing ignored, so that a retried call finds
    the first; the display name and description are not in it, so a retry that rewords them
    is told it conflicts rather than inviting the person again.

    >>> a = invite_request(email="Marty@x.com", summary="Lesson  1", host="acc_1")
    >>> b = invite_request(email="marty@X.com", summary="Lesson 1", host="acc_1")
    >>> invite_key(a) == invite_key(b)
    True
    """
    group = request.host_group
    parts = [
        request.recipients[0].email.casefold(),
        request.host.sub if request.host is not None else None,
        group.sub if isinstance(group, SelectionRule) else None,
        _words(request.event.summary),
        request.event.duration_minutes,
    ]
    digest = hashlib.sha256(json.dumps(parts, ensure_ascii=False).encode()).hexdigest()
    return KEY_PREFIX + digest[:40]


def _select_url(created: SchedulingRequest) -> str | None:
    if created.primary_select_url is not None:
        return created.primary_select_url
    return next((r.select_url for r in created.recipients if r.select_url), None)


def invite_answer(created: SchedulingRequest, *, key: str, replayed: bool) -> Invite:
    """`create_invite`'s answer for a created (or replayed) scheduling request."""
    return {
        "scheduling_request_id": created.scheduling_request_id,
        "select_url": _select_url(created),
        "replayed": replayed,
        "idempotency_key": key,
    }


def invite_status(found: SchedulingRequest) -> InviteStatus:
    """One scheduling request as `get_invites` answers it."""
    return {
        "scheduling_request_id": found.scheduling_request_id,
        "slot_selection": found.slot_selection,
        "select_url": _select_url(found),
        "dashboard_url": found.dashboard_url,
        "summary": found.summary,
    }


class HostEntry(TypedDict):
    """One member of the Organizational Unit, as `list_hosts` answers it."""

    sub: str
    email: str | None
    scheduler_enabled: bool | None


class RuleMember(TypedDict):
    """One member of a selection rule."""

    sub: str | None
    email: str | None
    display_name: str | None


class RuleAnswer(TypedDict):
    """A selection rule, as `show_selection_rule` answers it."""

    id: str
    name: str | None
    required: int | str | None
    members: list[RuleMember]


def host_answer(member: OrganizationalUnitMember) -> HostEntry:
    """One member as `list_hosts` answers it."""
    return {
        "sub": member.sub,
        "email": member.email,
        "scheduler_enabled": member.scheduler_enabled,
    }


def rule_answer(rule: SelectionRule) -> RuleAnswer:
    """A selection rule as `show_selection_rule` answers it."""
    return {
        "id": rule.sub,
        "name": rule.name,
        "required": rule.required,
        "members": [
            {"sub": m.sub, "email": m.email, "display_name": m.display_name} for m in rule.members
        ],
    }


_ARGUMENTS: Final = {
    "recipients.email": "email",
    "recipients.display_name": "display_name",
    "event.summary": "summary",
    "event.description": "description",
    "event.duration.minutes": "duration_minutes",
    "host.sub": "host",
    "host_group.sub": "selection_rule",
    "idempotency_key": "idempotency_key",
    "scheduling_request_id": "id",
    "selection_rule_id": "id",
}


_LISTED: Final = re.compile(r"scheduling_request_ids\[(\d+)\]")


def _argument(field: str) -> str:
    listed = _LISTED.fullmatch(field)
    if listed is not None:
        return f"ids[{listed.group(1)}]"
    return _ARGUMENTS.get(field, field)


_NOT_FOUND: Final = {
    "cancel_invite": (
        "Cronofy knows no scheduling request with that id (404): give the "
        "scheduling_request_id create_invite answered (srq_...)"
    ),
    "show_selection_rule": (
        "Cronofy knows no selection rule with that id (404): check the rule's id (sel_...) "
        "in Cronofy's dashboard"
    ),
    "create_invite": (
        "Cronofy knows no such host or selection rule (404), so nothing was created: check "
        "host against list_hosts, or the selection rule's id"
    ),
}


def schema_error(tool: str, problems: Iterable[tuple[Sequence[str | int], str, str]]) -> str:
    """
    Arguments the tool's JSON schema refuses, as one sentence that quotes no value given.

    `problems` are pydantic's errors as (location, type, message): the values an agent sent
    may be personal data or a secret pasted in the wrong place, so only where and why.

    >>> schema_error("list_hosts", [(("limit",), "int_type", "Input should be a valid integer")])
    'list_hosts refused its arguments: limit: input should be a valid integer (nothing was sent).'
    """
    said: list[str] = []
    for location, kind, message in problems:
        where = ".".join(str(part) for part in location) or "arguments"
        if kind == "missing":
            why = "is required"
        elif kind == "extra_forbidden":
            why = "is not an argument of this tool"
        else:
            why = _one_line(message)
            why = why[:1].lower() + why[1:]
        said.append(f"{where}: {why}")
    return f"{tool} refused its arguments: {'; '.join(said)} (nothing was sent)."


_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_NAMED_AT_MOST: Final = 5


def unknown_arguments(tool: str, names: Sequence[str], secret: ClientSecret | None) -> str:
    """
    Arguments `tool` does not have, as one sentence naming at most five.

    A name is repeated only if it looks like one: a value pasted as a key (an email, the
    secret, a line of text) is counted, not shown.

    >>> unknown_arguments("list_hosts", ["limt"], None)
    'list_hosts refused its arguments: limt: is not an argument of this tool (nothing was sent).'
    """
    shown = [
        name
        for name in names
        if _NAME.fullmatch(name) and (secret is None or secret.redact(name) == name)
    ][:_NAMED_AT_MOST]
    said = [f"{name}: is not an argument of this tool" for name in shown]
    hidden = len(names) - len(shown)
    if hidden:
        if shown:
            what = f"{hidden} more"
        else:
            what = "an argument" if hidden == 1 else f"{hidden} arguments"
        said.append(f"{what} it does not have, whose names are not shown")
    return f"{tool} refused its arguments: {'; '.join(said)} (nothing was sent)."


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _unknown(error: APIError) -> str:
    return (
        f"{_one_line(str(error))}. The invite may exist: Cronofy may have created it before "
        "the answer was lost. Calling create_invite again with the same arguments sends "
        "nothing and answers this again; check the scheduling requests in Cronofy's "
        "dashboard, or ask the recipient, before trying with a new idempotency_key"
    )


def explain(error: BaseException, *, tool: str = "") -> str:
    """
    Any exception as one sentence for an agent: what happened and what to do.

    `tool` is the tool that failed, for hints that name the right id. Never a traceback or
    the client secret (which no library error holds).

    >>> explain(ArgumentError("summary: give the event's title"))
    "summary: give the event's title."
    """
    message: str
    creating = tool == "create_invite"
    if isinstance(error, ArgumentError):
        message = str(error)
    elif isinstance(error, PayloadError):
        message = f"{_argument(error.field)}: {error.problem} (nothing was sent)"
    elif isinstance(error, OutcomeUnknownError):
        message = (
            f"The invite may already exist: an earlier attempt under idempotency key "
            f"{error.key!r} timed out or failed after it was sent, so nothing was sent now. "
            "Check the scheduling requests in Cronofy's dashboard, or ask the recipient; only "
            "if there is none, call create_invite again with a new idempotency_key"
        )
    elif isinstance(error, IdempotencyConflictError):
        message = (
            f"Idempotency key {error.key!r} already stands for an invite with other details "
            "(a reworded display name or description, another host?), so nothing was sent. "
            "To send a second, different invite, give a new idempotency_key"
        )
    elif isinstance(error, LedgerUnavailableError):
        message = (
            f"The idempotency ledger could not be used, so nothing was sent: "
            f"{_one_line(str(error))}. Try again shortly"
        )
    elif isinstance(error, AuthenticationError):
        message = (
            "Cronofy did not accept the client secret (401): check CRONOFY_CLIENT_SECRET or "
            "--client-secret-file, and that --data-center is the application's"
        )
    elif isinstance(error, PaymentRequiredError):
        message = "Cronofy refused (402): the plan lacks the Scheduler feature"
    elif isinstance(error, PermissionDeniedError):
        message = (
            "Cronofy refused (403): the application may not do this for that account or "
            "rule; check that the host is a member of the organization (list_hosts)"
        )
    elif isinstance(error, NotFoundError):
        message = _NOT_FOUND.get(tool, "Cronofy knows no such id (404): check it")
    elif isinstance(error, RateLimitError):
        wait = error.retry_after
        when = "in a minute" if wait is None else f"in {wait:g} second{'' if wait == 1 else 's'}"
        message = (
            "Cronofy's rate limit was reached (429) and waiting did not get through; "
            f"nothing was created: retry {when}"
        )
    elif isinstance(error, ValidationError):
        problems = "; ".join(
            f"{_argument(field)}: {', '.join(e.description for e in errors)}"
            for field, errors in error.errors.items()
        )
        message = f"Cronofy refused the request (422): {problems or _one_line(str(error))}"
    elif isinstance(error, PaginationError):
        message = (
            f"The list could not be read to its end ({error.reason}, after {error.yielded} "
            "items); try again"
        )
    elif isinstance(error, APIError) and error.outcome_unknown and creating:
        message = _unknown(error)
    elif isinstance(error, APIConnectionError | ResponseFormatError | APIError):
        message = f"{_one_line(str(error))}. Try again shortly"
    elif isinstance(error, ConfigurationError | CronofyError):
        message = _one_line(str(error))
    else:
        # Not ours: its text may hold anything, so only its kind is told.
        message = f"Unexpected error ({type(error).__name__}); nothing more is known"
    return message.rstrip(".") + "."
