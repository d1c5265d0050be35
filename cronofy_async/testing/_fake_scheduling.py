"""
`FakeCronofy`'s state and handlers for the rest of the Scheduler API.

Scheduling requests (create, query, cancel, and `select_slot` to act as the recipient, which
sends a push notification when the fake has a notification URL: see `_notify`),
Organizational Unit members and resources (paged), and selection rules (show, patch). The
fake's ASGI entry point (`_fake`) authenticates, rate-limits and injects faults for every
operation alike, then hands the request to the handler `route` names.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import math
import re
import secrets
import time
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any, Final

import attrs

from .._errors import ConfigurationError
from .._payload import MAX_SUMMARY_LENGTH
from ._notify import Delivery, FakeNotifications, NotificationFaults, link_metadata_from_url

__all__ = [
    "DEFAULT_PAGE_LINK_TTL",
    "DEFAULT_PAGE_SIZE",
    "FakeRequest",
    "FakeScheduling",
    "FakeSelectionRule",
    "Handler",
    "SchedulingEntry",
]

DEFAULT_PAGE_SIZE: Final = 100
"""Members or resources per page, unless ``page_size=`` says otherwise."""
DEFAULT_PAGE_LINK_TTL: Final = 300.0
"""Seconds a ``next_page`` link works, unless ``page_link_ttl=`` says otherwise."""
MEMBER_DOMAIN: Final = "example.com"
"""Where a member's email is, when the fake derives one from its sub."""

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_RULE_PATH = re.compile(r"/v1/scheduler/selection_rules/([^/]+)")
_MAX_PAGE_LINKS: Final = 10_000
"""The most ``next_page`` links kept at once: past it, the oldest stops working first."""
_now = time.monotonic  # a module global, so a test can move the fake's clock alone
_PAGE_PATH = re.compile(r"(/v1/organizational_unit_(?:members|resources))/pages/([^/]+)")


@attrs.frozen
class _PageLink:
    """What a ``next_page`` token stands for: a page of one list, until it expires."""

    key: str
    number: int
    expires: float


@attrs.frozen(kw_only=True)
class FakeRequest:
    """What a handler needs of one request that passed authentication and the rate limit."""

    method: str
    path: str
    body: bytes
    query: Mapping[str, str]
    impersonated: str | None
    origin: str
    """``scheme://host[:port]`` as the client addressed the fake, for the links it answers."""


Answer = tuple[str, int, Any]
"""``(outcome, status, payload)``: how `FakeCronofy.outcomes` counts it, and the answer."""
Handler = Callable[[FakeRequest], Answer]


