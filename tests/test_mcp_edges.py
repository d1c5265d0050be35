"""
The MCP server's edges (issue 23, from a hostile review): what an agent sends that the
schema refuses, keys that a retry adds, drops or pads, ids and texts checked before
sending, the right 404 hint, the root logger left alone, and DNS-rebinding protection.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest

from cronofy_async import LedgerState, MemoryLedger
from cronofy_async._cli import _mcp
from cronofy_async.mcp import build_server, invite_request

from .test_mcp import (
    HOST,
    INVITE,
    SECRET,
    answer,
    api_on,
    error_text,
    make_fake,
    session,
)


@pytest.fixture(params=["httpx", "aiohttp"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# -- the schema's refusals ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tool", "arguments", "named"),
    [
        ("create_invite", {**INVITE, "duration_minutes": True}, "duration_minutes"),
        ("create_invite", {**INVITE, "duration_minutes": "30"}, "duration_minutes"),
        ("create_invite", {**INVITE, "duration_minutes": 30.0}, "duration_minutes"),
        ("create_invite", {**INVITE, "duration_minutes": 5000}, "duration_minutes"),
        ("create_invite", {**INVITE, "summary": 12345}, "summary"),
        ("create_invite", {"summary": "x", "host": HOST}, "email"),
        ("list_hosts", {"limit": "5"}, "limit"),
        ("list_hosts", {"limit": True}, "limit"),
        ("get_invites", {"ids": "srq_1"}, "ids"),
    ],
)
async def test_a_schema_refusal_is_one_sentence_quoting_no_value(
    tool: str, arguments: dict[str, Any], named: str
) -> None:
    fake = make_fake()
    # A value an agent pasted in the wrong place is never echoed back.
    arguments = (
        {**arguments, "display_name": f"pasted {SECRET}"} if tool == "create_invite" else arguments
    )
    async with api_on(fake, "httpx") as api, session(api) as client:
        text = error_text(await client.call_tool(tool, arguments))
    assert text.startswith(f"{tool} refused its arguments: {named}")
    assert text.endswith("(nothing was sent).")
    assert "\n" not in text
    assert "input_value" not in text
    assert "pydantic" not in text
    assert SECRET not in text
    assert "5000" not in text
    assert "12345" not in text
    assert fake.received == 0


async def test_an_unknown_tool_is_still_the_sdks_error() -> None:
    async with api_on(make_fake(), "httpx") as api, session(api) as client:
        result = await client.call_tool("no_such_tool", {})
    assert result.is_error


async def test_a_tool_a_user_adds_keeps_the_sdks_handling() -> None:
    async with api_on(make_fake(), "httpx") as api:
        server = build_server(api)

        @server.tool()
        def double(n: int) -> int:
            return 2 * n

        from mcp import Client

        async with Client(server) as client:
            result = await client.call_tool("double", {"n": "x"})
    assert result.is_error
    (content,) = result.content
    assert "Error executing tool double" in getattr(content, "text")  # noqa: B009


# -- keys ------------------------------------------------------------------------------------------


async def test_a_padded_key_is_the_same_key_and_a_blank_one_is_refused(backend: str) -> None:
    fake = make_fake()
    async with api_on(fake, backend) as api, session(api) as client:
        first = answer(await client.call_tool("create_invite", {**INVITE, "idempotency_key": "k1"}))
        again = answer(
            await client.call_tool("create_invite", {**INVITE, "idempotency_key": " k1\n"})
        )
        blank = error_text(
            await client.call_tool("create_invite", {**INVITE, "idempotency_key": "   "})
        )
    assert (first["replayed"], again["replayed"]) == (False, True)
    assert again["idempotency_key"] == "k1"
    assert "idempotency_key" in blank
    assert len(fake.scheduling_requests) == 1


async def test_a_retry_that_adds_a_key_answers_the_first_invite(backend: str) -> None:
    fake = make_fake()
    async with api_on(fake, backend) as api, session(api) as client:
        first = answer(await client.call_tool("create_invite", INVITE))
        keyed = answer(await client.call_tool("create_invite", {**INVITE, "idempotency_key": "x"}))
        keyed_again = answer(
            await client.call_tool("create_invite", {**INVITE, "idempotency_key": "x"})
        )
    assert keyed["replayed"] is True
    assert keyed["scheduling_request_id"] == first["scheduling_request_id"]
    assert keyed["idempotency_key"] == "x"
    assert keyed_again["scheduling_request_id"] == first["scheduling_request_id"]
    assert len(fake.scheduling_requests) == 1


async def test_a_retry_that_drops_its_key_answers_the_first_invite(backend: str) -> None:
    fake = make_fake()
    async with api_on(fake, backend) as api, session(api) as client:
        first = answer(await client.call_tool("create_invite", {**INVITE, "idempotency_key": "x"}))
        keyless = answer(await client.call_tool("create_invite", INVITE))
        # Given back, the key it answered finds the invite again.
        again = answer(
            await client.call_tool(
                "create_invite", {**INVITE, "idempotency_key": keyless["idempotency_key"]}
            )
        )
    assert keyless["replayed"] is True
    assert keyless["scheduling_request_id"] == first["scheduling_request_id"]
    assert again["scheduling_request_id"] == first["scheduling_request_id"]
    assert len(fake.scheduling_requests) == 1


async def test_a_new_key_for_the_same_arguments_is_a_second_deliberate_invite() -> None:
    fake = make_fake()
    async with api_on(fake, "httpx") as api, session(api) as client:
        one = answer(await client.call_tool("create_invite", {**INVITE, "idempotency_key": "a"}))
        two = answer(await client.call_tool("create_invite", {**INVITE, "idempotency_key": "b"}))
    assert one["scheduling_request_id"] != two["scheduling_request_id"]
    assert len(fake.scheduling_requests) == 2


async def test_after_an_unknown_outcome_a_new_key_sends_as_the_answer_says() -> None:
    from cronofy_async import RetryPolicy
    from cronofy_async.testing import Fault

    fake = make_fake()
    fake.inject(Fault.ERROR_AFTER_CREATE)
    async with api_on(fake, "httpx", retry=RetryPolicy(attempts=1)) as api, session(api) as client:
        unknown = error_text(await client.call_tool("create_invite", INVITE))
        sent = answer(await client.call_tool("create_invite", {**INVITE, "idempotency_key": "n"}))
    assert "new idempotency_key" in unknown
    assert sent["replayed"] is False
    assert len(fake.scheduling_requests) == 2


async def test_a_reworded_keyed_call_after_a_keyless_one_is_its_own_invite() -> None:
    fake = make_fake()
    async with api_on(fake, "httpx") as api, session(api) as client:
        answer(await client.call_tool("create_invite", INVITE))
        other = answer(
            await client.call_tool(
                "create_invite", {**INVITE, "description": "Other", "idempotency_key": "x"}
            )
        )
    assert other["replayed"] is False
    assert len(fake.scheduling_requests) == 2


async def test_a_ledger_that_fails_the_link_still_answers_the_created_invite(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from cronofy_async import LedgerUnavailableError

    fake = make_fake()
    ledger = MemoryLedger()
    real_claim = ledger.claim

    async def claim(key: str, fingerprint: str, **options: Any) -> Any:
        if key.startswith("mcp-invite-keyed-"):
            raise LedgerUnavailableError("down for the test")
        return await real_claim(key, fingerprint, **options)

    monkeypatch.setattr(ledger, "claim", claim)
    async with api_on(fake, "httpx", ledger=ledger) as api, session(api) as client:
        made = answer(await client.call_tool("create_invite", {**INVITE, "idempotency_key": "x"}))
        entry = await api.ledger.get("x")
    assert made["replayed"] is False
    assert entry is not None
    assert entry.state is LedgerState.CREATED


# -- what is sent ----------------------------------------------------------------------------------


def test_the_email_is_lowercased_in_ascii_only() -> None:
    # str.lower() would send "i̇nci@" (two code points for İ): an address nobody gave.
    request = invite_request(email=" İNCI@Example.COM ", summary="x", host=HOST)
    assert request.recipients[0].email == "İnci@example.com"


async def test_a_retry_in_other_non_ascii_capitals_conflicts_and_sends_once() -> None:
    fake = make_fake()
    async with api_on(fake, "httpx") as api, session(api) as client:
        answer(await client.call_tool("create_invite", {**INVITE, "email": "Émile@example.com"}))
        text = error_text(
            await client.call_tool("create_invite", {**INVITE, "email": "émile@example.com"})
        )
    assert "nothing was sent" in text
    assert len(fake.scheduling_requests) == 1
    assert fake.scheduling_requests[0].body["recipients"][0]["email"] == "Émile@example.com"


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({**INVITE, "summary": "Lesson\x00"}, "summary"),
        ({**INVITE, "display_name": "Marty\x1b[31m"}, "display_name"),
        ({**INVITE, "description": "a\x07b"}, "description"),
        ({**INVITE, "email": "marty@evenitron.com\x00"}, "email"),
        ({**INVITE, "idempotency_key": "k\x00"}, "idempotency_key"),
    ],
)
async def test_control_characters_are_refused_before_sending(
    arguments: dict[str, Any], named: str
) -> None:
    fake = make_fake()
    async with api_on(fake, "httpx") as api, session(api) as client:
        text = error_text(await client.call_tool("create_invite", arguments))
    assert text.startswith(f"{named}:")
    assert fake.received == 0


async def test_a_description_keeps_its_lines() -> None:
    fake = make_fake()
    async with api_on(fake, "httpx") as api, session(api) as client:
        answer(await client.call_tool("create_invite", {**INVITE, "description": "one\ntwo"}))
    (entry,) = fake.scheduling_requests
    assert entry.body["event"]["description"] == "one\ntwo"


@pytest.mark.parametrize(
    ("tool", "arguments", "named"),
    [
        ("get_invites", {"ids": ["srq_1", " "]}, "ids[1]"),
        ("get_invites", {"ids": ["srq 1"]}, "ids[0]"),
        ("cancel_invite", {"id": "\t"}, "id"),
        ("show_selection_rule", {"id": "sel 1"}, "id"),
    ],
)
async def test_ids_are_checked_before_sending(
    tool: str, arguments: dict[str, Any], named: str
) -> None:
    fake = make_fake()
    async with api_on(fake, "httpx") as api, session(api) as client:
        text = error_text(await client.call_tool(tool, arguments))
    assert text.startswith(f"{named}:")
    assert fake.received == 0


async def test_a_padded_id_is_the_id(backend: str) -> None:
    fake = make_fake()
    async with api_on(fake, backend) as api, session(api) as client:
        made = answer(await client.call_tool("create_invite", INVITE))["scheduling_request_id"]
        found = answer(await client.call_tool("get_invites", {"ids": [f" {made} "]}))
        done = answer(await client.call_tool("cancel_invite", {"id": f"{made}\n"}))
    assert [i["scheduling_request_id"] for i in found["invites"]] == [made]
    assert found["not_found"] == []
    assert done["scheduling_request_id"] == made


async def test_each_404_names_what_was_not_found(backend: str) -> None:
    async with api_on(make_fake(), backend) as api, session(api) as client:
        cancel = error_text(await client.call_tool("cancel_invite", {"id": "srq_nope"}))
        rule = error_text(await client.call_tool("show_selection_rule", {"id": "sel_nope"}))
    assert "no scheduling request" in cancel
    assert "list_hosts" not in cancel
    assert "no selection rule" in rule
    assert "list_hosts" not in rule


# -- logging ---------------------------------------------------------------------------------------


async def test_build_server_leaves_the_root_logger_as_it_found_it() -> None:
    # As in a fresh process: no handler on the root (pytest's own are put back after).
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    root.handlers[:] = []
    try:
        async with api_on(make_fake(), "httpx") as api:
            build_server(api)
        after = (root.handlers[:], root.level)
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    assert after == ([], saved[1])


async def test_no_tool_error_text_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    fake = make_fake()
    async with api_on(fake, "httpx") as api, session(api) as client:
        error_text(await client.call_tool("create_invite", {**INVITE, "email": "who@nowhere"}))
        error_text(await client.call_tool("create_invite", {**INVITE, "duration_minutes": "x"}))
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "who@nowhere" not in logged
    assert "marty@evenitron.com" not in logged
    assert "create_invite failed: PayloadError" in logged


# -- DNS rebinding ---------------------------------------------------------------------------------


async def _status(app: Any, host: str, origin: str | None = None) -> int:
    headers = {"host": host, "accept": "application/json, text/event-stream"}
    if origin is not None:
        headers["origin"] = origin
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        response = await client.post("/mcp", json={}, headers=headers)
    return response.status_code


@pytest.mark.parametrize("bind", ["127.0.0.1:8000", "127.0.0.2:8000", "[::1]:8000"])
async def test_loopback_refuses_a_rebound_host_name(bind: str) -> None:
    address = _mcp.http_address(bind)
    async with api_on(make_fake(), "httpx") as api:
        server = build_server(api)
        app = server.streamable_http_app(
            host=address.host, transport_security=_mcp.transport_security(address, [])
        )
        async with server.session_manager.run():
            assert await _status(app, "evil.example:8000") == 421
            assert await _status(app, "127.0.0.1:8000", origin="http://evil.example") == 403
            assert await _status(app, "localhost:8000") not in (403, 421)


async def test_allowed_hosts_are_the_only_names_served_elsewhere() -> None:
    address = _mcp.http_address("0.0.0.0:8000")
    open_ = _mcp.transport_security(address, [])
    assert open_.enable_dns_rebinding_protection is False  # the bearer token guards it
    named = _mcp.transport_security(address, ["mcp.example.com", "10.0.0.5:8000", "fe80::1"])
    assert named.enable_dns_rebinding_protection
    for host in ("mcp.example.com", "mcp.example.com:8000", "10.0.0.5:8000", "[fe80::1]:8000"):
        assert any(
            allowed == host or (allowed.endswith(":*") and host.startswith(allowed[:-1]))
            for allowed in named.allowed_hosts
        ), host
    assert "10.0.0.5:*" not in named.allowed_hosts


def test_the_allow_host_option_reaches_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    from cronofy_async._cli import main

    served: list[Any] = []

    async def serve(server: Any, address: Any, token: Any, err: Any, allow: Any) -> None:
        served.append(allow)

    monkeypatch.setattr(_mcp, "_serve_http", serve)
    monkeypatch.setenv(_mcp.TOKEN_ENV, "t0ken-for-the-test")
    argv = ["mcp", "--fake", "--http", "0.0.0.0:8765", "--http-allow-host", "mcp.example.com"]
    assert main(argv) == 0
    assert served == [["mcp.example.com"]]


def test_a_loopback_shorthand_is_not_called_reachable(capsys: pytest.CaptureFixture[str]) -> None:
    from cronofy_async._cli import main

    assert main(["mcp", "--fake", "--http", "127.1:8765"]) == 2
    assert "not a loopback address" in capsys.readouterr().err


@pytest.mark.parametrize("email", ["marty\u200b@evenitron.com", "\ufeffmarty@evenitron.com"])
async def test_an_invisible_character_in_an_email_is_refused(email: str) -> None:
    fake = make_fake()
    async with api_on(fake, "httpx") as api, session(api) as client:
        text = error_text(await client.call_tool("create_invite", {**INVITE, "email": email}))
    assert text.startswith("email: holds an invisible character")
    assert fake.received == 0


async def test_a_misspelt_argument_is_refused_not_dropped() -> None:
    fake = make_fake()
    arguments = {**INVITE, "duration": 45, "summry": "x"}
    async with api_on(fake, "httpx") as api, session(api) as client:
        text = error_text(await client.call_tool("create_invite", arguments))
        hosts = error_text(await client.call_tool("list_hosts", {"limt": 5}))
    assert text == (
        "create_invite refused its arguments: duration: is not an argument of this tool; "
        "summry: is not an argument of this tool (nothing was sent)."
    )
    assert "limt" in hosts
    assert "45" not in text
    assert fake.received == 0


# -- a third review: unknown argument names, tools a user replaces, invisible characters ------


async def test_an_argument_name_holding_a_value_is_counted_not_shown() -> None:
    fake = make_fake()
    async with api_on(fake, "httpx") as api, session(api) as client:
        secret = error_text(await client.call_tool("create_invite", {**INVITE, SECRET: 1}))
        email = error_text(
            await client.call_tool("create_invite", {**INVITE, "who@example.com": 1, "durtion": 5})
        )
        odd = error_text(await client.call_tool("create_invite", {**INVITE, "a\nb\x1b[31m": 1}))
        long = error_text(await client.call_tool("create_invite", {**INVITE, "x" * 100_000: 1}))
        many = error_text(
            await client.call_tool("create_invite", {**INVITE, **{f"k{i}": 1 for i in range(2000)}})
        )
    assert "an argument it does not have, whose names are not shown" in secret
    assert "who@example.com" not in email
    assert "durtion: is not an argument of this tool" in email
    assert "1 more it does not have" in email
    for text in (odd, long, many):
        assert "\n" not in text
        assert "\x1b" not in text
        assert len(text) < 600
    assert "1995 more" in many
    assert fake.received == 0


async def test_a_tool_a_user_puts_in_place_of_ours_keeps_the_sdks_handling() -> None:
    from mcp import Client

    async with api_on(make_fake(), "httpx") as api:
        server = build_server(api)
        server.remove_tool("list_hosts")

        @server.tool(name="list_hosts")
        def mine(limit: int = 1) -> int:
            return limit

        async with Client(server) as client:
            result = await client.call_tool("list_hosts", {"anything": 1})
    assert not result.is_error


@pytest.mark.parametrize(
    "email",
    [
        "user@\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645.ir",
        "\u0646\u0627\u0645\u200c\u06a9\u0627\u0631\u0628\u0631@example.ir",
        "\u0915\u094d\u200d\u0937@example.in",
    ],
)
async def test_a_joiner_inside_a_script_that_uses_it_is_kept(email: str) -> None:
    fake = make_fake()
    async with api_on(fake, "httpx") as api, session(api) as client:
        answer(await client.call_tool("create_invite", {**INVITE, "email": email}))
    assert fake.scheduling_requests[0].body["recipients"][0]["email"] == email


@pytest.mark.parametrize(
    "email",
    [
        "mar\u034fty@evenitron.com",
        "marty\ufe0f@evenitron.com",
        "mar\u3164ty@evenitron.com",
        "mar\u2800ty@evenitron.com",
        "mar\u200cty@evenitron.com",  # a joiner between ASCII letters joins nothing
    ],
)
async def test_other_invisible_characters_are_refused(email: str) -> None:
    fake = make_fake()
    async with api_on(fake, "httpx") as api, session(api) as client:
        text = error_text(await client.call_tool("create_invite", {**INVITE, "email": email}))
    assert text.startswith("email: holds an invisible character")
    assert fake.received == 0
