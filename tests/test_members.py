"""
Members and resources: every page read, the token never sent elsewhere, no endless paging.

A hostile or buggy server is played by respx: Cronofy's own /pages/<token> links, a next_page on
another host or outside the list's path, a page served twice, a next_page loop, an empty page,
malformed pages; and the caller cancels mid-listing. A listing cut short raises PaginationError.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from typing import Any

import httpx
import pytest
import respx

from cronofy_async import (
    APITimeoutError,
    AsyncSchedulerAPI,
    OrganizationalUnitMember,
    OrganizationalUnitResource,
    PaginationError,
    ResponseFormatError,
    ServerError,
    _members,
)
from cronofy_async._members import (
    Page,
    _Seen,
    _Stop,
    next_step,
    resolve_link,
    structure_member,
)
from cronofy_async._scheduling_models import ModelError

from .conftest import SECRET
from .helpers import FakeClock, reachable_text

BASE = "https://api.cronofy.com"
MEMBERS_URL = f"{BASE}/v1/organizational_unit_members"
RESOURCES_URL = f"{BASE}/v1/organizational_unit_resources"

# Cronofy's documented member (REFERENCE.md).
MEMBER: dict[str, Any] = {
    "sub": "acc_1",
    "email": "doc@evenitron.com",
    "roles": ["owner"],
    "scheduler": {"enabled": True, "public_url": "https://app.cronofy.com/pls/doc"},
}


def member(sub: str) -> dict[str, Any]:
    return {**MEMBER, "sub": sub, "email": f"{sub}@example.com"}


def page(subs: list[str], **pages: Any) -> httpx.Response:
    body: dict[str, Any] = {"organizational_unit_members": [member(s) for s in subs]}
    if pages:
        body["pages"] = pages
    return httpx.Response(200, json=body)


async def subs_of(api: AsyncSchedulerAPI) -> list[str]:
    return [m.sub async for m in api.iter_organizational_unit_members()]


# -- reading ---------------------------------------------------------------------------------


def test_a_member_is_read_whole() -> None:
    parsed = structure_member({**MEMBER, "novel": 1}, "m")
    assert parsed == OrganizationalUnitMember(
        sub="acc_1",
        email="doc@evenitron.com",
        roles=("owner",),
        scheduler_enabled=True,
        public_url="https://app.cronofy.com/pls/doc",
    )
    assert parsed.raw["novel"] == 1
    bare = structure_member({"sub": "acc_2", "scheduler": {"public_url": None}}, "m")
    assert (bare.email, bare.roles, bare.scheduler_enabled, bare.public_url) == (
        None,
        (),
        None,
        None,
    )


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ("acc_1", "m"),
        ({"email": "x@example.com"}, "m.sub"),
        ({"sub": "acc_1", "roles": "owner"}, "m.roles"),
        ({"sub": "acc_1", "roles": [1]}, "m.roles"),
        ({"sub": "acc_1", "scheduler": True}, "m.scheduler"),
        ({"sub": "acc_1", "scheduler": {"enabled": "yes"}}, "m.scheduler.enabled"),
    ],
)
def test_a_malformed_member_names_its_field(value: Any, path: str) -> None:
    with pytest.raises(ModelError) as info:
        structure_member(value, "m")
    assert info.value.path == path


async def test_the_documented_request_and_answer(
    api: AsyncSchedulerAPI, mock: respx.MockRouter
) -> None:
    route = mock.get(MEMBERS_URL).mock(return_value=page(["acc_1"], current=1, total=1))
    [only] = [m async for m in api.iter_organizational_unit_members()]
    sent = route.calls.last.request
    assert sent.method == "GET"
    assert str(sent.url) == MEMBERS_URL
    assert sent.content == b""
    assert sent.headers["authorization"] == f"Bearer {SECRET}"
    assert sent.headers["accept"] == "application/json"
    assert "content-type" not in sent.headers
    assert only.roles == ("owner",)
    assert only.public_url == "https://app.cronofy.com/pls/doc"


async def test_resources_are_listed_the_same_way(
    api: AsyncSchedulerAPI, mock: respx.MockRouter
) -> None:
    mock.get(RESOURCES_URL).mock(
        return_value=httpx.Response(
            200,
            json={
                "organizational_unit_resources": [
                    {
                        "sub": "res_1",
                        "email": "room@example.com",
                        "name": "Room 1",
                        "scheduler": {"enabled": False},
                    }
                ],
                "pages": {"current": 1, "total": 1},
            },
        )
    )
    resources = [r async for r in api.iter_organizational_unit_resources()]
    sent = mock.calls.last.request
    assert (sent.method, str(sent.url), sent.content) == ("GET", RESOURCES_URL, b"")
    assert sent.headers["authorization"] == f"Bearer {SECRET}"
    assert resources == [
        OrganizationalUnitResource(
            sub="res_1", email="room@example.com", name="Room 1", scheduler_enabled=False
        )
    ]


# -- paging ----------------------------------------------------------------------------------


async def collect(api: AsyncSchedulerAPI) -> tuple[list[str], PaginationError]:
    """The subs a listing yields before it raises `PaginationError`, and the error."""
    subs: list[str] = []

    async def listing() -> None:
        async for found in api.iter_organizational_unit_members():
            subs.append(found.sub)

    with pytest.raises(PaginationError) as info:
        await listing()
    assert info.value.yielded == len(subs)
    assert info.value.outcome_unknown is False
    assert info.value.path == "/v1/organizational_unit_members"
    assert info.value.reason in PaginationError.REASONS
    return subs, info.value


async def test_cronofys_own_link_shape_is_followed(
    api: AsyncSchedulerAPI, mock: respx.MockRouter
) -> None:
    # Read Events' documented shape: a path below the list's own, /pages/<opaque token>, and a
    # server that ignores page= (so a fallback to page=2 would read page 1 again).
    links = {
        "": page(["acc_1"], current=1, total=3, next_page=f"{MEMBERS_URL}/pages/08a07b034306679e"),
        "/pages/08a07b034306679e": page(
            ["acc_2"], current=2, total=3, next_page=f"{MEMBERS_URL}/pages/5a1e7c0e9d1f2b3c"
        ),
        "/pages/5a1e7c0e9d1f2b3c": page(["acc_3"], current=3, total=3),
    }

    def respond(request: httpx.Request) -> httpx.Response:
        return links[request.url.path.removeprefix("/v1/organizational_unit_members")]

    route = mock.route(host="api.cronofy.com").mock(side_effect=respond)
    assert await subs_of(api) == ["acc_1", "acc_2", "acc_3"]
    assert [c.request.url.path for c in route.calls] == [
        "/v1/organizational_unit_members",
        "/v1/organizational_unit_members/pages/08a07b034306679e",
        "/v1/organizational_unit_members/pages/5a1e7c0e9d1f2b3c",
    ]
    assert all(c.request.headers["authorization"] == f"Bearer {SECRET}" for c in route.calls)


async def test_resources_follow_the_same_link_shape(
    api: AsyncSchedulerAPI, mock: respx.MockRouter
) -> None:
    def respond(request: httpx.Request) -> httpx.Response:
        second = request.url.path.endswith("/pages/tok2")
        body = {
            "organizational_unit_resources": [{"sub": "res_2" if second else "res_1"}],
            "pages": {"current": 2, "total": 2}
            if second
            else {"current": 1, "total": 2, "next_page": f"{RESOURCES_URL}/pages/tok2"},
        }
        return httpx.Response(200, json=body)

    mock.route(host="api.cronofy.com").mock(side_effect=respond)
    assert [r.sub async for r in api.iter_organizational_unit_resources()] == ["res_1", "res_2"]


async def test_a_query_link_on_the_list_path_is_followed(
    api: AsyncSchedulerAPI, mock: respx.MockRouter
) -> None:
    mock.get(MEMBERS_URL, params={"page": "2"}).mock(
        return_value=page(["acc_3"], current=2, total=2)
    )
    first = mock.get(MEMBERS_URL, params={}).mock(
        return_value=page(["acc_1", "acc_2"], current=1, total=2, next_page=f"{MEMBERS_URL}?page=2")
    )
    assert await subs_of(api) == ["acc_1", "acc_2", "acc_3"]
    assert first.call_count == 1


async def test_without_links_pages_are_asked_for_by_number(
    api: AsyncSchedulerAPI, mock: respx.MockRouter
) -> None:
    def respond(request: httpx.Request) -> httpx.Response:
        number = int(request.url.params.get("page", "1"))
        return page([f"acc_{number}"], current=number, total=3)

    route = mock.get(MEMBERS_URL).mock(side_effect=respond)
    assert await subs_of(api) == ["acc_1", "acc_2", "acc_3"]
    assert [str(c.request.url) for c in route.calls] == [
        MEMBERS_URL,
        f"{MEMBERS_URL}?page=2",
        f"{MEMBERS_URL}?page=3",
    ]


async def test_a_total_without_current_counts_the_pages_read(
    api: AsyncSchedulerAPI, mock: respx.MockRouter
) -> None:
    # No current and no link: the pages read so far stand for current, so a total beyond them
    # asks for the next number, as when a link is missing.
    def respond(request: httpx.Request) -> httpx.Response:
        number = int(request.url.params.get("page", "1"))
        return page([f"acc_{number}"], total=3)

    route = mock.get(MEMBERS_URL).mock(side_effect=respond)
    assert await subs_of(api) == ["acc_1", "acc_2", "acc_3"]
    assert [str(c.request.url) for c in route.calls] == [
        MEMBERS_URL,
        f"{MEMBERS_URL}?page=2",
        f"{MEMBERS_URL}?page=3",
    ]


async def test_a_total_without_current_never_ends_silently_early(
    api: AsyncSchedulerAPI, mock: respx.MockRouter
) -> None:
    # It claims 5 pages, sends neither current nor a link, and ignores page=.
    route = mock.get(MEMBERS_URL).mock(return_value=page(["acc_1"], total=5))
    subs, error = await collect(api)
    assert (subs, error.reason, error.pages) == (["acc_1"], "repeated_page", 2)
    assert route.call_count == 2


async def test_no_pages_object_means_one_page(
    api: AsyncSchedulerAPI, mock: respx.MockRouter
) -> None:
    route = mock.get(MEMBERS_URL).mock(return_value=page(["acc_1"]))
    assert await subs_of(api) == ["acc_1"]
    assert route.call_count == 1


@pytest.mark.parametrize(
    ("pages", "calls"),
    [
        ({"current": 1, "total": 1}, 1),
        # current >= total is the end, whatever else the page says.
        ({"current": 2, "total": 2, "next_page": f"{MEMBERS_URL}/pages/more"}, 1),
        ({"current": 3, "total": 2}, 1),
        ({"current": 1}, 1),
        ({}, 1),
    ],
)
async def test_a_listing_that_really_ended_ends_quietly(
    api: AsyncSchedulerAPI,
    mock: respx.MockRouter,
    pages: dict[str, Any],
    calls: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    route = mock.route(host="api.cronofy.com").mock(return_value=page(["acc_1"], **pages))
    with caplog.at_level(logging.WARNING, logger="cronofy_async"):
        assert await subs_of(api) == ["acc_1"]
    assert route.call_count == calls
    assert not caplog.records


async def test_an_empty_organization_is_an_empty_listing(
    api: AsyncSchedulerAPI, mock: respx.MockRouter
) -> None:
    mock.get(MEMBERS_URL).mock(return_value=page([], current=1, total=1))
    assert await subs_of(api) == []


REFUSED_LINKS = [
    "https://evil.example/v1/organizational_unit_members/pages/abc",
    "http://api.cronofy.com/v1/organizational_unit_members/pages/abc",
    "https://api.cronofy.com:8443/v1/organizational_unit_members/pages/abc",
    "https://user@api.cronofy.com/v1/organizational_unit_members/pages/abc",
    "https://user:pw@api.cronofy.com/v1/organizational_unit_members/pages/abc",
    "//evil.example/v1/organizational_unit_members/pages/abc",
    "///evil.example/v1/organizational_unit_members/pages/abc",
    "https://api.cronofy.com/v1/scheduler_requests?page=2",
    "https://api.cronofy.com/v1/events/pages/08a07b034306679e",
    "https://api.cronofy.com/v1/organizational_unit_resources/pages/abc",
    "/v1/organizational_unit_membersX/pages/abc",
    "/v1/organizational_unit_members/../scheduler_requests",
    "/v1/organizational_unit_members/pages/../../scheduler_requests",
    "/v1/organizational_unit_members/./../x",
    "/v1/organizational_unit_members/%2e%2e/scheduler_requests",
    "/v1/organizational_unit_members/%2E%2E",
    "/v1/organizational_unit_members/pages/%2F%2Fevil.example",
    "/v1/organizational_unit_members/pages/a%5C..%5C..%5Cx",
    "/v1/organizational_unit_members/pages\\..\\..\\x",
    "/v1/organizational_unit_members//pages/abc",
    "/v1/organizational_unit_members/",
    # A server that strips ;parameters (Tomcat, Spring) reads these as dot or empty segments.
    "/v1/organizational_unit_members/..;x/scheduler_requests",
    "/v1/organizational_unit_members/pages/..;x/..;x/scheduler_requests",
    "/v1/organizational_unit_members/%2e%2e;x/scheduler_requests",
    "/v1/organizational_unit_members/..%3Bx/scheduler_requests",
    "/v1/organizational_unit_members/.;x/pages/abc",
    "/v1/organizational_unit_members/.%3b/pages/abc",
    "/v1/organizational_unit_members/;x/pages/abc",
    "/v1/organizational_unit_members/pages/;/abc",
    "/v1/organizational_unit_members/pages/abc/;x",
    "/v1/organizational_unit_members/pages/abc//",
    # The list's path only once decoded: what is sent is the raw path, which may route apart.
    "/v1%2Forganizational_unit_members?page=2",
    "/v1/organizational_unit_member%73?page=2",
    "pages/abc",  # relative to /v1/: /v1/pages/abc, outside the list
    "https://api.cronofy.com.evil.example/v1/organizational_unit_members/pages/abc",
    "https://api.cronofy.com@evil.example/v1/organizational_unit_members/pages/abc",
    "\\\\evil.example/v1/organizational_unit_members/pages/abc",
    "http://[::1",
]


@pytest.mark.parametrize("link", REFUSED_LINKS)
async def test_a_link_elsewhere_is_never_followed_and_ends_with_an_error(
    api: AsyncSchedulerAPI,
    mock: respx.MockRouter,
    link: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Anything that is not below this list's path on this origin would carry the bearer token
    # away: it is not followed, and the caller learns the listing is incomplete.
    def respond(request: httpx.Request) -> httpx.Response:
        if str(request.url) != MEMBERS_URL:
            raise AssertionError(f"followed {request.url}")
        return page(["acc_1", "acc_2"], current=1, total=2, next_page=link)

    route = mock.route().mock(side_effect=respond)
    with caplog.at_level(logging.WARNING, logger="cronofy_async"):
        subs, error = await collect(api)
    assert subs == ["acc_1", "acc_2"]
    assert (error.reason, error.yielded, error.pages) == ("refused_link", 2, 1)
    assert route.call_count == 1
    assert "next_page" in str(error)
    assert "stopped listing" in caplog.text


@pytest.mark.parametrize("link", REFUSED_LINKS)
def test_resolve_refuses(link: str) -> None:
    assert resolve_link(link, MEMBERS_URL) is None


async def test_a_hostile_link_is_not_logged_nor_raised(
    api: AsyncSchedulerAPI, mock: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    # A server that echoes the bearer token into a link gets it into no log and no error.
    link = f"https://evil.example/steal?token={SECRET}"
    mock.get(MEMBERS_URL).mock(return_value=page(["acc_1"], next_page=link))
    with caplog.at_level(logging.DEBUG, logger="cronofy_async"):
        _, error = await collect(api)
    for text in (caplog.text, str(error), repr(error), repr(error.args)):
        assert SECRET not in text
        assert "evil" not in text


HOSTILE = f"https://evil.example/steal/8c1d5e0f?token={SECRET}"


@pytest.mark.parametrize(
    ("answers", "reason"),
    [
        ([page(["acc_1"], next_page=HOSTILE)], "refused_link"),
        ([page([], current=1, total=2, next_page=HOSTILE)], "empty_page"),
        (
            [
                page(["acc_1"], current=1, total=3),
                page(["acc_1"], current=1, total=3, next_page=HOSTILE),
            ],
            "repeated_page",
        ),
    ],
)
async def test_a_hostile_link_is_in_no_traceback_local_nor_chained_error(
    api: AsyncSchedulerAPI,
    mock: respx.MockRouter,
    answers: list[httpx.Response],
    reason: str,
) -> None:
    # A traceback printed with its locals (pytest, Sentry, a debugger) shows every frame's
    # variables and every chained error: the page that carried the link must be in none.
    served = iter(answers)
    mock.get(MEMBERS_URL).mock(side_effect=lambda request: next(served))
    _, error = await collect(api)
    assert error.reason == reason
    assert "_pages" in {f.name for f in traceback.extract_tb(error.__traceback__)}
    text = reachable_text(error)
    for secret in (SECRET, "evil.example", "8c1d5e0f"):
        assert secret not in text
    assert (error.__context__, error.__cause__) == (None, None)


async def test_a_link_back_to_the_first_page_is_a_loop(
    api: AsyncSchedulerAPI, mock: respx.MockRouter
) -> None:
    route = mock.get(MEMBERS_URL).mock(return_value=page(["acc_1"], next_page=MEMBERS_URL))
    subs, error = await collect(api)
    assert (subs, error.reason) == (["acc_1"], "link_loop")
    assert route.call_count == 1


async def test_a_relative_link_on_the_same_endpoint_is_followed(
    api: AsyncSchedulerAPI, mock: respx.MockRouter
) -> None:
    def respond(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("cursor") == "b":
            return page(["acc_2"])
        return page(["acc_1"], next_page="/v1/organizational_unit_members?cursor=b")

    mock.get(MEMBERS_URL).mock(side_effect=respond)
    assert await subs_of(api) == ["acc_1", "acc_2"]


async def test_a_relative_pages_link_is_followed(
    api: AsyncSchedulerAPI, mock: respx.MockRouter
) -> None:
    def respond(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/pages/t2"):
            return page(["acc_2"], current=2, total=2)
        return page(["acc_1"], current=1, total=2, next_page="members/pages/t2")

    # Relative to .../organizational_unit_members, "members/..." would climb to /v1/members:
    # refused; the absolute path form is followed.
    mock.route(host="api.cronofy.com").mock(side_effect=respond)
    _, error = await collect(api)
    assert error.reason == "refused_link"

    def absolute(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/pages/t2"):
            return page(["acc_2"], current=2, total=2)
        return page(
            ["acc_1"], current=1, total=2, next_page="/v1/organizational_unit_members/pages/t2"
        )

    mock.route(host="api.cronofy.com").mock(side_effect=absolute)
    assert await subs_of(api) == ["acc_1", "acc_2"]


async def test_a_base_url_with_a_path_keeps_links_under_it(mock: respx.MockRouter) -> None:
    proxy = "https://proxy.example/cronofy"
    endpoint = f"{proxy}/v1/organizational_unit_members"

    def respond(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/pages/tok"):
            return page(["acc_3"], current=3, total=3)
        if request.url.params.get("page") == "2":
            return page(["acc_2"], current=2, total=3, next_page=f"{endpoint}/pages/tok")
        return page(["acc_1"], current=1, total=3, next_page=f"{endpoint}?page=2")

    route = mock.route(host="proxy.example").mock(side_effect=respond)
    async with AsyncSchedulerAPI(SECRET, base_url=proxy, rate_limit=None) as api:
        assert await subs_of(api) == ["acc_1", "acc_2", "acc_3"]
        assert route.call_count == 3
        # The proxy's path is part of the list's path: a link that drops it is refused.
        mock.route(host="proxy.example").mock(
            return_value=page(
                ["acc_1"], current=1, total=2, next_page=f"{BASE}/v1/organizational_unit_members"
            )
        )
        _, error = await collect(api)
        assert error.reason == "refused_link"


async def test_a_server_that_ignores_page_numbers_raises_once_every_item_was_read(
    api: AsyncSchedulerAPI, mock: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    # It ignores page= and always answers page 1 of 3: the silent truncation of issue #21.
    route = mock.get(MEMBERS_URL).mock(return_value=page(["acc_1"], current=1, total=3))
    with caplog.at_level(logging.WARNING, logger="cronofy_async"):
        subs, error = await collect(api)
    assert (subs, error.reason, error.pages) == (["acc_1"], "repeated_page", 2)
    assert route.call_count == 2
    assert "page 1 came twice" in caplog.text


async def test_a_next_page_loop_raises(api: AsyncSchedulerAPI, mock: respx.MockRouter) -> None:
    # Page 1 links to 2, and 2 back to 1, with fresh items each time and no page numbers.
    served = iter(range(100))

    def respond(request: httpx.Request) -> httpx.Response:
        there = "2" if request.url.params.get("p") != "2" else "1"
        return page([f"acc_{next(served)}"], next_page=f"{MEMBERS_URL}?p={there}")

    route = mock.get(MEMBERS_URL).mock(side_effect=respond)
    subs, error = await collect(api)
    assert (subs, error.reason) == (["acc_0", "acc_1", "acc_2"], "link_loop")
    assert route.call_count == 3


@pytest.mark.parametrize(
    "links",
    [
        # A fragment never reaches the server: these are one page.
        [f"{MEMBERS_URL}/pages/t#1", f"{MEMBERS_URL}/pages/t#2"],
        [f"{MEMBERS_URL}/pages/t", f"{MEMBERS_URL}/pages/t#again"],
        [f"{MEMBERS_URL}#top"],
        # Spelled apart only by percent-encoding (RFC 3986, 6.2.2): one page too.
        [f"{MEMBERS_URL}/pages/t", f"{MEMBERS_URL}/pages/%74"],
        [f"{MEMBERS_URL}/pages/a%2cb", f"{MEMBERS_URL}/pages/a%2Cb"],
        [f"{MEMBERS_URL}/pages/t?c=%7a", f"{MEMBERS_URL}/pages/t?c=z"],
    ],
)
async def test_a_loop_through_links_spelled_apart_raises(
    api: AsyncSchedulerAPI, mock: respx.MockRouter, links: list[str]
) -> None:
    # Fresh items every time, so only the links can tell it loops.
    served = iter(range(100))

    def respond(request: httpx.Request) -> httpx.Response:
        number = next(served)
        return page([f"acc_{number}"], next_page=links[number])

    route = mock.route(host="api.cronofy.com").mock(side_effect=respond)
    subs, error = await collect(api)
    assert (len(subs), error.reason, route.call_count) == (len(links), "link_loop", len(links))
    assert not any("#" in str(call.request.url) for call in route.calls)


async def test_the_same_items_under_new_links_raise(
    api: AsyncSchedulerAPI, mock: respx.MockRouter
) -> None:
    served = iter(range(100))
    route = mock.get(MEMBERS_URL).mock(
        side_effect=lambda request: page(
            ["acc_1", "acc_2"], next_page=f"{MEMBERS_URL}?n={next(served)}"
        )
    )
    subs, error = await collect(api)
    assert (subs, error.reason) == (["acc_1", "acc_2"], "repeated_page")
    assert route.call_count == 2


async def test_an_item_on_two_pages_is_yielded_once(
    api: AsyncSchedulerAPI, mock: respx.MockRouter
) -> None:
    # A member list that shifted between two page reads: acc_2 comes on both.
    answers = iter(
        [
            page(["acc_1", "acc_2"], current=1, total=2, next_page=f"{MEMBERS_URL}/pages/t"),
            page(["acc_2", "acc_3"], current=2, total=2),
        ]
    )
    mock.route(host="api.cronofy.com").mock(side_effect=lambda request: next(answers))
    assert await subs_of(api) == ["acc_1", "acc_2", "acc_3"]


@pytest.mark.parametrize(
    "last",
    [
        {"current": 2, "total": 2},
        {},  # no link and no total: the end, as a link-only list says it
        {"current": 1, "total": 1},  # its number came before, but it says the list is over
    ],
)
async def test_a_last_page_of_items_listed_before_ends_quietly(
    api: AsyncSchedulerAPI,
    mock: respx.MockRouter,
    last: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A list that shifted while it was read: its last page holds only members already listed.
    # The server says the list is over, so nothing was left unread.
    answers = iter(
        [
            page(["acc_1", "acc_2"], current=1, total=2, next_page=f"{MEMBERS_URL}/pages/t"),
            page(["acc_2"], **last),
        ]
    )
    route = mock.route(host="api.cronofy.com").mock(side_effect=lambda request: next(answers))
    with caplog.at_level(logging.WARNING, logger="cronofy_async"):
        assert await subs_of(api) == ["acc_1", "acc_2"]
    assert route.call_count == 2
    assert not caplog.records


async def test_an_empty_page_that_claims_more_raises(
    api: AsyncSchedulerAPI, mock: respx.MockRouter
) -> None:
    served = iter(range(100))

    def respond(request: httpx.Request) -> httpx.Response:
        number = next(served)
        subs = [] if number == 1 else [f"acc_{number}"]
        return page(subs, current=number + 1, total=10**9, next_page=f"{MEMBERS_URL}?n={number}")

    route = mock.get(MEMBERS_URL).mock(side_effect=respond)
    subs, error = await collect(api)
    assert (subs, error.reason, error.pages) == (["acc_0"], "empty_page", 2)
    assert route.call_count == 2


async def test_a_page_number_going_back_raises(
    api: AsyncSchedulerAPI, mock: respx.MockRouter
) -> None:
    answers = iter(
        [
            page(["acc_1"], current=1, total=3),
            page(["acc_2"], current=2, total=3),
            page(["acc_3"], current=1, total=3),
        ]
    )
    route = mock.get(MEMBERS_URL).mock(side_effect=lambda request: next(answers))
    subs, error = await collect(api)
    # acc_3 came on the repeated page, but was never listed before: it is yielded, then the
    # listing stops, since what comes after page 2 was never read.
    assert (subs, error.reason, error.yielded) == (["acc_1", "acc_2", "acc_3"], "repeated_page", 3)
    assert route.call_count == 3


async def test_new_items_on_a_repeated_page_are_yielded_before_it_raises(
    api: AsyncSchedulerAPI, mock: respx.MockRouter
) -> None:
    # It ignores page= and answers page 1 again, after a member joined: acc_0 moved it along.
    answers = iter(
        [
            page(["acc_1", "acc_2"], current=1, total=2),
            page(["acc_0", "acc_1"], current=1, total=2),
        ]
    )
    route = mock.get(MEMBERS_URL).mock(side_effect=lambda request: next(answers))
    subs, error = await collect(api)
    assert (subs, error.reason, error.pages) == (["acc_1", "acc_2", "acc_0"], "repeated_page", 2)
    assert route.call_count == 2


async def test_a_listing_that_never_ends_stops_at_the_page_cap(
    api: AsyncSchedulerAPI, mock: respx.MockRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Fresh items under fresh links forever: never a hang, however patient the caller.
    monkeypatch.setattr(_members, "MAX_PAGES", 5)
    served = iter(range(100))

    def respond(request: httpx.Request) -> httpx.Response:
        number = next(served)
        return page([f"acc_{number}"], next_page=f"{MEMBERS_URL}/pages/{number}")

    route = mock.route(host="api.cronofy.com").mock(side_effect=respond)
    subs, error = await collect(api)
    assert (len(subs), error.reason, route.call_count) == (5, "too_many_pages", 6)


def test_next_step_when_the_next_number_was_already_answered() -> None:
    seen = _Seen(pages={3})
    step = next_step(
        Page(items=(1,), current=2, total=5, keys=("a",)), endpoint=MEMBERS_URL, seen=seen
    )
    assert step == _Stop("repeated_page", "page 3 came before")


@pytest.mark.parametrize(
    ("link", "expected"),
    [
        (f"{MEMBERS_URL}?page=2", f"{MEMBERS_URL}?page=2"),
        ("?page=2", f"{MEMBERS_URL}?page=2"),
        ("https://API.cronofy.com:443/v1/organizational_unit_members", MEMBERS_URL),
        (f"{MEMBERS_URL}/pages/08a07b034306679e", f"{MEMBERS_URL}/pages/08a07b034306679e"),
        ("/v1/organizational_unit_members/pages/abc", f"{MEMBERS_URL}/pages/abc"),
        (f"{MEMBERS_URL}/pages/abc?x=1", f"{MEMBERS_URL}/pages/abc?x=1"),
        # A ;parameter after a real segment is the server's business; so is a trailing slash.
        (f"{MEMBERS_URL}/pages/abc;v=1", f"{MEMBERS_URL}/pages/abc;v=1"),
        (f"{MEMBERS_URL}/pages/abc/", f"{MEMBERS_URL}/pages/abc/"),
        (f"{MEMBERS_URL}/pages/%2e%2ex", f"{MEMBERS_URL}/pages/%2e%2ex"),
        # A fragment is the client's own: never part of what is fetched or compared.
        (f"{MEMBERS_URL}/pages/abc#x", f"{MEMBERS_URL}/pages/abc"),
        ("?page=2#top", f"{MEMBERS_URL}?page=2"),
        # Dot segments that stay below the list are resolved, then allowed.
        (f"{MEMBERS_URL}/pages/x/../abc", f"{MEMBERS_URL}/pages/abc"),
        (f"{MEMBERS_URL}/./pages/abc", f"{MEMBERS_URL}/pages/abc"),
        ("ftp://api.cronofy.com/v1/organizational_unit_members", None),
        # Decoding this host name (IDNA) raises: it is refused, not a crash.
        ("https://xn--api-cronofy.com/v1/organizational_unit_members", None),
        ("https://AP\u0130.cronofy.com/v1/organizational_unit_members", None),
        ("https://api.cronofy.com./v1/organizational_unit_members", None),
        ("https://api.cronofy.com/v1/organizational_unit_members?page=2\r\nX-Evil: 1", None),
        (f"{MEMBERS_URL}/pages/a\r\nX-Evil: 1", None),
    ],
)
def test_resolve_link(link: str, expected: str | None) -> None:
    assert resolve_link(link, MEMBERS_URL) == expected


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"pages": {"current": 1, "total": 1}}',
        b'{"organizational_unit_members": {}}',
        b'{"organizational_unit_members": [], "pages": []}',
        b'{"organizational_unit_members": [], "pages": {"current": "1"}}',
        b'{"organizational_unit_members": [], "pages": {"next_page": 2}}',
        b'{"organizational_unit_members": [{"email": "x@example.com"}]}',
    ],
)
async def test_a_malformed_page_is_a_format_error_that_changed_nothing(
    api: AsyncSchedulerAPI, mock: respx.MockRouter, body: bytes
) -> None:
    route = mock.get(MEMBERS_URL).mock(return_value=httpx.Response(200, content=body))
    with pytest.raises(ResponseFormatError) as info:
        await subs_of(api)
    assert info.value.outcome_unknown is False
    assert route.call_count == 1


# -- retries and stopping ----------------------------------------------------------------------


async def test_a_failed_page_is_retried_and_the_listing_goes_on(
    api: AsyncSchedulerAPI, mock: respx.MockRouter, clock: FakeClock
) -> None:
    answers = iter(
        [
            page(["acc_1"], current=1, total=2),
            httpx.Response(503),
            page(["acc_2"], current=2, total=2),
        ]
    )
    route = mock.get(MEMBERS_URL).mock(side_effect=lambda request: next(answers))
    assert await subs_of(api) == ["acc_1", "acc_2"]
    assert route.call_count == 3
    assert max(clock.sleeps) > 0.1  # a backoff, not only the pace


async def test_a_listing_that_keeps_failing_never_says_outcome_unknown(
    api: AsyncSchedulerAPI, mock: respx.MockRouter
) -> None:
    mock.get(MEMBERS_URL).mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(APITimeoutError) as info:
        await subs_of(api)
    assert info.value.outcome_unknown is False
    assert info.value.attempts == 3


async def test_stopping_early_asks_for_no_more_pages(
    api: AsyncSchedulerAPI, mock: respx.MockRouter
) -> None:
    route = mock.get(MEMBERS_URL).mock(
        side_effect=lambda request: page(
            ["acc_a", "acc_b"],
            current=int(request.url.params.get("page", "1")),
            total=5,
        )
    )
    listing = api.iter_organizational_unit_members()
    async for found in listing:
        assert found.sub == "acc_a"
        break
    await listing.aclose()  # type: ignore[attr-defined]
    assert route.call_count == 1


async def test_cancelling_mid_listing_leaves_nothing_behind(mock: respx.MockRouter) -> None:
    # The second page never comes; the task listing is cancelled while it waits.
    waiting = asyncio.Event()
    never = asyncio.Event()

    async def respond(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("page") == "2":
            waiting.set()
            await never.wait()
        return page(["acc_1"], current=1, total=2)

    mock.get(MEMBERS_URL).mock(side_effect=respond)
    async with AsyncSchedulerAPI(SECRET, rate_limit=None) as api:
        seen: list[str] = []

        async def listing() -> None:
            async for found in api.iter_organizational_unit_members():
                seen.append(found.sub)

        task = asyncio.create_task(listing())
        await waiting.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert seen == ["acc_1"]
        # The API object is still usable: nothing is stuck in its pool or its pace.
        mock.get(MEMBERS_URL).mock(return_value=page(["acc_9"]))
        assert await subs_of(api) == ["acc_9"]


async def test_listing_after_close_is_refused_before_sending(mock: respx.MockRouter) -> None:
    api = AsyncSchedulerAPI(SECRET)
    await api.aclose()
    with pytest.raises(Exception, match="closed"):
        api.iter_organizational_unit_members()
    assert not mock.calls


async def test_a_5xx_on_every_try_surfaces(api: AsyncSchedulerAPI, mock: respx.MockRouter) -> None:
    mock.get(RESOURCES_URL).mock(return_value=httpx.Response(502))
    with pytest.raises(ServerError) as info:
        [r async for r in api.iter_organizational_unit_resources()]
    assert info.value.outcome_unknown is False