@attrs.define(kw_only=True)
class SchedulingEntry:
    """
    One scheduling request the fake created: an entry of its ledger.

    Unlike a scheduler request's entry it changes: `select_slot` completes it and a cancel
    marks it `cancelled` (Cronofy documents no cancelled state, so queries do not show one).
    """

    sequence: int
    """Its position in the ledger, from 0."""
    scheduling_request_id: str
    """The ``srq_...`` id answered."""
    email: str
    """The recipient's email."""
    summary: str
    """``event.summary``."""
    host_sub: str | None
    """``host.sub`` from the body, if any."""
    host_group: Mapping[str, Any] | None
    """``host_group`` from the body, if any: inline, or ``{"sub": "sel_..."}``."""
    impersonated: str | None
    """The ``Cronofy-Impersonate`` sub, if any."""
    select_url: str
    """The recipient's link."""
    origin: str = attrs.field(repr=False)
    body: Mapping[str, Any] = attrs.field(repr=False, eq=False)
    """The whole JSON body as received."""
    slot_selection: str = "pending"
    """``"pending"``, then ``"complete"`` once `FakeCronofy.select_slot` picks a time."""
    cancelled: bool = False
    """Whether a cancel was accepted for it."""
    cancel_count: int = 0
    """How many cancels were accepted for it (cancelling twice cancels once)."""
    link_metadata: Mapping[str, str] = attrs.field(factory=dict)
    """The ``correlation_id`` and ``utm_*`` on the select URL of the latest `select_slot`."""
    captured_data: Mapping[str, Any] = attrs.field(factory=dict)
    """What the booking page captured at the latest `select_slot`."""
    notification_task: asyncio.Task[list[Delivery]] | None = attrs.field(
        default=None, repr=False, eq=False
    )
    """
    The delivery of the latest `select_slot`'s notification: a task whose result is its
    `Delivery` list; ``None`` without a notification URL.
    """

    @property
    def host(self) -> str | None:
        """Who hosts: the host sub, the selection rule's sub or the impersonated account."""
        rule = self.host_group.get("sub") if self.host_group else None
        return self.host_sub or rule or self.impersonated

    @property
    def invite_key(self) -> tuple[str, str | None, str]:
        """What makes two creates the same logical invite: recipient, host and summary."""
        return (self.email.lower(), self.host, self.summary)

    def answer(self) -> dict[str, Any]:
        """The ``scheduling_request`` object, as a create or a query answers it."""
        event = self.body["event"]
        recipients = []
        for sent in self.body["recipients"]:
            recipient = {
                k: sent[k] for k in ("email", "display_name", "slot_selector") if k in sent
            }
            recipient["select_url"] = self.select_url
            recipients.append(recipient)
        item: dict[str, Any] = {
            "scheduling_request_id": self.scheduling_request_id,
            "slot_selection": self.slot_selection,
            "primary_select_url": self.select_url,
            "dashboard_url": f"{self.origin}/dashboard/scheduling_requests/"
            f"{self.scheduling_request_id}",
            "summary": self.summary,
        }
        if isinstance(event.get("duration"), dict):
            item["duration"] = event["duration"]
        if self.slot_selection == "complete":
            base = f"{self.select_url}/booking"
            item["recipient_operations"] = {
                "view_url": base,
                "decline_url": f"{base}/decline",
                "reschedule_url": f"{base}/reschedule",
            }
        item["recipients"] = recipients
        item["event"] = dict(event)
        return item


@attrs.define(kw_only=True)
class FakeSelectionRule:
    """A selection rule the fake knows: its state now."""

    sub: str
    name: str
    required: int | str
    emails: list[str]
    """Its members' emails, in order."""


def _error(field: str, key: str, description: str) -> dict[str, list[dict[str, str]]]:
    return {field: [{"key": key, "description": description}]}


def _unprocessable(errors: dict[str, Any]) -> Answer:
    return "422", 422, {"errors": errors}


def _not_found() -> Answer:
    return "404", 404, {"error": "not_found"}


def _named(name: str, values: object) -> list[tuple[str, str | None]]:
    """``[(sub, value)]`` from a list of subs or a mapping of sub to a value."""
    if values is None:
        return []
    if isinstance(values, str):
        raise ConfigurationError(f"{name} must be a list or a mapping, not one string")
    if isinstance(values, Mapping):
        return [(str(k), None if v is None else str(v)) for k, v in values.items()]
    if not isinstance(values, Iterable):
        raise ConfigurationError(f"{name} must be a list or a mapping, got {values!r}")
    return [(str(v), None) for v in values]


def _rules(
    value: Mapping[str, tuple[str, int | str, Iterable[str]]] | None,
) -> dict[str, FakeSelectionRule] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ConfigurationError("selection_rules must map a sub to (name, required, emails)")
    rules = {}
    for sub, spec in value.items():
        try:
            name, required, emails = spec
        except (TypeError, ValueError):
            raise ConfigurationError(
                f"selection_rules[{sub!r}] must be (name, required, member emails)"
            ) from None
        if isinstance(emails, str):
            raise ConfigurationError(f"selection_rules[{sub!r}]: emails must be a list")
        rules[sub] = FakeSelectionRule(sub=sub, name=name, required=required, emails=list(emails))
    return rules


