"""
The scheduling-requests family (BETA), the successor of scheduler requests.

``POST /v1/scheduling_requests`` (create), ``.../query`` and ``.../cancel``: the builders (what
a create sends), the operations (pure functions) and the calls. The model Cronofy answers with,
`SchedulingRequest`, lives in `_scheduling_models`, shared with push notifications.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Callable, Iterable, Mapping, Sequence
from typing import Any, Final, Literal

import attrs

from ._batch import DEFAULT_CONCURRENCY, BatchReport, BatchStream, KeyOf, collect, keyed_send
from ._converter import unstructure_event, unstructure_recipient
from ._errors import PayloadError
from ._operation import Calls, Operation, json_body, no_body, read_json
from ._payload import Event, Host, Recipient, _check_id, _freeze_extra, _to_recipients
from ._scheduling_models import SchedulingRequest, structure_scheduling_request
from ._selection_rules import SelectionRule

__all__ = [
    "CANCEL_PATH",
    "CREATE_PATH",
    "MAX_QUERY_IDS",
    "QUERY_PATH",
    "HostGroup",
    "NewSchedulingRequest",
    "SchedulingRequests",
    "cancel_operation",
    "create_operation",
    "encode_create_body",
    "query_operation",
]

CREATE_PATH: Final = "/v1/scheduling_requests"
QUERY_PATH: Final = "/v1/scheduling_requests/query"
CANCEL_PATH: Final = "/v1/scheduling_requests/cancel"

MAX_QUERY_IDS: Final = 50
"""
The most ids one query may ask about.

Cronofy documents no limit; this one keeps a request body small and an answer quick. Ask in
chunks for more (the command line does).
"""


# -- builders --------------------------------------------------------------------------------


def _validate_group_name(_inst: object, _attr: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not value.strip():
        raise PayloadError("host_group.name", f"must be a non-blank string, got {value!r}")


def _to_hosts(value: Iterable[Host]) -> tuple[Host, ...]:
    if isinstance(value, Host | str | bytes | Mapping) or not isinstance(value, Iterable):
        raise PayloadError("host_group.members", f"must be a list of Host, got {value!r}")
    hosts = tuple(value)
    subs: set[str] = set()
    for index, host in enumerate(hosts):
        if not isinstance(host, Host):
            raise PayloadError(
                f"host_group.members[{index}]", f"must be a Host, got {type(host).__name__}"
            )
        if host.sub in subs:
            raise PayloadError(f"host_group.members[{index}].sub", f"{host.sub} is listed twice")
        subs.add(host.sub)
    if not hosts:
        raise PayloadError("host_group.members", "must name at least one Host")
    return hosts


def _validate_required(_inst: object, _attr: attrs.Attribute[Any], value: object) -> None:
    if value is None or (isinstance(value, str) and value == "all"):
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise PayloadError(
            "host_group.required", f"must be a whole number >= 1 or 'all', got {value!r}"
        )


@attrs.frozen(kw_only=True)
class HostGroup:
    """
    A group of hosts, inline: `required` of its `members` attend the meeting.

    The host group of a scheduling request, or one of its collaborator groups.

    >>> group = HostGroup(
    ...     name="Support team",
    ...     members=[Host(sub="acc_1"), Host(sub="acc_2")],
    ...     required=1,
    ... )
    >>> group.required
    1
    """

    name: str = attrs.field(validator=_validate_group_name)
    """The group's name."""
    members: tuple[Host, ...] = attrs.field(converter=_to_hosts)
    """The accounts in the group, each once."""
    required: int | Literal["all"] | None = attrs.field(default=None, validator=_validate_required)
    """How many members must attend: a whole number up to ``len(members)``, or ``"all"``."""

    def __attrs_post_init__(self) -> None:
        if isinstance(self.required, int) and self.required > len(self.members):
            raise PayloadError(
                "host_group.required",
                f"is {self.required} but the group has {len(self.members)} member(s)",
            )


