"""
Members and resources: every page read, the token never sent elsewhere, no endless paging.

A hostile or buggy server is played by respx: a next_page on another host, a page served twice,
a next_page loop, an empty page, malformed pages; and the caller cancels mid-listing.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
import pytest
import respx

from cronofy_async import (
    APITimeoutError,
    AsyncSchedulerAPI,
    OrganizationalUnitMember,
    OrganizationalUnitResource,
    ResponseFormatError,
    ServerError,
)
from cronofy_async._members import Page, _Seen, next_step, resolve_link, structure_member
from cronofy_async._scheduling_models import ModelError

from .conftest import SECRET
from .helpers import FakeClock

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


async def test_next_page_links_are_followed(api: AsyncSchedulerAPI, mock: respx.MockRouter) -> None:
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


async def test_no_pages_object_means_one_page(
    api: AsyncSchedulerAPI, mock: respx.MockRouter
) -> None:
    route = mock.get(MEMBERS_URL).mock(return_value=page(["acc_1"]))
    assert await subs_of(api) == ["acc_1"]
    assert route.call_count == 1


@pytest.mark.parametrize(
    "link",
    [
        "https://evil.example/v1/organizational_unit_members?page=2",
        "http://api.cronofy.com/v1/organizational_unit_members?page=2",
        "https://api.cronofy.com:8443/v1/organizational_unit_members?page=2",
        "https://user@api.cronofy.com/v1/organizational_unit_members?page=2",
        "//evil.example/v1/organizational_unit_members?page=2",
        "https://api.cronofy.com/v1/scheduler_requests?page=2",
        "https://api.cronofy.com/v1/organizational_unit_members/../x?page=2",
        "https://api.cronofy.com.evil.example/v1/organizational_unit_members",
        "http://[::1",
    ],
)
async def test_a_link_elsewhere_is_never_followed(
    api: AsyncSchedulerAPI,
    mock: respx.MockRouter,
    link: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Anything that is not this endpoint on this origin would carry the bearer token away;
    # the link is ignored and the page number used instead.
    def respond(request: httpx.Request) -> httpx.Response:
        if request.url.host != "api.cronofy.com" or request.url.path != (
            "/v1/organizational_unit_members"
        ):
            raise AssertionError(f"followed {request.url}")
        number = int(request.url.params.get("page", "1"))
        return page([f"acc_{number}"], current=number, total=2, next_page=link)

    mock.route().mock(side_effect=respond)
    with caplog.at_level(logging.WARNING, logger="cronofy_async"):
        assert await subs_of(api) == ["acc_1", "acc_2"]
    assert "ignored pages.next_page" in caplog.text


async def test_a_hostile_link_is_not_logged(
    api: AsyncSchedulerAPI, mock: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    # A server that echoes the bearer token into a link gets nothing into the logs.
    link = f"https://evil.example/steal?token={SECRET}"
    mock.get(MEMBERS_URL).mock(return_value=page(["acc_1"], next_page=link))
    with caplog.at_level(logging.DEBUG, logger="cronofy_async"):
        assert await subs_of(api) == ["acc_1"]
    assert SECRET not in caplog.text
    assert "evil" not in caplog.text


async def test_a_link_back_to_the_first_page_is_not_followed(
    api: AsyncSchedulerAPI, mock: respx.MockRouter
) -> None:
    route = mock.get(MEMBERS_URL).mock(return_value=page(["acc_1"], next_page=MEMBERS_URL))
    assert await subs_of(api) == ["acc_1"]
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


async def test_a_base_url_with_a_path_keeps_links_under_it(mock: respx.MockRouter) -> None:
    proxy = "https://proxy.example/cronofy"
    endpoint = f"{proxy}/v1/organizational_unit_members"

    def respond(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("page") == "2":
            return page(["acc_2"], current=2, total=2)
        return page(["acc_1"], current=1, total=2, next_page=f"{endpoint}?page=2")

    route = mock.get(endpoint).mock(side_effect=respond)
    async with AsyncSchedulerAPI(SECRET, base_url=proxy, rate_limit=None) as api:
        assert await subs_of(api) == ["acc_1", "acc_2"]
    assert route.call_count == 2


async def test_a_server_that_serves_the_same_page_forever_is_left(
    api: AsyncSchedulerAPI, mock: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    # It ignores page= and always answers page 1 of 3.
    route = mock.get(MEMBERS_URL).mock(return_value=page(["acc_1"], current=1, total=3))
    with caplog.at_level(logging.WARNING, logger="cronofy_async"):
        assert await subs_of(api) == ["acc_1"]
    assert route.call_count == 2
    assert "seen before" in caplog.text


async def test_a_next_page_loop_is_left(api: AsyncSchedulerAPI, mock: respx.MockRouter) -> None:
    # Page 1 links to 2, and 2 back to 1, with fresh items each time and no page numbers.
    served = iter(range(100))

    def respond(request: httpx.Request) -> httpx.Response:
        there = "2" if request.url.params.get("p") != "2" else "1"
        return page([f"acc_{next(served)}"], next_page=f"{MEMBERS_URL}?p={there}")

    route = mock.get(MEMBERS_URL).mock(side_effect=respond)
    assert await subs_of(api) == ["acc_0", "acc_1", "acc_2"]
    assert route.call_count == 3


async def test_the_same_items_under_new_links_are_left(
    api: AsyncSchedulerAPI, mock: respx.MockRouter
) -> None:
    served = iter(range(100))
    route = mock.get(MEMBERS_URL).mock(
        side_effect=lambda request: page(
            ["acc_1", "acc_2"], next_page=f"{MEMBERS_URL}?n={next(served)}"
        )
    )
    assert await subs_of(api) == ["acc_1", "acc_2"]
    assert route.call_count == 2


async def test_an_empty_page_ends_the_listing(
    api: AsyncSchedulerAPI, mock: respx.MockRouter
) -> None:
    served = iter(range(100))

    def respond(request: httpx.Request) -> httpx.Response:
        number = next(served)
        subs = [] if number == 1 else [f"acc_{number}"]
        return page(subs, current=number + 1, total=10**9, next_page=f"{MEMBERS_URL}?n={number}")

    route = mock.get(MEMBERS_URL).mock(side_effect=respond)
    assert await subs_of(api) == ["acc_0"]
    assert route.call_count == 2


async def test_a_page_number_going_back_is_left(
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
    assert await subs_of(api) == ["acc_1", "acc_2", "acc_3"]
    assert route.call_count == 3


def test_next_step_when_the_next_number_was_already_answered() -> None:
    seen = _Seen(pages={3})
    step = next_step(
        Page(items=(1,), current=2, total=5, keys=("a",)), endpoint=MEMBERS_URL, seen=seen
    )
    assert step is None


@pytest.mark.parametrize(
    ("link", "expected"),
    [
        (f"{MEMBERS_URL}?page=2", f"{MEMBERS_URL}?page=2"),
        ("?page=2", f"{MEMBERS_URL}?page=2"),
        ("https://API.cronofy.com:443/v1/organizational_unit_members", MEMBERS_URL),
        ("https://api.cronofy.com/v1/organizational_unit_members/", None),
        ("ftp://api.cronofy.com/v1/organizational_unit_members", None),
        # Decoding this host name (IDNA) raises: it is refused, not a crash.
        ("https://xn--api-cronofy.com/v1/organizational_unit_members", None),
        ("https://AP\u0130.cronofy.com/v1/organizational_unit_members", None),
        ("https://api.cronofy.com@evil.example/v1/organizational_unit_members", None),
        ("https://api.cronofy.com./v1/organizational_unit_members", None),
        ("https://api.cronofy.com/v1/organizational_unit_members?page=2\r\nX-Evil: 1", None),
        ("\\\\evil.example/v1/organizational_unit_members", None),
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