def _page_size(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigurationError(f"page_size must be a whole number >= 1, got {value!r}")
    return value


def _list_path(path: str) -> str:
    """The list `path` reads: itself, or the list a ``/pages/<token>`` path is below."""
    page = _PAGE_PATH.fullmatch(path)
    return page.group(1) if page else path


def _page_link_ttl(value: object) -> float:
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ConfigurationError(f"page_link_ttl must be a number of seconds > 0, got {value!r}")
    return float(value)


class FakeScheduling(FakeNotifications):
    """
    The part of `FakeCronofy` that serves scheduling requests, members and selection rules.

    Its state: `scheduling_requests` (the ledger), `selection_rules`, the members and
    resources. `select_slot` acts as the recipient, and tells your push notification URL.
    """

    _members: frozenset[str] | None
    _select_url_base: str

    scheduling_requests: list[SchedulingEntry]
    """Every scheduling request created, in order; entries change as they are acted on."""
    selection_rules: dict[str, FakeSelectionRule] | None
    """The selection rules as they are now (``None``: any ``sel_`` sub is a valid host)."""

    def _init_scheduling(
        self,
        *,
        members: Iterable[str] | Mapping[str, str] | None,
        resources: Iterable[str] | Mapping[str, str] | None,
        selection_rules: Mapping[str, tuple[str, int | str, Iterable[str]]] | None,
        page_size: int,
        page_link_ttl: float,
    ) -> None:
        self._member_list = [
            (sub, email or f"{sub}@{MEMBER_DOMAIN}") for sub, email in _named("members", members)
        ]
        self._resource_list = [(sub, name or sub) for sub, name in _named("resources", resources)]
        self._page_size = _page_size(page_size)
        self._page_link_ttl = _page_link_ttl(page_link_ttl)
        # In the order given out, which is the order they expire in: every link lives as
        # long. An OrderedDict, since a dict's first item is found by scanning the holes its
        # deletions left, which makes dropping from the front quadratic.
        self._page_links: OrderedDict[str, _PageLink] = OrderedDict()
        self.selection_rules = _rules(selection_rules)
        self.scheduling_requests = []
        self._by_id: dict[str, SchedulingEntry] = {}
        self._scheduling_sequence = itertools.count()
        self._on_slot_selected: list[Callable[[dict[str, Any]], None]] = []
        """
        Called with the ``scheduling_request`` object each time `select_slot` completes one:
        the hook for push notifications.
        """

    # -- controlling it ----------------------------------------------------------------------

    def select_slot(
        self,
        scheduling_request_id: str,
        *,
        captured_data: Mapping[str, Any] | None = None,
        faults: NotificationFaults | None = None,
    ) -> SchedulingEntry:
        """
        Act as the recipient picking a time: the request's ``slot_selection`` is ``complete``.

        `scheduling_request_id` is the request's id, or the select URL the recipient followed,
        query and all: its link metadata (``correlation_id``, ``utm_*``, as `add_link_metadata`
        puts them) is recorded in the entry's `link_metadata`, as Cronofy stores it.

        With a ``notification_url``, the fake then POSTs the signed
        ``scheduling_request_time_chosen`` notification there in the background, carrying
        that metadata and `captured_data`; `faults` overrides `notification_faults` for it.
        The entry's `notification_task` is that delivery; `drain_notifications` awaits all::

            entry = fake.select_slot(add_link_metadata(select_url, correlation_id="order-42"))
            [delivery] = await fake.drain_notifications()

        Raises `ConfigurationError`, before anything changes, for an id or a link the fake
        never gave out, a cancelled request, bad `captured_data` or `faults`, or (with a
        notification URL) a call from outside a running event loop.
        """
        entry, metadata = self._selected(scheduling_request_id)
        if entry.cancelled:
            raise ConfigurationError(
                f"{entry.scheduling_request_id} was cancelled; no slot can be picked"
            )
        checked_faults, captured = self._check_notification(faults, captured_data)
        entry.slot_selection = "complete"
        entry.link_metadata = metadata
        entry.captured_data = dict(captured or {})
        answer = entry.answer()
        for hook in list(self._on_slot_selected):
            hook(answer)
        entry.notification_task = self._notify_time_chosen(
            answer, metadata=metadata, captured_data=captured, faults=checked_faults
        )
        return entry

    def _selected(self, id_or_link: object) -> tuple[SchedulingEntry, dict[str, str]]:
        """The entry an id or a select URL names, and the link metadata on that URL."""
        if not isinstance(id_or_link, str):
            raise ConfigurationError(
                f"select_slot takes a scheduling request id or its select URL, got {id_or_link!r}"
            )
        if "://" not in id_or_link:
            entry = self._by_id.get(id_or_link)
            if entry is None:
                raise ConfigurationError(f"the fake created no scheduling request {id_or_link!r}")
            return entry, {}
        bare = urllib.parse.urlsplit(id_or_link)._replace(query="", fragment="").geturl()
        for entry in self.scheduling_requests:
            if entry.select_url == bare:
                return entry, link_metadata_from_url(id_or_link)
        raise ConfigurationError(f"the fake has no scheduling request with the select URL {bare!r}")

    def scheduling_duplicates(
        self, key: Callable[[SchedulingEntry], Hashable] | None = None
    ) -> dict[Hashable, list[SchedulingEntry]]:
        """
        The logical scheduling requests created more than once, each with its ledger entries.

        Two creates are the same invite when `key` says so; by default
        `SchedulingEntry.invite_key` (recipient, host and summary). Cancelled ones count: a
        cancel does not undo an invite the recipient may have seen::

            assert fake.scheduling_duplicates() == {}  # nobody was invited twice
        """
        by_key: dict[Hashable, list[SchedulingEntry]] = {}
        for entry in self.scheduling_requests:
            found = key(entry) if key is not None else entry.invite_key
            by_key.setdefault(found, []).append(entry)
        return {k: entries for k, entries in by_key.items() if len(entries) > 1}

    # -- routing -------------------------------------------------------------------------------

    def expire_page_links(self) -> int:
        """
        Make every ``next_page`` link given out so far stop working, as time would.

        A listing that follows one afterwards is answered 404, as for a token the fake never
        gave out. Returns how many links expired::

            page = (await client.get("/v1/organizational_unit_members")).json()["pages"]
            fake.expire_page_links()
            assert (await client.get(page["next_page"])).status_code == 404
        """
        count = len(self._page_links)
        self._page_links.clear()
        return count

    def _route(self, method: str, path: str) -> Handler | tuple[str, ...] | None:
        """The handler for `method` on `path`; the allowed methods if only the method is wrong."""
        routes: dict[str, Handler]
        if path == "/v1/scheduling_requests":
            routes = {"POST": self._create_scheduling}
        elif path == "/v1/scheduling_requests/query":
            routes = {"POST": self._query_scheduling}
        elif path == "/v1/scheduling_requests/cancel":
            routes = {"POST": self._cancel_scheduling}
        elif _list_path(path) == "/v1/organizational_unit_members":
            routes = {"GET": self._list_members}
        elif _list_path(path) == "/v1/organizational_unit_resources":
            routes = {"GET": self._list_resources}
        elif _RULE_PATH.fullmatch(path):
            routes = {"GET": self._show_rule, "PATCH": self._patch_rule}
        else:
            return None
        return routes.get(method) or tuple(routes)

    # -- scheduling requests -----------------------------------------------------------------

    def _create_scheduling(self, request: FakeRequest) -> Answer:
        data = _json(request.body)
        errors = self._validate_scheduling(data, impersonated=request.impersonated)
        if errors or not isinstance(data, dict):
            return _unprocessable(errors)
        request_id = f"srq_{secrets.token_hex(12)}"
        entry = SchedulingEntry(
            sequence=next(self._scheduling_sequence),
            scheduling_request_id=request_id,
            email=data["recipients"][0]["email"],
            summary=data["event"]["summary"],
            host_sub=data["host"]["sub"] if data.get("host") else None,
            host_group=data.get("host_group"),
            impersonated=request.impersonated,
            select_url=f"{self._select_url_base}/s/{secrets.token_urlsafe(9)}",
            origin=request.origin,
            body=data,
        )
        self.scheduling_requests.append(entry)
        self._by_id[request_id] = entry
        return "scheduling:created", 200, {"scheduling_request": entry.answer()}

    def _validate_scheduling(self, data: Any, *, impersonated: str | None) -> dict[str, Any]:
        if not isinstance(data, dict):
            return _error("body", "errors.invalid", "must be a JSON object")
        errors, recipient = validate_recipients(data.get("recipients"))
        if recipient is not None and not isinstance(recipient.get("slot_selector", False), bool):
            errors |= _error("recipients.slot_selector", "errors.invalid", "must be a boolean")
        errors |= _validate_event(data.get("event"))
        errors |= self._validate_scheduling_host(data, impersonated=impersonated)
        groups = data.get("collaborator_groups", [])
        if not isinstance(groups, list):
            errors |= _error("collaborator_groups", "errors.invalid", "must be a list")
        else:
            for index, group in enumerate(groups):
                errors |= self._validate_group(f"collaborator_groups[{index}]", group)
        return errors

    def _validate_scheduling_host(
        self, data: dict[str, Any], *, impersonated: str | None
    ) -> dict[str, Any]:
        host, group = data.get("host"), data.get("host_group")
        if host is not None and group is not None:
            return _error("host", "errors.invalid", "give host or host_group, not both")
        if host is not None:
            sub = host.get("sub") if isinstance(host, dict) else None
            if not sub:
                return _error("host.sub", "errors.required", "required")
            if self._members is not None and sub not in self._members:
                return _error(
                    "host.sub", "errors.unknown", "not a member of the Organizational Unit"
                )
            return {}
        if group is not None:
            if isinstance(group, dict) and "sub" in group:
                rules = self.selection_rules
                if not isinstance(group["sub"], str) or (
                    rules is not None and group["sub"] not in rules
                ):
                    return _error("host_group.sub", "errors.unknown", "unknown selection rule")
                return {}
            return self._validate_group("host_group", group)
        if impersonated is None:
            return _error("host", "errors.required", "required")
        return {}

    def _validate_group(self, path: str, group: Any) -> dict[str, Any]:
        if not isinstance(group, dict):
            return _error(path, "errors.invalid", "must be an object")
        name, members, required = group.get("name"), group.get("members"), group.get("required")
        if not isinstance(name, str) or not name.strip():
            return _error(f"{path}.name", "errors.required", "required")
        if not isinstance(members, list) or not members:
            return _error(f"{path}.members", "errors.required", "at least one member")
        for index, member in enumerate(members):
            sub = member.get("sub") if isinstance(member, dict) else None
            if not isinstance(sub, str) or not sub:
                return _error(f"{path}.members[{index}].sub", "errors.required", "required")
            if self._members is not None and sub not in self._members:
                return _error(
                    f"{path}.members[{index}].sub",
                    "errors.unknown",
                    "not a member of the Organizational Unit",
                )
        if (
            required is not None
            and required != "all"
            and (
                not isinstance(required, int)
                or isinstance(required, bool)
                or not 1 <= required <= len(members)
            )
        ):
            return _error(f"{path}.required", "errors.invalid", "a count of members or 'all'")
        return {}

    def _query_scheduling(self, request: FakeRequest) -> Answer:
        data = _json(request.body)
        ids = data.get("scheduling_request_ids") if isinstance(data, dict) else None
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
            return _unprocessable(
                _error("scheduling_request_ids", "errors.required", "a list of ids is required")
            )
        # Cronofy's answer for an unknown id is undocumented; this fake leaves it out.
        found = [self._by_id[i] for i in dict.fromkeys(ids) if i in self._by_id]
        answer = {"scheduling_requests": [{"scheduling_request": e.answer()} for e in found]}
        return "scheduling:query", 200, answer

    def _cancel_scheduling(self, request: FakeRequest) -> Answer:
        data = _json(request.body)
        request_id = data.get("scheduling_request_id") if isinstance(data, dict) else None
        if not isinstance(request_id, str) or not request_id:
            return _unprocessable(_error("scheduling_request_id", "errors.required", "required"))
        entry = self._by_id.get(request_id)
        if entry is None:
            return _not_found()
        entry.cancelled = True
        entry.cancel_count += 1
        return "scheduling:cancelled", 202, None

    # -- members and resources ------------------------------------------------------------------

    def _page(self, request: FakeRequest, key: str, items: list[dict[str, Any]]) -> Answer:
        """
        One page of a list, as Cronofy pages: the first, or the one a ``next_page`` token names.

        ``page=`` is ignored, as by Cronofy's cursor-paged APIs; a link is
        ``<list path>/pages/<opaque token>`` on the origin the client addressed, works for
        `_page_link_ttl` seconds, and only for its own list. The last page has none.
        """
        now = _now()
        number = 1
        page = _PAGE_PATH.fullmatch(request.path)
        if page is not None:
            link = self._page_links.get(page.group(2))
            if link is None or link.key != key or link.expires <= now:
                return _not_found()
            number = link.number
        total = max(1, math.ceil(len(items) / self._page_size))
        start = (number - 1) * self._page_size
        pages: dict[str, Any] = {"current": number, "total": total}
        if number < total:
            token = self._give_link(key, number + 1, now)
            list_path = _list_path(request.path)
            pages["next_page"] = f"{request.origin}{list_path}/pages/{token}"
        return key, 200, {key: items[start : start + self._page_size], "pages": pages}

    def _give_link(self, key: str, number: int, now: float) -> str:
        """A new token for page `number` of list `key`, after forgetting the expired ones."""
        links = self._page_links
        # Expired links are at the front: dropping them there stops at the first live one, so
        # each link is dropped once, however long the fake lives.
        while links and next(iter(links.values())).expires <= now:
            links.popitem(last=False)
        while len(links) >= _MAX_PAGE_LINKS:
            links.popitem(last=False)
        token = secrets.token_hex(8)
        links[token] = _PageLink(key, number, now + self._page_link_ttl)
        return token

    def _list_members(self, request: FakeRequest) -> Answer:
        items = [
            {
                "sub": sub,
                "email": email,
                "roles": ["member"],
                "scheduler": {"enabled": True, "public_url": f"{self._select_url_base}/pls/{sub}"},
            }
            for sub, email in self._member_list
        ]
        return self._page(request, "organizational_unit_members", items)

    def _list_resources(self, request: FakeRequest) -> Answer:
        items = [
            {
                "sub": sub,
                "email": f"{sub}@resources.{MEMBER_DOMAIN}",
                "name": name,
                "scheduler": {"enabled": True},
            }
            for sub, name in self._resource_list
        ]
        return self._page(request, "organizational_unit_resources", items)

    # -- selection rules -------------------------------------------------------------------------

    def _resolve(self, email: str) -> dict[str, str] | None:
        """The member with `email`: any address is one when the fake knows no members."""
        for sub, known in self._member_list:
            if known.lower() == email.lower():
                return {"sub": sub, "email": known, "display_name": known.partition("@")[0]}
        if self._members is None:
            digest = hashlib.blake2b(email.lower().encode(), digest_size=6).hexdigest()
            return {"sub": f"acc_{digest}", "email": email, "display_name": email.partition("@")[0]}
        return None

    def _rule_answer(self, rule: FakeSelectionRule) -> dict[str, Any]:
        members = [self._resolve(email) or {"email": email} for email in rule.emails]
        return {"sub": rule.sub, "name": rule.name, "required": rule.required, "members": members}

    def _find_rule(self, request: FakeRequest) -> FakeSelectionRule | None:
        match = _RULE_PATH.fullmatch(request.path)
        sub = urllib.parse.unquote(match.group(1)) if match else ""
        return (self.selection_rules or {}).get(sub)

    def _show_rule(self, request: FakeRequest) -> Answer:
        rule = self._find_rule(request)
        if rule is None:
            return _not_found()
        return "selection_rule", 200, {"selection_rule": self._rule_answer(rule)}

    def _patch_rule(self, request: FakeRequest) -> Answer:
        rule = self._find_rule(request)
        if rule is None:
            return _not_found()
        data = _json(request.body)
        errors = _validate_patch(data)
        if errors or not isinstance(data, dict):
            return _unprocessable(errors)
        if "name" in data:
            rule.name = data["name"]
        if "required" in data:
            rule.required = data["required"]
        changes = data.get("members", {})
        added, removed, not_resolved = [], [], []
        present = {e.lower() for e in rule.emails}
        for item in changes.get("add", []):
            member = self._resolve(item["email"])
            if member is None:
                not_resolved.append({"email": item["email"]})
            elif member["email"].lower() not in present:
                rule.emails.append(member["email"])
                present.add(member["email"].lower())
                added.append(member)
        for item in changes.get("remove", []):
            email = item["email"].lower()
            if email in present:
                kept = [e for e in rule.emails if e.lower() != email]
                gone = next(e for e in rule.emails if e.lower() == email)
                rule.emails[:] = kept
                present.discard(email)
                removed.append(self._resolve(gone) or {"email": gone})
        diff = {"members": {"added": added, "removed": removed, "not_resolved": not_resolved}}
        answer = {"selection_rule": self._rule_answer(rule), "diff_applied": diff}
        return "selection_rule:updated", 200, answer


def validate_recipients(recipients: Any) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The errors of ``recipients`` (exactly one, with a valid email), and that one recipient."""
    if recipients is None:
        return _error("recipients", "errors.required", "required"), None
    if not isinstance(recipients, list) or len(recipients) != 1:
        return _error("recipients", "errors.invalid", "exactly one recipient is supported"), None
    recipient = recipients[0] if isinstance(recipients[0], dict) else {}
    email = recipient.get("email")
    if not email:
        return _error("recipients.email", "errors.required", "required"), recipient
    if not isinstance(email, str) or not _EMAIL.fullmatch(email):
        return _error("recipients.email", "errors.invalid", "invalid email address"), recipient
    return {}, recipient


def _validate_event(event: Any) -> dict[str, Any]:
    if not isinstance(event, dict):
        return _error("event", "errors.required", "required")
    summary = event.get("summary")
    if not summary or not isinstance(summary, str):
        return _error("event.summary", "errors.required", "required")
    if len(summary) > MAX_SUMMARY_LENGTH:
        return _error(
            "event.summary", "errors.too_long", f"must be {MAX_SUMMARY_LENGTH} characters or fewer"
        )
    duration = event.get("duration")
    if duration is not None:
        minutes = duration.get("minutes") if isinstance(duration, dict) else None
        if not isinstance(minutes, int) or isinstance(minutes, bool) or minutes < 1:
            return _error("event.duration.minutes", "errors.invalid", "a whole number >= 1")
    return {}


def _validate_patch(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        return _error("body", "errors.invalid", "must be a JSON object")
    if "name" in data and (not isinstance(data["name"], str) or not data["name"].strip()):
        return _error("name", "errors.invalid", "must be a non-blank string")
    required = data.get("required")
    if (
        "required" in data
        and required != "all"
        and (not isinstance(required, int) or isinstance(required, bool) or required < 1)
    ):
        return _error("required", "errors.invalid", "a whole number or 'all'")
    members = data.get("members", {})
    if not isinstance(members, dict):
        return _error("members", "errors.invalid", "must be an object")
    for key in ("add", "remove"):
        items = members.get(key, [])
        if not isinstance(items, list) or not all(
            isinstance(i, dict) and isinstance(i.get("email"), str) for i in items
        ):
            return _error(f"members.{key}", "errors.invalid", 'a list of {"email": ...}')
    return {}


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None