def _check_host_group(_inst: object, _attr: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not isinstance(value, HostGroup | SelectionRule):
        raise PayloadError(
            "host_group", f"must be a HostGroup or a SelectionRule, got {type(value).__name__}"
        )


def _check_host(_inst: object, _attr: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not isinstance(value, Host):
        raise PayloadError("host", f"must be a Host, got {type(value).__name__}")


def _check_event(_inst: object, _attr: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, Event):
        raise PayloadError("event", f"must be an Event, got {type(value).__name__}")


def _to_groups(value: Iterable[HostGroup]) -> tuple[HostGroup, ...]:
    if isinstance(value, HostGroup | str | bytes | Mapping) or not isinstance(value, Iterable):
        raise PayloadError(
            "collaborator_groups", f"must be a list of HostGroup, got {type(value).__name__}"
        )
    groups = tuple(value)
    for index, group in enumerate(groups):
        if not isinstance(group, HostGroup):
            raise PayloadError(
                f"collaborator_groups[{index}]", f"must be a HostGroup, got {type(group).__name__}"
            )
    return groups


_RESERVED: Final = frozenset({"host", "host_group", "recipients", "collaborator_groups", "event"})


def _request_extra(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return _freeze_extra(value, "extra", _RESERVED)


@attrs.frozen(kw_only=True)
class NewSchedulingRequest:
    """
    The body of ``POST /v1/scheduling_requests`` (BETA).

    Name the host in exactly one of three ways: `host`; `host_group`, a `HostGroup` inline or
    a `SelectionRule` by its sub; or neither, and send the call impersonated
    (``api.impersonate(sub)``), so the impersonated account hosts.

    >>> request = NewSchedulingRequest(
    ...     host=Host(sub="acc_5ba21743f408617d1269ea1e"),
    ...     recipients=[Recipient(email="marty@evenitron.com", slot_selector=True)],
    ...     event=Event(summary="Driving lessons - Marty & Doc", location="Hill Valley"),
    ... )
    >>> request.recipients[0].slot_selector
    True
    """

    host: Host | None = attrs.field(default=None, validator=_check_host)
    """The hosting account; exclusive with `host_group`."""
    host_group: HostGroup | SelectionRule | None = attrs.field(
        default=None, validator=_check_host_group
    )
    """A group of hosts: a `HostGroup`, or ``SelectionRule(sub="sel_...")``."""
    recipients: tuple[Recipient, ...] = attrs.field(converter=_to_recipients)
    """Who is invited; Cronofy documents exactly one recipient today."""
    collaborator_groups: tuple[HostGroup, ...] = attrs.field(default=(), converter=_to_groups)
    """Groups of colleagues who attend too."""
    event: Event = attrs.field(validator=_check_event)
    """The event to create once a slot is picked."""
    extra: Mapping[str, Any] = attrs.field(
        default=None,
        converter=_request_extra,
        hash=False,
        repr=lambda m: repr(dict(m)),
    )
    """Top-level fields Cronofy documents that this class does not model (``tags``...)."""

    def __attrs_post_init__(self) -> None:
        if self.host is not None and self.host_group is not None:
            raise PayloadError(
                "host", "give either host or host_group, not both: they both pick the host"
            )


def _group_body(group: HostGroup | SelectionRule) -> dict[str, Any]:
    if isinstance(group, SelectionRule):
        return {"sub": group.sub}
    body: dict[str, Any] = {
        "name": group.name,
        "members": [{"sub": host.sub} for host in group.members],
    }
    if group.required is not None:
        body["required"] = group.required
    return body


def scheduling_request_body(request: NewSchedulingRequest) -> dict[str, Any]:
    """The JSON-ready body, in the order of Cronofy's example; `extra` merged last."""
    body: dict[str, Any] = {}
    if request.host is not None:
        body["host"] = {"sub": request.host.sub}
    if request.host_group is not None:
        body["host_group"] = _group_body(request.host_group)
    body["recipients"] = [unstructure_recipient(r) for r in request.recipients]
    if request.collaborator_groups:
        body["collaborator_groups"] = [_group_body(g) for g in request.collaborator_groups]
    body["event"] = unstructure_event(request.event)
    body.update(request.extra)
    return body


def encode_create_body(request: NewSchedulingRequest, *, impersonating: bool) -> bytes:
    """Check the host rule for this call and encode the body as compact UTF-8 JSON."""
    return _encode(create_payload(request, impersonating=impersonating))


def _encode(payload: dict[str, Any]) -> bytes:
    try:
        return json_body(payload)
    except ValueError as exc:  # NaN, infinity or a lone surrogate in an extra= value
        raise PayloadError("extra", f"cannot be sent as strict UTF-8 JSON: {exc}") from None


def create_payload(request: NewSchedulingRequest, *, impersonating: bool) -> dict[str, Any]:
    """Check the host rule for this call; the JSON-ready body."""
    if not isinstance(request, NewSchedulingRequest):
        raise PayloadError(
            "request", f"must be a NewSchedulingRequest, got {type(request).__name__}"
        )
    if request.host is None and request.host_group is None and not impersonating:
        raise PayloadError(
            "host",
            "no host given. Choose one of Cronofy's three ways: host=Host(sub=...), "
            "host_group=HostGroup(...) or SelectionRule(sub=...), or send through "
            "api.impersonate(sub) so the impersonated account hosts",
        )
    return scheduling_request_body(request)


# -- operations ------------------------------------------------------------------------------


_READ_CREATED: Final = read_json("scheduling_request", structure_scheduling_request, mutates=True)


def create_operation(
    request: NewSchedulingRequest, *, impersonating: bool
) -> Operation[SchedulingRequest]:
    """``POST /v1/scheduling_requests``: never repeated blindly, since Cronofy cannot dedupe it."""
    payload = create_payload(request, impersonating=impersonating)
    return Operation(
        name="create_scheduling_request",
        method="POST",
        path=CREATE_PATH,
        body=_encode(payload),
        payload=payload,
        read=_READ_CREATED,
        idempotent=False,
        mutates=True,
    )


def check_ids(ids: Iterable[str]) -> list[str]:
    """The ids of a query, each once and in order; refused if none, too many or malformed."""
    field = "scheduling_request_ids"
    if type(ids) not in (list, tuple) and (
        isinstance(ids, str | bytes | Mapping) or not isinstance(ids, Iterable)
    ):
        raise PayloadError(field, f"must be a list of ids, got {type(ids).__name__}")
    unique: dict[str, None] = {}
    for index, value in enumerate(ids):
        _check_id(f"{field}[{index}]", value)
        unique[value] = None
    if not unique:
        raise PayloadError(field, "must name at least one scheduling request")
    if len(unique) > MAX_QUERY_IDS:
        raise PayloadError(
            field, f"names {len(unique)} requests; ask about at most {MAX_QUERY_IDS} at once"
        )
    return list(unique)


def _structure_answer(asked: Sequence[str]) -> Callable[[Any], list[SchedulingRequest]]:
    wanted = set(asked)

    def structure(value: Any) -> list[SchedulingRequest]:
        if not isinstance(value, list):
            raise TypeError(f"scheduling_requests: expected a list, got {type(value).__name__}")
        found: dict[str, SchedulingRequest] = {}
        for index, item in enumerate(value):
            # Documented as {"scheduling_request": {...}}; a bare object is read as well.
            if (type(item) is dict or isinstance(item, Mapping)) and "scheduling_request" in item:
                item = item["scheduling_request"]
                path = f"scheduling_requests[{index}].scheduling_request"
            else:
                path = f"scheduling_requests[{index}]"
            is_mapping = type(item) is dict or isinstance(item, Mapping)
            request_id = item.get("scheduling_request_id") if is_mapping else None
            if isinstance(request_id, str) and (request_id not in wanted or request_id in found):
                # An answer about an id nobody asked for (or a second one) is not passed on,
                # nor read: whatever it holds is no reason to fail the query.
                continue
            request = structure_scheduling_request(item, path)
            found[request.scheduling_request_id] = request
        return [found[i] for i in asked if i in found]

    return structure


def query_operation(ids: Iterable[str]) -> Operation[list[SchedulingRequest]]:
    """``POST /v1/scheduling_requests/query``: changes nothing, safe to retry."""
    asked = check_ids(ids)
    return Operation(
        name="query_scheduling_requests",
        method="POST",
        path=QUERY_PATH,
        body=json_body({"scheduling_request_ids": asked}),
        read=read_json("scheduling_requests", _structure_answer(asked), mutates=False),
        idempotent=True,
        mutates=False,
    )


def cancel_operation(scheduling_request_id: str) -> Operation[None]:
    """``POST /v1/scheduling_requests/cancel``: cancelling twice cancels once, so retried."""
    _check_id("scheduling_request_id", scheduling_request_id)
    return Operation(
        name="cancel_scheduling_request",
        method="POST",
        path=CANCEL_PATH,
        body=json_body({"scheduling_request_id": scheduling_request_id}),
        read=no_body,
        idempotent=True,
        mutates=True,
    )


# -- calls -----------------------------------------------------------------------------------


class SchedulingRequests(Calls):
    """`AsyncSchedulerAPI`'s scheduling-request calls (BETA)."""

    __slots__ = ()

    async def create_scheduling_request(
        self,
        request: NewSchedulingRequest,
        *,
        idempotency_key: str | None = None,
        resend_unknown: bool = False,
    ) -> SchedulingRequest:
        """
        Create a scheduling request (``POST /v1/scheduling_requests``, BETA).

        Returns the created `SchedulingRequest`; send its `select_url` to the recipient.
        Refused with `PayloadError` before sending if `request` breaks a documented rule.
        A create is retried only after failures that prove it was not processed, as for
        scheduler requests: check ``outcome_unknown`` of an error before sending it again.
        `idempotency_key` and `resend_unknown` work as for `create_scheduler_request`: at most
        one send per key in the API object's `ledger`::

            created = await api.create_scheduling_request(
                NewSchedulingRequest(
                    host=Host(sub="acc_5ba21743f408617d1269ea1e"),
                    recipients=[Recipient(email="marty@evenitron.com", slot_selector=True)],
                    event=Event(summary="Driving lessons - Marty & Doc", duration_minutes=30),
                ),
                idempotency_key="order-42",
            )
            print(created.scheduling_request_id, created.select_url)
        """
        return await self._create_scheduling(
            request, idempotency_key=idempotency_key, resend_unknown=resend_unknown
        )

    async def _create_scheduling(
        self,
        request: NewSchedulingRequest,
        on_send: Callable[[], None] | None = None,
        *,
        idempotency_key: str | None = None,
        resend_unknown: bool = False,
    ) -> SchedulingRequest:
        self._check_open()
        operation = create_operation(request, impersonating=self._impersonate is not None)
        if idempotency_key is None:
            return await self._call(operation, on_send)
        return await self._send_once(
            operation,
            on_send,
            key=idempotency_key,
            resend_unknown=resend_unknown,
            request_id=_request_id,
        )

    async def query_scheduling_requests(self, ids: Iterable[str]) -> list[SchedulingRequest]:
        """
        What became of scheduling requests (``POST /v1/scheduling_requests/query``).

        Returns one `SchedulingRequest` per id Cronofy answers for, in the order of `ids`
        (each once); an id it does not answer for is left out, so compare
        ``scheduling_request_id`` to notice one. Between 1 and `MAX_QUERY_IDS` distinct ids,
        else `PayloadError`. A query changes nothing: 5xx and lost answers are retried by
        default, and ``outcome_unknown`` is always ``False``::

            [request] = await api.query_scheduling_requests([created.scheduling_request_id])
            if request.slot_selection == "complete":
                print("a time was chosen")
        """
        self._check_open()
        return await self._call(query_operation(ids))

    async def cancel_scheduling_request(self, scheduling_request_id: str) -> None:
        """
        Cancel a scheduling request (``POST /v1/scheduling_requests/cancel``, ``202``).

        Cancelling twice is not an error, so 5xx and lost answers are retried by default. An
        error that remains says ``outcome_unknown=True`` when the cancel may have happened
        (sending it again is safe); an id Cronofy does not know raises whatever it answers,
        `NotFoundError` for a 404::

            await api.cancel_scheduling_request("srq_5987234923847923")
        """
        self._check_open()
        await self._call(cancel_operation(scheduling_request_id))

    def iter_create_scheduling_requests(
        self,
        requests: Iterable[NewSchedulingRequest] | AsyncIterable[NewSchedulingRequest],
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        key: KeyOf[NewSchedulingRequest] | None = None,
        resend_unknown: bool = False,
    ) -> BatchStream[NewSchedulingRequest, SchedulingRequest]:
        """
        Create many scheduling requests concurrently; yield each `BatchResult` as it completes.

        The same batch as `iter_create_scheduler_requests` (lazy input, every item accounted
        for, a 401/402/403 stops it, each item sent once, `key` and `resend_unknown` for
        idempotency keys), with `BatchResult.created` holding the `SchedulingRequest`::

            async with api.iter_create_scheduling_requests(requests) as results:
                async for result in results:
                    print(result.index, result.outcome, result.created)
        """
        self._check_open()
        send = keyed_send(self._create_scheduling, key, resend_unknown)
        return BatchStream(
            None,
            requests,
            concurrency=concurrency,
            send=send,
            trace=self._batch_trace(
                "batch_create_scheduling_requests", "create_scheduling_request"
            ),
        )

    async def batch_create_scheduling_requests(
        self,
        requests: Iterable[NewSchedulingRequest] | AsyncIterable[NewSchedulingRequest],
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        key: KeyOf[NewSchedulingRequest] | None = None,
        resend_unknown: bool = False,
    ) -> BatchReport[NewSchedulingRequest, SchedulingRequest]:
        """
        Create many scheduling requests concurrently and report on every one, in input order.

        `iter_create_scheduling_requests`, collected into a `BatchReport`::

            report = await api.batch_create_scheduling_requests(requests, concurrency=20)
            print(report.counts)
        """
        return await collect(
            self.iter_create_scheduling_requests(
                requests, concurrency=concurrency, key=key, resend_unknown=resend_unknown
            )
        )


def _request_id(created: SchedulingRequest) -> str:
    return created.scheduling_request_id
