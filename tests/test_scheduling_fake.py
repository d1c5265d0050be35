"""
FakeCronofy serves every operation with state, in process and over loopback TCP.

Scheduling requests (its 422s, select_slot, cancel and its ledger), members and resources
paged, selection rules shown and patched; faults, auth and the rate limit on every operation.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from typing import Any, Literal

import httpx
import pytest

from cronofy_async import (
    APIConnectionError,
    APIError,
    AsyncSchedulerAPI,
    AuthenticationError,
    ConfigurationError,
    Event,
    Host,
    HostGroup,
    NewSchedulingRequest,
    NotFoundError,
    PaginationError,
    RateLimit,
    RateLimitError,
    Recipient,
    SelectionRule,
    ServerError,
    ValidationError,
)
from cronofy_async.testing import DEFAULT_SECRET, FakeCronofy, Fault

from .helpers import FakeClock, reachable_text, use_clock

AUTH = {"Authorization": f"Bearer {DEFAULT_SECRET}"}
MEMBERS = {
    "acc_1": "doc@evenitron.com",
    "acc_2": "marty@evenitron.com",
    "acc_3": "biff@example.com",
}


@pytest.fixture
def fake() -> FakeCronofy:
    return FakeCronofy(
        members=MEMBERS,
        resources={"res_1": "Room 1", "res_2": "Room 2"},
        selection_rules={"sel_1": ("Support", 1, ["doc@evenitron.com"])},
        page_size=2,
        rate_limit=None,
    )


def api_for(fake: FakeCronofy, **options: Any) -> AsyncSchedulerAPI:
    api = fake.api(**options)
    use_clock(api, FakeClock())
    return api


def invite(**options: Any) -> NewSchedulingRequest:
    options.setdefault("recipients", [Recipient(email="marty@evenitron.com", slot_selector=True)])
    options.setdefault("event", Event(summary="Lessons", duration_minutes=30))
    return NewSchedulingRequest(**options)


async def post(fake: FakeCronofy, path: str, body: Any) -> httpx.Response:
    async with fake.client() as client:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return await client.post(path, content=content, headers=AUTH)


# -- the whole journey, in process and over TCP on both backends ------------------------------


async def journey(api: AsyncSchedulerAPI, fake: FakeCronofy) -> None:
    members = [m async for m in api.iter_organizational_unit_members()]
    assert [(m.sub, m.email) for m in members] == list(MEMBERS.items())
    resources = [r async for r in api.iter_organizational_unit_resources()]
    assert [r.name for r in resources] == ["Room 1", "Room 2"]
    rule = await api.get_selection_rule("sel_1")
    assert [m.sub for m in rule.members] == ["acc_1"]
    update = await api.update_selection_rule("sel_1", add=["marty@evenitron.com"])
    assert [m.sub for m in update.added] == ["acc_2"]

    created = await api.create_scheduling_request(
        invite(host_group=HostGroup(name="Pair", members=[Host(sub="acc_1"), Host(sub="acc_2")]))
    )
    by_rule = await api.create_scheduling_request(invite(host_group=SelectionRule(sub="sel_1")))
    assert created.slot_selection == "pending"
    assert created.duration_minutes == 30
    assert created.select_url is not None
    assert created.select_url.startswith("https://")

    fake.select_slot(created.scheduling_request_id)
    found = await api.query_scheduling_requests(
        [created.scheduling_request_id, by_rule.scheduling_request_id]
    )
    assert [r.slot_selection for r in found] == ["complete", "pending"]
    assert found[0].recipient_operations is not None

    report = await api.batch_create_scheduling_requests(
        [invite(host=Host(sub="acc_3")), invite(host=Host(sub="acc_stranger"))]
    )
    assert [str(r.outcome) for r in report.results] == ["created", "failed"]

    await api.cancel_scheduling_request(created.scheduling_request_id)
    await api.cancel_scheduling_request(created.scheduling_request_id)  # safe to re-run
    entry = fake.scheduling_requests[0]
    assert (entry.cancelled, entry.cancel_count) == (True, 2)
    with pytest.raises(NotFoundError):
        await api.cancel_scheduling_request("srq_never_made")


async def test_the_journey_in_process(fake: FakeCronofy) -> None:
    async with api_for(fake) as api:
        await journey(api, fake)


@pytest.mark.parametrize("backend", ["httpx", "aiohttp"])
async def test_the_journey_over_loopback_tcp(
    fake: FakeCronofy, backend: Literal["httpx", "aiohttp"]
) -> None:
    async with fake.serve() as base_url:
        api = AsyncSchedulerAPI(
            fake.secret, base_url=base_url, http_backend=backend, rate_limit=None
        )
        use_clock(api, FakeClock())
        async with api:
            await journey(api, fake)
    # The next_page links the fake sent named the loopback address the client used.
    assert fake.outcomes["organizational_unit_members"] == 2


# -- scheduling requests -----------------------------------------------------------------------


async def test_a_created_request_is_in_the_ledger(fake: FakeCronofy) -> None:
    async with api_for(fake) as api:
        created = await api.impersonate("acc_2").create_scheduling_request(invite())
        by_host = await api.create_scheduling_request(invite(host=Host(sub="acc_1")))
    first, second = fake.scheduling_requests
    assert first.scheduling_request_id == created.scheduling_request_id
    assert (first.host, first.impersonated, first.email) == (
        "acc_2",
        "acc_2",
        "marty@evenitron.com",
    )
    assert (second.host, second.host_sub) == ("acc_1", "acc_1")
    assert second.scheduling_request_id == by_host.scheduling_request_id
    assert first.summary == "Lessons"
    assert first.slot_selection == "pending"
    assert [r.slot_selector for r in created.recipients] == [True]
    assert created.event["duration"] == {"minutes": 30}
    assert fake.created == []  # the older family's ledger is apart


def valid_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "host": {"sub": "acc_1"},
        "recipients": [{"email": "marty@evenitron.com", "slot_selector": True}],
        "event": {"summary": "Lessons"},
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"not json", "body"),
        (valid_body(recipients=None), "recipients"),
        (valid_body(recipients=[]), "recipients"),
        (valid_body(recipients=[{}]), "recipients.email"),
        (valid_body(recipients=[{"email": "nope"}]), "recipients.email"),
        (
            valid_body(recipients=[{"email": "a@example.com", "slot_selector": "yes"}]),
            "recipients.slot_selector",
        ),
        (valid_body(event=None), "event"),
        (valid_body(event={"summary": ""}), "event.summary"),
        (valid_body(event={"summary": "x" * 1025}), "event.summary"),
        (valid_body(event={"summary": "x", "duration": {"minutes": 0}}), "event.duration.minutes"),
        (valid_body(host=None), "host"),
        (valid_body(host={}), "host.sub"),
        (valid_body(host={"sub": "acc_stranger"}), "host.sub"),
        (valid_body(host_group={"sub": "sel_1"}), "host"),
        (valid_body(host=None, host_group={"sub": "sel_unknown"}), "host_group.sub"),
        (valid_body(host=None, host_group=[]), "host_group"),
        (valid_body(host=None, host_group={"members": [{"sub": "acc_1"}]}), "host_group.name"),
        (valid_body(host=None, host_group={"name": "G", "members": []}), "host_group.members"),
        (
            valid_body(host=None, host_group={"name": "G", "members": [{}]}),
            "host_group.members[0].sub",
        ),
        (
            valid_body(host=None, host_group={"name": "G", "members": [{"sub": "acc_x"}]}),
            "host_group.members[0].sub",
        ),
        (
            valid_body(
                host=None, host_group={"name": "G", "members": [{"sub": "acc_1"}], "required": 2}
            ),
            "host_group.required",
        ),
        (valid_body(collaborator_groups={}), "collaborator_groups"),
        (valid_body(collaborator_groups=[{"name": "C"}]), "collaborator_groups[0].members"),
    ],
)
async def test_each_create_rule_is_a_422_in_cronofys_format(
    fake: FakeCronofy, body: Any, field: str
) -> None:
    response = await post(fake, "/v1/scheduling_requests", body)
    assert response.status_code == 422
    assert field in response.json()["errors"]
    assert fake.scheduling_requests == []


async def test_the_fake_accepts_what_the_builders_send(fake: FakeCronofy) -> None:
    body = valid_body(
        host=None,
        host_group={
            "name": "G",
            "members": [{"sub": "acc_1"}, {"sub": "acc_2"}],
            "required": "all",
        },
        collaborator_groups=[{"name": "C", "members": [{"sub": "acc_3"}], "required": 1}],
    )
    response = await post(fake, "/v1/scheduling_requests", body)
    assert response.status_code == 200
    assert fake.scheduling_requests[0].host_group == body["host_group"]


async def test_any_selection_rule_when_none_are_configured() -> None:
    fake = FakeCronofy(rate_limit=None)
    async with api_for(fake) as api:
        await api.create_scheduling_request(invite(host_group=SelectionRule(sub="sel_any")))
        with pytest.raises(NotFoundError):
            await api.get_selection_rule("sel_any")
        assert [m async for m in api.iter_organizational_unit_members()] == []
    assert fake.scheduling_requests[0].host == "sel_any"


async def test_a_422_reads_well_through_the_client(fake: FakeCronofy) -> None:
    async with api_for(fake) as api:
        with pytest.raises(ValidationError) as info:
            await api.create_scheduling_request(invite(host=Host(sub="acc_stranger")))
    assert "host.sub" in info.value.errors
    assert info.value.outcome_unknown is False


async def test_select_slot_completes_a_request_and_calls_the_hooks(fake: FakeCronofy) -> None:
    heard: list[dict[str, Any]] = []
    fake._on_slot_selected.append(heard.append)
    async with api_for(fake) as api:
        created = await api.create_scheduling_request(invite(host=Host(sub="acc_1")))
    entry = fake.select_slot(created.scheduling_request_id)
    assert entry.slot_selection == "complete"
    [answer] = heard
    assert answer["scheduling_request_id"] == created.scheduling_request_id
    assert answer["slot_selection"] == "complete"
    assert set(answer["recipient_operations"]) == {"view_url", "decline_url", "reschedule_url"}


async def test_select_slot_refuses_an_unknown_or_cancelled_request(fake: FakeCronofy) -> None:
    with pytest.raises(ConfigurationError, match="srq_nope"):
        fake.select_slot("srq_nope")
    async with api_for(fake) as api:
        created = await api.create_scheduling_request(invite(host=Host(sub="acc_1")))
        await api.cancel_scheduling_request(created.scheduling_request_id)
    with pytest.raises(ConfigurationError, match="cancelled"):
        fake.select_slot(created.scheduling_request_id)


async def test_a_query_leaves_out_unknown_ids(fake: FakeCronofy) -> None:
    async with api_for(fake) as api:
        created = await api.create_scheduling_request(invite(host=Host(sub="acc_1")))
        found = await api.query_scheduling_requests(["srq_unknown", created.scheduling_request_id])
        assert [r.scheduling_request_id for r in found] == [created.scheduling_request_id]
        assert await api.query_scheduling_requests(["srq_unknown"]) == []
    # A cancelled request keeps answering as before: Cronofy documents no cancelled state.
    async with api_for(fake) as api:
        await api.cancel_scheduling_request(created.scheduling_request_id)
        [again] = await api.query_scheduling_requests([created.scheduling_request_id])
    assert again.slot_selection == "pending"


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/scheduling_requests/query", {}, "scheduling_request_ids"),
        ("/v1/scheduling_requests/query", {"scheduling_request_ids": []}, "scheduling_request_ids"),
        (
            "/v1/scheduling_requests/query",
            {"scheduling_request_ids": [1]},
            "scheduling_request_ids",
        ),
        ("/v1/scheduling_requests/cancel", b"[]", "scheduling_request_id"),
        ("/v1/scheduling_requests/cancel", {"scheduling_request_id": ""}, "scheduling_request_id"),
    ],
)
async def test_bad_query_and_cancel_bodies_are_422(
    fake: FakeCronofy, path: str, body: Any, field: str
) -> None:
    response = await post(fake, path, body)
    assert response.status_code == 422
    assert field in response.json()["errors"]


# -- members, resources, selection rules ------------------------------------------------------


async def test_members_are_paged_with_cronofys_links(fake: FakeCronofy) -> None:
    async with fake.client() as client:
        first = (await client.get("/v1/organizational_unit_members", headers=AUTH)).json()
        pages = first["pages"]
        assert (pages["current"], pages["total"]) == (1, 2)
        # Read Events' documented shape: below the list's own path, an opaque token.
        prefix = "http://fake-cronofy.test/v1/organizational_unit_members/pages/"
        assert pages["next_page"].startswith(prefix)
        token = pages["next_page"].removeprefix(prefix)
        assert re.fullmatch(r"[0-9a-f]{16}", token)
        assert [m["sub"] for m in first["organizational_unit_members"]] == ["acc_1", "acc_2"]
        second = await client.get(pages["next_page"], headers=AUTH)
        assert second.json()["pages"] == {"current": 2, "total": 2}  # the last has no link
        assert [m["sub"] for m in second.json()["organizational_unit_members"]] == ["acc_3"]
        # A link works more than once while it lives (a client retrying a lost answer).
        again = await client.get(pages["next_page"], headers=AUTH)
        assert again.json() == second.json()
        # A fresh listing gets a fresh token.
        other = (await client.get("/v1/organizational_unit_members", headers=AUTH)).json()
        assert other["pages"]["next_page"] != pages["next_page"]


@pytest.mark.parametrize("query", ["?page=2", "?page=9", "?page=zero", "?page=-1"])
async def test_page_numbers_are_ignored_as_by_cronofy(fake: FakeCronofy, query: str) -> None:
    async with fake.client() as client:
        answer = await client.get(f"/v1/organizational_unit_members{query}", headers=AUTH)
    assert answer.status_code == 200
    assert answer.json()["pages"]["current"] == 1
    assert [m["sub"] for m in answer.json()["organizational_unit_members"]] == ["acc_1", "acc_2"]


async def test_a_page_link_expires(fake: FakeCronofy) -> None:
    async with fake.client() as client:
        first = (await client.get("/v1/organizational_unit_members", headers=AUTH)).json()
        assert fake.expire_page_links() == 1
        expired = await client.get(first["pages"]["next_page"], headers=AUTH)
    assert expired.status_code == 404


async def test_a_page_link_lives_page_link_ttl_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr("cronofy_async.testing._fake_scheduling._now", lambda: now[0])
    fake = FakeCronofy(members=MEMBERS, page_size=1, page_link_ttl=30, rate_limit=None)
    async with fake.client() as client:
        first = (await client.get("/v1/organizational_unit_members", headers=AUTH)).json()
        link = first["pages"]["next_page"]
        now[0] += 29.9
        assert (await client.get(link, headers=AUTH)).status_code == 200
        now[0] += 0.1
        assert (await client.get(link, headers=AUTH)).status_code == 404


async def test_expired_page_links_are_forgotten_as_new_ones_are_given_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [1000.0]
    monkeypatch.setattr("cronofy_async.testing._fake_scheduling._now", lambda: now[0])
    fake = FakeCronofy(members=MEMBERS, page_size=1, page_link_ttl=30, rate_limit=None)
    async with fake.client() as client:
        for _ in range(3):
            await client.get("/v1/organizational_unit_members", headers=AUTH)
        now[0] += 30
        await client.get("/v1/organizational_unit_members", headers=AUTH)
    # The three that expired were dropped when the fourth was given out: one link is kept.
    assert fake.expire_page_links() == 1


async def test_the_oldest_page_link_is_dropped_past_the_cap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # However many listings start within the TTL, the fake keeps a bounded number of links.
    monkeypatch.setattr("cronofy_async.testing._fake_scheduling._MAX_PAGE_LINKS", 3, raising=False)
    fake = FakeCronofy(members=MEMBERS, page_size=1, rate_limit=None)
    async with fake.client() as client:
        links = [
            (await client.get("/v1/organizational_unit_members", headers=AUTH)).json()["pages"][
                "next_page"
            ]
            for _ in range(4)
        ]
        answers = [(await client.get(link, headers=AUTH)).status_code for link in links]
    # The first, the oldest, made room for the fourth. Each page 2 gives out a link to page 3,
    # which drops the oldest of the rest: one already followed.
    assert answers == [404, 200, 200, 200]
    assert fake.expire_page_links() == 3


async def test_a_listing_whose_link_expired_is_a_not_found_error(fake: FakeCronofy) -> None:
    async with api_for(fake) as api:
        seen = []

        async def listing() -> None:
            async for member in api.iter_organizational_unit_members():
                seen.append(member.sub)
                fake.expire_page_links()

        with pytest.raises(NotFoundError):
            await listing()
    assert seen == ["acc_1", "acc_2"]


@pytest.mark.parametrize(
    "path",
    [
        "/v1/organizational_unit_members/pages/0123456789abcdef",  # never given out
        "/v1/organizational_unit_members/pages/",
        "/v1/organizational_unit_members/pages/a/b",
    ],
)
async def test_an_unknown_page_link_is_not_found(fake: FakeCronofy, path: str) -> None:
    async with fake.client() as client:
        await client.get("/v1/organizational_unit_members", headers=AUTH)
        answer = await client.get(path, headers=AUTH)
    assert answer.status_code == 404


async def test_a_members_link_does_not_page_resources(fake: FakeCronofy) -> None:
    async with fake.client() as client:
        first = (await client.get("/v1/organizational_unit_members", headers=AUTH)).json()
        token = first["pages"]["next_page"].rpartition("/")[2]
        crossed = await client.get(f"/v1/organizational_unit_resources/pages/{token}", headers=AUTH)
        unauthenticated = await client.get(first["pages"]["next_page"])
    assert crossed.status_code == 404
    assert unauthenticated.status_code == 401


@pytest.mark.parametrize("option", [0, -1, float("nan"), float("inf"), True, "60"])
def test_a_bad_page_link_ttl_is_refused(option: Any) -> None:
    with pytest.raises(ConfigurationError, match="page_link_ttl"):
        FakeCronofy(page_link_ttl=option)


@pytest.mark.parametrize("backend", ["httpx", "aiohttp"])
async def test_250_members_over_3_pages_of_real_links_are_each_listed_once(
    backend: Literal["httpx", "aiohttp"],
) -> None:
    members = {f"acc_{i:03}": f"host{i}@example.com" for i in range(250)}
    resources = {f"res_{i:03}": f"Room {i}" for i in range(250)}
    fake = FakeCronofy(members=members, resources=resources, rate_limit=None)  # 100 a page
    async with fake.serve() as base_url:
        api = AsyncSchedulerAPI(fake.secret, base_url=base_url, http_backend=backend)
        use_clock(api, FakeClock())
        async with api:
            listed = [m async for m in api.iter_organizational_unit_members()]
            rooms = [r async for r in api.iter_organizational_unit_resources()]
    assert [(m.sub, m.email) for m in listed] == list(members.items())
    assert [(r.sub, r.name) for r in rooms] == list(resources.items())
    assert fake.outcomes["organizational_unit_members"] == 3
    assert fake.outcomes["organizational_unit_resources"] == 3


# -- a hostile server's paging, over loopback TCP on both backends -----------------------------

HOSTILE = "https://evil.example/steal/5f0c9a1e"


def _fragment_loop(body: dict[str, Any], calls: list[dict[str, Any]]) -> None:
    # Every link is the first one again, under a new fragment.
    first = calls[0]["pages"].get("next_page")
    if "next_page" in body["pages"] and first is not None:
        body["pages"]["next_page"] = f"{first}#{len(calls)}"


def _hostile_link(body: dict[str, Any], calls: list[dict[str, Any]]) -> None:
    if "next_page" in body["pages"]:
        body["pages"]["next_page"] = f"{HOSTILE}?token={DEFAULT_SECRET}"


def _number_repeats(body: dict[str, Any], calls: list[dict[str, Any]]) -> None:
    body["pages"]["current"] = 1


def _last_page_shifted(body: dict[str, Any], calls: list[dict[str, Any]]) -> None:
    # The list shifted while it was read: its last page holds a member listed on the first.
    if "next_page" not in body["pages"]:
        body["organizational_unit_members"] = calls[0]["organizational_unit_members"]


def _total_without_current(body: dict[str, Any], calls: list[dict[str, Any]]) -> None:
    body["pages"].pop("current")
    body["pages"].pop("next_page", None)


@pytest.mark.parametrize("backend", ["httpx", "aiohttp"])
@pytest.mark.parametrize(
    ("rewrite", "listed", "reason"),
    [
        (_fragment_loop, ["acc_1", "acc_2"], "link_loop"),
        (_hostile_link, ["acc_1"], "refused_link"),
        (_number_repeats, ["acc_1", "acc_2"], "repeated_page"),
        (_last_page_shifted, ["acc_1", "acc_2"], None),
        (_total_without_current, ["acc_1"], "repeated_page"),
    ],
)
async def test_a_hostile_servers_paging_over_loopback(
    monkeypatch: pytest.MonkeyPatch,
    backend: Literal["httpx", "aiohttp"],
    rewrite: Callable[[dict[str, Any], list[dict[str, Any]]], None],
    listed: list[str],
    reason: str | None,
) -> None:
    # The fake's own pages (3 members, 1 a page), rewritten on their way out.
    fake = FakeCronofy(members=MEMBERS, page_size=1, rate_limit=None)
    serve_page = fake._list_members
    calls: list[dict[str, Any]] = []

    def hostile(request: Any) -> Any:
        key, status, body = serve_page(request)
        calls.append(copy.deepcopy(body))
        rewrite(body, calls)
        return key, status, body

    monkeypatch.setattr(fake, "_list_members", hostile)
    seen: list[str] = []

    async def listing(api: AsyncSchedulerAPI) -> None:
        async for member in api.iter_organizational_unit_members():
            seen.append(member.sub)

    async with fake.serve() as base_url:
        api = AsyncSchedulerAPI(
            fake.secret, base_url=base_url, http_backend=backend, rate_limit=None
        )
        use_clock(api, FakeClock())
        async with api:
            if reason is None:
                await listing(api)
            else:
                with pytest.raises(PaginationError) as info:
                    await listing(api)
                error = info.value
                assert (error.reason, error.yielded) == (reason, len(seen))
                text = reachable_text(error)
                for secret in (DEFAULT_SECRET, "evil.example", "5f0c9a1e"):
                    assert secret not in text
                assert (error.__context__, error.__cause__) == (None, None)
    assert seen == listed
    assert len(seen) == len(set(seen))


async def test_page_size_splits_a_listing(fake: FakeCronofy) -> None:
    fake = FakeCronofy(members=[f"acc_{i}" for i in range(7)], page_size=3, rate_limit=None)
    async with api_for(fake) as api:
        listed = [m.sub async for m in api.iter_organizational_unit_members()]
    assert listed == [f"acc_{i}" for i in range(7)]
    assert fake.outcomes["organizational_unit_members"] == 3


async def test_member_emails_are_derived_without_a_mapping() -> None:
    fake = FakeCronofy(members=["acc_1", "acc_2"], resources=["res_1"], rate_limit=None)
    async with api_for(fake) as api:
        members = [m async for m in api.iter_organizational_unit_members()]
        resources = [r async for r in api.iter_organizational_unit_resources()]
    assert [m.email for m in members] == ["acc_1@example.com", "acc_2@example.com"]
    assert all(m.scheduler_enabled for m in members)
    assert [(r.sub, r.name) for r in resources] == [("res_1", "res_1")]


async def test_a_rule_is_patched_with_a_diff(fake: FakeCronofy) -> None:
    async with api_for(fake) as api:
        update = await api.update_selection_rule(
            "sel_1",
            name="Front desk",
            required="all",
            add=["MARTY@evenitron.com", "doc@evenitron.com", "nobody@example.com"],
            remove=["biff@example.com"],
        )
        assert [m.email for m in update.added] == ["marty@evenitron.com"]
        assert update.removed == ()  # biff was not in the rule
        assert update.not_resolved == ("nobody@example.com",)
        assert (update.rule.name, update.rule.required) == ("Front desk", "all")
        again = await api.update_selection_rule("sel_1", remove=["doc@evenitron.com"])
        assert [m.sub for m in again.removed] == ["acc_1"]
        assert [m.sub for m in again.rule.members] == ["acc_2"]
    state = fake.selection_rules
    assert state is not None
    assert state["sel_1"].emails == ["marty@evenitron.com"]


async def test_patching_twice_changes_nothing_more(fake: FakeCronofy) -> None:
    async with api_for(fake) as api:
        first = await api.update_selection_rule("sel_1", add=["marty@evenitron.com"])
        second = await api.update_selection_rule("sel_1", add=["marty@evenitron.com"])
    assert len(first.added) == 1
    assert second.added == ()
    assert second.rule == first.rule


async def test_without_members_any_address_resolves() -> None:
    fake = FakeCronofy(selection_rules={"sel_1": ("R", "all", [])}, rate_limit=None)
    async with api_for(fake) as api:
        update = await api.update_selection_rule("sel_1", add=["anyone@example.com"])
    [added] = update.added
    assert added.sub is not None
    assert added.sub.startswith("acc_")


@pytest.mark.parametrize(
    "body",
    [
        b"[]",
        {"name": ""},
        {"required": 0},
        {"members": []},
        {"members": {"add": "a@example.com"}},
        {"members": {"remove": [{"mail": "a@example.com"}]}},
    ],
)
async def test_bad_patches_are_422(fake: FakeCronofy, body: Any) -> None:
    async with fake.client() as client:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        response = await client.patch(
            "/v1/scheduler/selection_rules/sel_1", content=content, headers=AUTH
        )
    assert response.status_code == 422


async def test_unknown_rules_and_paths_and_methods(fake: FakeCronofy) -> None:
    async with fake.client() as client:
        unknown = await client.patch(
            "/v1/scheduler/selection_rules/sel_9", json={"name": "x"}, headers=AUTH
        )
        assert unknown.status_code == 404
        wrong = await client.delete("/v1/scheduler/selection_rules/sel_1", headers=AUTH)
        assert (wrong.status_code, wrong.headers["allow"]) == (405, "GET, PATCH")
        listing = await client.post("/v1/organizational_unit_members", headers=AUTH)
        assert (listing.status_code, listing.headers["allow"]) == (405, "GET")
        nowhere = await client.get("/v1/scheduling_requests/elsewhere", headers=AUTH)
        assert nowhere.status_code == 404


# -- auth, limits and faults apply to every operation ------------------------------------------


OPERATIONS = ["create", "query", "cancel", "members", "resources", "show", "update"]


async def run(api: AsyncSchedulerAPI, name: str, request_id: str) -> Any:
    if name == "create":
        return await api.create_scheduling_request(invite(host=Host(sub="acc_1")))
    if name == "query":
        return await api.query_scheduling_requests([request_id])
    if name == "cancel":
        return await api.cancel_scheduling_request(request_id)
    if name == "members":
        return [m async for m in api.iter_organizational_unit_members()]
    if name == "resources":
        return [r async for r in api.iter_organizational_unit_resources()]
    if name == "show":
        return await api.get_selection_rule("sel_1")
    return await api.update_selection_rule("sel_1", add=["marty@evenitron.com"])


@pytest.fixture
async def existing(fake: FakeCronofy) -> str:
    async with api_for(fake) as api:
        created = await api.create_scheduling_request(invite(host=Host(sub="acc_1")))
    return created.scheduling_request_id


@pytest.mark.parametrize("name", OPERATIONS)
async def test_every_operation_needs_the_secret(
    fake: FakeCronofy, existing: str, name: str
) -> None:
    async with AsyncSchedulerAPI(
        "sk_wrong", base_url="http://fake-cronofy.test", http_client=fake.client()
    ) as api:
        with pytest.raises(AuthenticationError):
            await run(api, name, existing)


@pytest.mark.parametrize("name", OPERATIONS)
async def test_every_operation_counts_against_the_rate_limit(name: str) -> None:
    fake = FakeCronofy(
        members=MEMBERS,
        selection_rules={"sel_1": ("R", 1, [])},
        rate_limit=RateLimit(per_second=2, per_minute=None),
    )
    async with api_for(fake, retry=None, rate_limit=None) as api:
        created = await run(api, "create", "")
        await run(api, name, created.scheduling_request_id)
        with pytest.raises(RateLimitError):  # the third arrival within the second
            await run(api, name, created.scheduling_request_id)
    assert fake.outcomes["429"] == 1


@pytest.mark.parametrize("name", OPERATIONS)
@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (Fault.RATE_LIMITED, RateLimitError),
        (Fault.UNAVAILABLE, ServerError),
        (Fault.DROP_BEFORE, APIConnectionError),
        (Fault.ERROR_AFTER_CREATE, ServerError),
        (Fault.DROP_AFTER, APIConnectionError),
    ],
)
async def test_every_fault_strikes_every_operation(
    fake: FakeCronofy, existing: str, name: str, fault: Fault, error: type[APIError]
) -> None:
    fake.inject(fault)
    async with api_for(fake, retry=None) as api:
        with pytest.raises(error) as info:
            await run(api, name, existing)
        changes = name in ("create", "cancel", "update")
        assert info.value.outcome_unknown is (changes and fault is not Fault.RATE_LIMITED)
        await run(api, name, existing)  # only the next request
    assert fake.outcomes[f"fault:{fault.value}"] == 1


@pytest.mark.parametrize("name", ["query", "cancel", "members", "show", "update"])
async def test_a_fault_on_a_safe_operation_is_retried_away(
    fake: FakeCronofy, existing: str, name: str
) -> None:
    fake.inject(Fault.ERROR_AFTER_CREATE)
    fake.inject(Fault.DROP_AFTER)
    async with api_for(fake) as api:
        await run(api, name, existing)
    assert fake.outcomes["fault:error_after_create"] == 1
    assert fake.outcomes["fault:drop_after"] == 1


async def test_a_fault_on_a_create_is_not_retried(fake: FakeCronofy) -> None:
    fake.inject(Fault.ERROR_AFTER_CREATE)
    async with api_for(fake) as api:
        with pytest.raises(ServerError) as info:
            await run(api, "create", "")
    assert info.value.attempts == 1
    assert len(fake.scheduling_requests) == 1  # it was created: the danger a retry would double


async def test_impersonating_a_stranger_is_403_on_every_operation(fake: FakeCronofy) -> None:
    async with api_for(fake) as api:
        with pytest.raises(APIError) as info:
            await api.impersonate("acc_stranger").query_scheduling_requests(["srq_1"])
    assert getattr(info.value, "status_code", None) == 403


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"members": "acc_1"}, "members must be a list"),
        ({"resources": 5}, "resources must be a list or a mapping"),
        ({"resources": "res_1"}, "resources must be a list or a mapping, not one string"),
        ({"selection_rules": ["sel_1"]}, "selection_rules must map"),
        ({"selection_rules": {"sel_1": ("R", 1)}}, "(name, required, member emails)"),
        ({"selection_rules": {"sel_1": ("R", 1, "a@example.com")}}, "emails must be a list"),
        ({"page_size": 0}, "page_size"),
        ({"page_size": True}, "page_size"),
    ],
)
def test_bad_fake_configuration(options: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        FakeCronofy(**options)
    assert fragment in str(info.value)


def test_links_name_the_address_the_client_used() -> None:
    from cronofy_async.testing._fake import _origin

    assert _origin({"scheme": "https"}, {"host": "h.test:8443"}) == "https://h.test:8443"
    # HTTP/1.0 may send no Host: the server's own address stands in.
    assert _origin({"server": ("127.0.0.1", 8000)}, {}) == "http://127.0.0.1:8000"


async def test_a_slow_answer_to_a_query_times_out_and_is_retried(
    fake: FakeCronofy, existing: str
) -> None:
    fake.inject(Fault.SLOW)
    async with api_for(fake, timeout=0.05) as api:
        [found] = await api.query_scheduling_requests([existing])
    assert found.scheduling_request_id == existing
    assert fake.outcomes["fault:slow"] == 1
    assert fake.outcomes["scheduling:query"] == 1  # the second, answered in time
