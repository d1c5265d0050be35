"""Selection rules against respx: the id in the URL checked, the PATCH pinned, the diff read."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import respx

from cronofy_async import (
    APITimeoutError,
    AsyncSchedulerAPI,
    NotFoundError,
    PayloadError,
    ResponseFormatError,
    SelectionRule,
    SelectionRuleMember,
    SelectionRuleUpdate,
    ServerError,
)
from cronofy_async._scheduling_models import ModelError
from cronofy_async._selection_rules import (
    check_path_segment,
    get_operation,
    structure_selection_rule,
    structure_update,
    update_operation,
)

from .conftest import SECRET

RULE_URL = "https://api.cronofy.com/v1/scheduler/selection_rules/sel_1"

# Cronofy's documented rule (REFERENCE.md).
RULE: dict[str, Any] = {
    "sub": "sel_1",
    "name": "Support",
    "required": 1,
    "members": [
        {"display_name": "Doc", "email": "doc@evenitron.com", "sub": "acc_1"},
        {"display_name": "Marty", "email": "marty@evenitron.com", "sub": "acc_2"},
    ],
}


def rule_response(**changes: Any) -> httpx.Response:
    return httpx.Response(200, json={"selection_rule": {**RULE, **changes}})


def update_response(**diff: Any) -> httpx.Response:
    return httpx.Response(200, json={"selection_rule": RULE, "diff_applied": {"members": diff}})


# -- the id in the path ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "sub",
    [
        "sel_1/../../v1/scheduling_requests",
        "sel_1/x",
        "sel_1?x=1",
        "sel_1#x",
        "..",
        ".",
        "sel..1",
        "sel 1",
        "sel_1\n",
        "sel_%2F",
        "sél_1",
        "",
        None,
        7,
    ],
)
async def test_an_unsafe_rule_id_never_reaches_the_wire(
    api: AsyncSchedulerAPI, mock: respx.MockRouter, sub: Any
) -> None:
    with pytest.raises(PayloadError) as info:
        await api.get_selection_rule(sub)
    assert info.value.field == "selection_rule_id"
    with pytest.raises(PayloadError):
        await api.update_selection_rule(sub, name="x")
    assert not mock.calls


def test_a_safe_rule_id_is_used_as_it_is() -> None:
    assert check_path_segment("f", "sel_5ba2-17.43~x") == "sel_5ba2-17.43~x"
    assert get_operation("sel_1").path == "/v1/scheduler/selection_rules/sel_1"


# -- show ------------------------------------------------------------------------------------


async def test_get_sends_the_documented_request(
    api: AsyncSchedulerAPI, mock: respx.MockRouter
) -> None:
    route = mock.get(RULE_URL).mock(return_value=rule_response(novel=True))
    rule = await api.get_selection_rule("sel_1")
    sent = route.calls.last.request
    assert (sent.method, str(sent.url), sent.content) == ("GET", RULE_URL, b"")
    assert sent.headers["authorization"] == f"Bearer {SECRET}"
    assert "content-type" not in sent.headers
    assert rule == SelectionRule(
        sub="sel_1",
        name="Support",
        required=1,
        members=(
            SelectionRuleMember(sub="acc_1", email="doc@evenitron.com", display_name="Doc"),
            SelectionRuleMember(sub="acc_2", email="marty@evenitron.com", display_name="Marty"),
        ),
    )
    assert rule.raw["novel"] is True


def test_required_may_be_all() -> None:
    assert structure_selection_rule({**RULE, "required": "all"}).required == "all"


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ([], "selection_rule"),
        ({"name": "x"}, "selection_rule.sub"),
        ({**RULE, "name": 1}, "selection_rule.name"),
        ({**RULE, "required": 1.5}, "selection_rule.required"),
        ({**RULE, "members": {}}, "selection_rule.members"),
        ({**RULE, "members": [1]}, "selection_rule.members[0]"),
        ({**RULE, "members": [{"email": 1}]}, "selection_rule.members[0].email"),
    ],
)
def test_a_malformed_rule_names_its_field(value: Any, path: str) -> None:
    with pytest.raises(ModelError) as info:
        structure_selection_rule(value)
    assert info.value.path == path


@pytest.mark.parametrize("body", [b"", b"[]", b"{}", b'{"selection_rule": {"sub": 1}}'])
async def test_a_malformed_show_answer_changed_nothing(
    api: AsyncSchedulerAPI, mock: respx.MockRouter, body: bytes
) -> None:
    route = mock.get(RULE_URL).mock(return_value=httpx.Response(200, content=body))
    with pytest.raises(ResponseFormatError) as info:
        await api.get_selection_rule("sel_1")
    assert info.value.outcome_unknown is False
    assert route.call_count == 1


async def test_an_unknown_rule_is_a_404(api: AsyncSchedulerAPI, mock: respx.MockRouter) -> None:
    mock.get(RULE_URL).mock(return_value=httpx.Response(404))
    with pytest.raises(NotFoundError) as info:
        await api.get_selection_rule("sel_1")
    assert info.value.outcome_unknown is False


async def test_a_show_is_retried_after_a_5xx(
    api: AsyncSchedulerAPI, mock: respx.MockRouter
) -> None:
    answers = iter([httpx.Response(503), rule_response()])
    route = mock.get(RULE_URL).mock(side_effect=lambda request: next(answers))
    assert (await api.get_selection_rule("sel_1")).name == "Support"
    assert route.call_count == 2


# -- update ----------------------------------------------------------------------------------


async def test_update_sends_only_what_changes(
    api: AsyncSchedulerAPI, mock: respx.MockRouter
) -> None:
    route = mock.patch(RULE_URL).mock(
        return_value=update_response(
            added=[{"display_name": "Doc", "email": "doc@evenitron.com", "sub": "acc_1"}],
            removed=[{"email": "biff@example.com", "sub": "acc_9"}],
            not_resolved=[{"email": "nobody@example.com"}],
        )
    )
    update = await api.update_selection_rule(
        "sel_1",
        name="Support",
        required="all",
        add=["doc@evenitron.com", "nobody@example.com", "DOC@evenitron.com"],
        remove=("biff@example.com",),
    )
    sent = route.calls.last.request
    assert (sent.method, str(sent.url)) == ("PATCH", RULE_URL)
    assert sent.headers["content-type"] == "application/json; charset=utf-8"
    assert json.loads(sent.content) == {
        "name": "Support",
        "required": "all",
        "members": {
            "add": [{"email": "doc@evenitron.com"}, {"email": "nobody@example.com"}],
            "remove": [{"email": "biff@example.com"}],
        },
    }
    assert update.rule.sub == "sel_1"
    assert update.added == (
        SelectionRuleMember(sub="acc_1", email="doc@evenitron.com", display_name="Doc"),
    )
    assert update.removed == (SelectionRuleMember(sub="acc_9", email="biff@example.com"),)
    assert update.not_resolved == ("nobody@example.com",)


@pytest.mark.parametrize(
    ("options", "body"),
    [
        ({"name": "New name"}, {"name": "New name"}),
        ({"required": 2}, {"required": 2}),
        ({"add": ["a@example.com"]}, {"members": {"add": [{"email": "a@example.com"}]}}),
        ({"remove": ["a@example.com"]}, {"members": {"remove": [{"email": "a@example.com"}]}}),
    ],
)
def test_update_bodies(options: dict[str, Any], body: dict[str, Any]) -> None:
    operation = update_operation("sel_1", **options)
    assert json.loads(operation.body or b"") == body
    assert (operation.idempotent, operation.mutates) == (True, True)


@pytest.mark.parametrize(
    ("options", "field", "fragment"),
    [
        ({}, "selection_rule", "nothing to update"),
        ({"add": (), "remove": []}, "selection_rule", "nothing to update"),
        ({"name": " "}, "name", "non-blank"),
        ({"name": 3}, "name", "non-blank"),
        ({"required": 0}, "required", ">= 1 or 'all'"),
        ({"required": False}, "required", ">= 1 or 'all'"),
        ({"required": "most"}, "required", ">= 1 or 'all'"),
        ({"add": "a@example.com"}, "members.add", "list of email"),
        ({"remove": {"a@example.com": 1}}, "members.remove", "list of email"),
        ({"add": ["a@example.com", "nope"]}, "members.add[1]", "not a valid email"),
        ({"add": [None]}, "members.add[0]", "must be a string"),
        ({"add": ["a@example.com"], "remove": ["A@example.com"]}, "members", "both"),
    ],
)
def test_bad_updates_are_refused_before_sending(
    options: dict[str, Any], field: str, fragment: str
) -> None:
    with pytest.raises(PayloadError, match=fragment) as info:
        update_operation("sel_1", **options)
    assert info.value.field == field


def test_an_update_answer_without_a_diff_is_read_as_no_member_change() -> None:
    update = structure_update({"selection_rule": RULE})
    assert update == SelectionRuleUpdate(rule=structure_selection_rule(RULE))
    shorthand = structure_update(
        {"selection_rule": RULE, "diff_applied": {"members": {"added": ["a@example.com"]}}}
    )
    assert shorthand.added == (SelectionRuleMember(email="a@example.com"),)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"[]",
        b'{"diff_applied": {}}',
        b'{"selection_rule": {"sub": "sel_1"}, "diff_applied": []}',
        b'{"selection_rule": {"sub": "sel_1"}, "diff_applied": {"members": 1}}',
        b'{"selection_rule": {"sub": "sel_1"}, "diff_applied": {"members": {"added": {}}}}',
        b'{"selection_rule": {"sub": "sel_1"}, '
        b'"diff_applied": {"members": {"not_resolved": [{"sub": "acc_1"}]}}}',
    ],
)
async def test_a_malformed_update_answer_says_the_update_happened(
    api: AsyncSchedulerAPI, mock: respx.MockRouter, body: bytes
) -> None:
    route = mock.patch(RULE_URL).mock(return_value=httpx.Response(200, content=body))
    with pytest.raises(ResponseFormatError) as info:
        await api.update_selection_rule("sel_1", name="x")
    assert info.value.outcome_unknown is True
    assert route.call_count == 1


async def test_an_update_is_retried_after_a_5xx(
    api: AsyncSchedulerAPI, mock: respx.MockRouter
) -> None:
    answers = iter([httpx.Response(500), httpx.Response(502), update_response()])
    route = mock.patch(RULE_URL).mock(side_effect=lambda request: next(answers))
    update = await api.update_selection_rule("sel_1", add=["doc@evenitron.com"])
    assert update.rule.name == "Support"
    assert route.call_count == 3
    bodies = {call.request.content for call in route.calls}
    assert len(bodies) == 1  # the same update each time


async def test_an_update_that_keeps_failing_may_have_been_applied(
    api: AsyncSchedulerAPI, mock: respx.MockRouter
) -> None:
    route = mock.patch(RULE_URL).mock(return_value=httpx.Response(503))
    with pytest.raises(ServerError) as info:
        await api.update_selection_rule("sel_1", required=1)
    assert info.value.outcome_unknown is True
    assert info.value.attempts == 3
    assert route.call_count == 3


async def test_an_update_that_timed_out_may_have_been_applied(
    api: AsyncSchedulerAPI, mock: respx.MockRouter
) -> None:
    answers: list[httpx.Response | Exception] = [httpx.ReadTimeout("slow"), httpx.Response(404)]

    def respond(request: httpx.Request) -> httpx.Response:
        outcome = answers.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    mock.patch(RULE_URL).mock(side_effect=respond)
    with pytest.raises(NotFoundError) as info:
        await api.update_selection_rule("sel_1", required=1)
    # The 404 came second: the first attempt may still have been applied.
    assert info.value.outcome_unknown is True
    assert info.value.attempts == 2


async def test_an_update_that_timed_out_unretried_may_have_been_applied(
    mock: respx.MockRouter,
) -> None:
    mock.patch(RULE_URL).mock(side_effect=httpx.ReadTimeout("slow"))
    async with AsyncSchedulerAPI(SECRET, retry=None, rate_limit=None) as api:
        with pytest.raises(APITimeoutError) as info:
            await api.update_selection_rule("sel_1", required=1)
    assert info.value.outcome_unknown is True
    assert info.value.attempts == 1
