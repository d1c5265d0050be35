"""Scheduling-request builders and the new event fields: wire format, and every refusal."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cronofy_async import (
    MAX_QUERY_IDS,
    Event,
    GroupRule,
    Host,
    HostGroup,
    NewSchedulerRequest,
    NewSchedulingRequest,
    PayloadError,
    Recipient,
    SelectionRule,
    SelectionRuleMember,
)
from cronofy_async._request import encode_create_body as encode_scheduler
from cronofy_async._scheduling_requests import (
    cancel_operation,
    check_ids,
    create_operation,
    encode_create_body,
    query_operation,
)

# Cronofy's example body for POST /v1/scheduling_requests, verbatim (REFERENCE.md).
EXAMPLE_BODY = """{
  "host": {"sub": "acc_5ba21743f408617d1269ea1e"},
  "recipients": [
    {"email": "marty@evenitron.com", "display_name": "Marty McFly", "slot_selector": true}
  ],
  "collaborator_groups": [
    {"name": "Technical Assistant Pool", "members": [{"sub": "acc_1"}], "required": 1}
  ],
  "event": {
    "summary": "Driving lessons - Marty & Doc",
    "description": "Don't forget your video camera",
    "location": {"description": "Hill Valley"}
  }
}"""


def example_request() -> NewSchedulingRequest:
    return NewSchedulingRequest(
        host=Host(sub="acc_5ba21743f408617d1269ea1e"),
        recipients=[
            Recipient(email="marty@evenitron.com", display_name="Marty McFly", slot_selector=True)
        ],
        collaborator_groups=[
            HostGroup(name="Technical Assistant Pool", members=[Host(sub="acc_1")], required=1)
        ],
        event=Event(
            summary="Driving lessons - Marty & Doc",
            description="Don't forget your video camera",
            location="Hill Valley",
        ),
    )


def body_of(request: NewSchedulingRequest, *, impersonating: bool = False) -> Any:
    return json.loads(encode_create_body(request, impersonating=impersonating))


def simple(**options: Any) -> NewSchedulingRequest:
    options.setdefault("recipients", [Recipient(email="marty@evenitron.com")])
    options.setdefault("event", Event(summary="Lessons"))
    return NewSchedulingRequest(**options)


def test_the_documented_example_comes_out_byte_for_byte() -> None:
    encoded = encode_create_body(example_request(), impersonating=False)
    assert encoded == json.dumps(json.loads(EXAMPLE_BODY), separators=(",", ":")).encode()


def test_an_inline_host_group() -> None:
    group = HostGroup(
        name="Support team", members=[Host(sub="acc_1"), Host(sub="acc_2")], required="all"
    )
    assert body_of(simple(host_group=group))["host_group"] == {
        "name": "Support team",
        "members": [{"sub": "acc_1"}, {"sub": "acc_2"}],
        "required": "all",
    }
    unset = HostGroup(name="Support team", members=[Host(sub="acc_1")])
    assert "required" not in body_of(simple(host_group=unset))["host_group"]


def test_a_selection_rule_as_host_group_sends_only_its_sub() -> None:
    rule = SelectionRule(
        sub="sel_1", name="ignored", required=2, members=[SelectionRuleMember(sub="acc_1")]
    )
    body = body_of(simple(host_group=rule))
    assert body == {
        "host_group": {"sub": "sel_1"},
        "recipients": [{"email": "marty@evenitron.com"}],
        "event": {"summary": "Lessons"},
    }


def test_an_impersonated_call_needs_no_host() -> None:
    assert "host" not in body_of(simple(), impersonating=True)
    with pytest.raises(PayloadError) as info:
        encode_create_body(simple(), impersonating=False)
    assert info.value.field == "host"
    assert "impersonate" in str(info.value)


def test_host_and_host_group_are_exclusive() -> None:
    with pytest.raises(PayloadError, match="either host or host_group") as info:
        simple(host=Host(sub="acc_1"), host_group=SelectionRule(sub="sel_1"))
    assert info.value.field == "host"


def test_top_level_extra_is_merged_and_cannot_shadow() -> None:
    body = body_of(simple(host=Host(sub="acc_1"), extra={"tags": [{"value": "vip"}]}))
    assert body["tags"] == [{"value": "vip"}]
    for key in ("host", "host_group", "recipients", "collaborator_groups", "event"):
        with pytest.raises(PayloadError, match="modelled field") as info:
            simple(host=Host(sub="acc_1"), extra={key: 1})
        assert info.value.field == f"extra.{key}"


def test_an_extra_value_that_is_not_strict_json_is_refused_when_built() -> None:
    with pytest.raises(PayloadError, match="NaN or Infinity") as info:
        simple(host=Host(sub="acc_1"), extra={"score": float("nan")})
    assert info.value.field == "extra"


@pytest.mark.parametrize(
    ("options", "field", "fragment"),
    [
        ({"host": "acc_1"}, "host", "must be a Host"),
        ({"host_group": {"sub": "sel_1"}}, "host_group", "HostGroup or a SelectionRule"),
        ({"event": "Lessons"}, "event", "must be an Event"),
        ({"recipients": []}, "recipients", "exactly one"),
        ({"recipients": "a@example.com"}, "recipients", "list of Recipient"),
        ({"collaborator_groups": "team"}, "collaborator_groups", "list of HostGroup"),
        (
            {"collaborator_groups": [SelectionRule(sub="sel_1")]},
            "collaborator_groups[0]",
            "a HostGroup",
        ),
    ],
)
def test_bad_requests(options: dict[str, Any], field: str, fragment: str) -> None:
    with pytest.raises(PayloadError, match=fragment) as info:
        simple(**options)
    assert info.value.field == field


@pytest.mark.parametrize(
    ("options", "field", "fragment"),
    [
        ({"name": " "}, "host_group.name", "non-blank"),
        ({"name": None}, "host_group.name", "non-blank"),
        ({"members": []}, "host_group.members", "at least one"),
        ({"members": Host(sub="acc_1")}, "host_group.members", "list of Host"),
        ({"members": ["acc_1"]}, "host_group.members[0]", "must be a Host"),
        ({"members": [Host(sub="acc_1"), Host(sub="acc_1")]}, "host_group.members[1].sub", "twice"),
        ({"required": 0}, "host_group.required", ">= 1 or 'all'"),
        ({"required": True}, "host_group.required", ">= 1 or 'all'"),
        ({"required": "some"}, "host_group.required", ">= 1 or 'all'"),
        ({"required": 3}, "host_group.required", "has 2 member"),
    ],
)
def test_bad_host_groups(options: dict[str, Any], field: str, fragment: str) -> None:
    options = {"name": "Team", "members": [Host(sub="acc_1"), Host(sub="acc_2")], **options}
    with pytest.raises(PayloadError, match=fragment) as info:
        HostGroup(**options)
    assert info.value.field == field


def test_a_selection_rule_needs_a_sub() -> None:
    with pytest.raises(PayloadError) as info:
        SelectionRule(sub="")
    assert info.value.field == "host_group.sub"
    with pytest.raises(PayloadError) as info:
        SelectionRule(sub="sel_1", members=["acc_1"])  # type: ignore[list-item]
    assert info.value.field == "members[0]"


# -- the new event and recipient fields, for both families -----------------------------------


def test_event_fields_go_where_cronofy_documents_them_in_both_families() -> None:
    event = Event(
        summary="Intro",
        description="Say hello",
        location="Hill Valley",
        duration_minutes=45,
        locale="en-GB",
    )
    expected = {
        "summary": "Intro",
        "description": "Say hello",
        "location": {"description": "Hill Valley"},
        "duration": {"minutes": 45},
        "locale": "en-GB",
    }
    scheduling = simple(host=Host(sub="acc_1"), event=event)
    assert body_of(scheduling)["event"] == expected
    scheduler = NewSchedulerRequest(
        host=Host(sub="acc_1"), recipients=[Recipient(email="a@example.com")], event=event
    )
    assert json.loads(encode_scheduler(scheduler, impersonating=False))["event"] == expected


def test_extra_that_carried_these_fields_before_keeps_working() -> None:
    old_style = Event(
        summary="Intro",
        extra={
            "description": "Say hello",
            "location": {"description": "Hill Valley", "lat": "1"},
            "duration": {"minutes": 30},
            "locale": "fr",
        },
    )
    new_style = Event(
        summary="Intro",
        description="Say hello",
        location="Hill Valley",
        duration_minutes=30,
        locale="fr",
    )
    old = body_of(simple(host=Host(sub="acc_1"), event=old_style))["event"]
    assert old == {
        "summary": "Intro",
        "description": "Say hello",
        "location": {"description": "Hill Valley", "lat": "1"},
        "duration": {"minutes": 30},
        "locale": "fr",
    }
    new = body_of(simple(host=Host(sub="acc_1"), event=new_style))["event"]
    assert new == {**old, "location": {"description": "Hill Valley"}}
    # So is slot_selector in a recipient's extra.
    recipient = Recipient(email="a@example.com", extra={"slot_selector": True})
    assert body_of(simple(host=Host(sub="acc_1"), recipients=[recipient]))["recipients"] == [
        {"email": "a@example.com", "slot_selector": True}
    ]


@pytest.mark.parametrize(
    ("field", "key", "value"),
    [
        ("description", "description", "x"),
        ("location", "location", "x"),
        ("duration_minutes", "duration", 30),
        ("locale", "locale", "en"),
    ],
)
def test_a_field_given_both_ways_is_refused(field: str, key: str, value: object) -> None:
    with pytest.raises(PayloadError, match="both") as info:
        Event(summary="x", extra={key: value}, **{field: value})  # type: ignore[arg-type]
    assert info.value.field == f"event.{key}"


def test_slot_selector_given_both_ways_is_refused() -> None:
    with pytest.raises(PayloadError, match="both") as info:
        Recipient(email="a@example.com", slot_selector=True, extra={"slot_selector": False})
    assert info.value.field == "recipients.slot_selector"


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"description": ""}, "event.description"),
        ({"description": 1}, "event.description"),
        ({"location": "  "}, "event.location.description"),
        ({"location": "\ud800"}, "event.location.description"),
        ({"locale": ""}, "event.locale"),
        ({"duration_minutes": 0}, "event.duration.minutes"),
        ({"duration_minutes": 1.5}, "event.duration.minutes"),
        ({"duration_minutes": True}, "event.duration.minutes"),
    ],
)
def test_bad_event_fields(options: dict[str, Any], field: str) -> None:
    with pytest.raises(PayloadError) as info:
        Event(summary="x", **options)
    assert info.value.field == field


def test_slot_selector_must_be_a_bool() -> None:
    with pytest.raises(PayloadError) as info:
        Recipient(email="a@example.com", slot_selector=1)  # type: ignore[arg-type]
    assert info.value.field == "recipients.slot_selector"
    assert Recipient(email="a@example.com", slot_selector=False).slot_selector is False


def test_slot_selector_is_sent_by_the_older_family_too_when_given() -> None:
    request = NewSchedulerRequest(
        scheduler_group_rule=GroupRule(id="sgr_1"),
        recipients=[Recipient(email="a@example.com", slot_selector=True)],
        event=Event(summary="x"),
    )
    body = json.loads(encode_scheduler(request, impersonating=False))
    assert body["recipients"] == [{"email": "a@example.com", "slot_selector": True}]


# -- query and cancel ------------------------------------------------------------------------


def test_query_ids_are_deduplicated_in_order() -> None:
    assert check_ids(["srq_2", "srq_1", "srq_2"]) == ["srq_2", "srq_1"]
    assert check_ids(iter(["srq_1"])) == ["srq_1"]
    operation = query_operation(("srq_1", "srq_2"))
    assert json.loads(operation.body or b"") == {"scheduling_request_ids": ["srq_1", "srq_2"]}
    assert (operation.method, operation.path) == ("POST", "/v1/scheduling_requests/query")
    assert (operation.idempotent, operation.mutates) == (True, False)


@pytest.mark.parametrize(
    ("ids", "field", "fragment"),
    [
        ([], "scheduling_request_ids", "at least one"),
        ("srq_1", "scheduling_request_ids", "list of ids"),
        (None, "scheduling_request_ids", "list of ids"),
        ([f"srq_{i}" for i in range(MAX_QUERY_IDS + 1)], "scheduling_request_ids", "at most"),
        (["srq_1", ""], "scheduling_request_ids[1]", "empty"),
        (["srq 1"], "scheduling_request_ids[0]", "whitespace"),
        ([7], "scheduling_request_ids[0]", "string"),
    ],
)
def test_bad_query_ids(ids: Any, field: str, fragment: str) -> None:
    with pytest.raises(PayloadError, match=fragment) as info:
        query_operation(ids)
    assert info.value.field == field


def test_the_most_ids_one_query_takes() -> None:
    assert len(check_ids([f"srq_{i}" for i in range(MAX_QUERY_IDS)])) == MAX_QUERY_IDS


def test_cancel_operation() -> None:
    operation = cancel_operation("srq_1")
    assert json.loads(operation.body or b"") == {"scheduling_request_id": "srq_1"}
    assert (operation.method, operation.path) == ("POST", "/v1/scheduling_requests/cancel")
    assert (operation.idempotent, operation.mutates) == (True, True)
    for bad in ("", "srq 1", None):
        with pytest.raises(PayloadError) as info:
            cancel_operation(bad)  # type: ignore[arg-type]
        assert info.value.field == "scheduling_request_id"


def test_create_operation_is_never_retried_blindly() -> None:
    operation = create_operation(example_request(), impersonating=False)
    assert (operation.method, operation.path) == ("POST", "/v1/scheduling_requests")
    assert (operation.idempotent, operation.mutates) == (False, True)
    with pytest.raises(PayloadError, match="NewSchedulingRequest"):
        create_operation("nope", impersonating=False)  # type: ignore[arg-type]
