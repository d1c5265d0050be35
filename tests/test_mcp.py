"""
The MCP server (issue 23), driven by the MCP SDK's own client: in process against the fake
on both HTTP backends, ``cronofy-async mcp --fake`` over stdio, and the HTTP transport over
loopback with and without its bearer token.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client, StdioServerParameters
from mcp.types import CallToolResult

from cronofy_async import (
    AsyncSchedulerAPI,
    LedgerState,
    MemoryLedger,
    RetryPolicy,
    SQLiteLedger,
)
from cronofy_async._cli import _mcp, main
from cronofy_async.mcp import KEY_PREFIX, build_server, default_ledger_path
from cronofy_async.testing import FakeCronofy, Fault

from .cli_support import cli_env
from .helpers import FakeClock, use_clock

SECRET = "sk_test_mcp_0123456789abcdef"
HOST = "acc_5ba21743f408617d1269ea1e"
TOOLS = {"list_hosts", "create_invite", "get_invites", "cancel_invite", "show_selection_rule"}


def make_fake(**options: Any) -> FakeCronofy:
    options.setdefault("members", {HOST: "doc@evenitron.com", "acc_2": "marty@evenitron.com"})
    options.setdefault("selection_rules", {"sel_1": ("Instructors", 1, ["doc@evenitron.com"])})
    options.setdefault("rate_limit", None)
    return FakeCronofy([SECRET, "sk_test_other_9876543210fedcba"], **options)


@contextlib.asynccontextmanager
async def api_on(
    fake: FakeCronofy, backend: str, **options: Any
) -> AsyncIterator[AsyncSchedulerAPI]:
    """An API on `fake`: in process (httpx) or over loopback (aiohttp); retries on a fake clock."""
    options.setdefault("rate_limit", None)
    options.setdefault("ledger", MemoryLedger())
    if backend == "httpx":
        api = fake.api(**options)
        use_clock(api, FakeClock())
        async with api:
            yield api
        return
    options.setdefault("client_secret", fake.secret)
    async with fake.serve() as url:
        api = AsyncSchedulerAPI(base_url=url, http_backend="aiohttp", **options)
        use_clock(api, FakeClock())
        async with api:
            yield api


@pytest.fixture(params=["httpx", "aiohttp"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@contextlib.asynccontextmanager
async def session(api: AsyncSchedulerAPI) -> AsyncIterator[Client]:
    async with Client(build_server(api)) as client:
        yield client


def answer(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result.content
    assert result.structured_content is not None
    content: dict[str, Any] = result.structured_content
    return content


def error_text(result: CallToolResult) -> str:
    assert result.is_error, result.structured_content
    (content,) = result.content
    text: str = getattr(content, "text")  # noqa: B009 - a TextContent
    assert "Traceback" not in text
    assert SECRET not in text
    return text


INVITE = {"email": "marty@evenitron.com", "summary": "Driving lesson", "host": HOST}


# -- tools/list --------------------------------------------------------------------------------


async def test_tools_list_names_every_tool_with_typed_described_parameters() -> None:
    async with api_on(make_fake(), "httpx") as api, session(api) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert set(tools) == TOOLS
    for tool in tools.values():
        assert tool.description
        assert tool.output_schema is not None, tool.name
        for name, schema in tool.input_schema["properties"].items():
            assert schema.get("description"), (tool.name, name)
            assert "type" in schema or "anyOf" in schema, (tool.name, name)
    create = tools["create_invite"].input_schema
    assert set(create["required"]) == {"email", "summary"}
    assert set(create["properties"]) == {
        "email",
        "summary",
        "host",
        "selection_rule",
        "display_name",
        "duration_minutes",
        "description",
        "idempotency_key",
    }
    assert tools["get_invites"].input_schema["properties"]["ids"]["type"] == "array"
    assert tools["list_hosts"].input_schema["properties"]["limit"]["type"] == "integer"
    hints = {
        name: (t.annotations.read_only_hint, t.annotations.destructive_hint)
        for name, t in tools.items()
        if t.annotations is not None
    }
    assert hints == {
        "list_hosts": (True, False),
        "get_invites": (True, False),
        "show_selection_rule": (True, False),
        "create_invite": (False, False),
        "cancel_invite": (False, True),
    }
    assert all(t.annotations and t.annotations.idempotent_hint for t in tools.values())


# -- list_hosts ----------------------------------------------------------------------------------


async def test_list_hosts_reads_every_page_up_to_the_limit(backend: str) -> None:
    members = {f"acc_{i:04d}": f"host{i}@example.com" for i in range(250)}
    fake = make_fake(members=members, page_size=100)
    async with api_on(fake, backend) as api, session(api) as client:
        everyone = answer(await client.call_tool("list_hosts", {"limit": 1000}))
        some = answer(await client.call_tool("list_hosts", {"limit": 10}))
    assert [h["sub"] for h in everyone["hosts"]] == sorted(members)
    assert everyone["more"] is False
    assert everyone["hosts"][0] == {
        "sub": "acc_0000",
        "email": "host0@example.com",
        "scheduler_enabled": True,
    }
    assert (len(some["hosts"]), some["more"]) == (10, True)


async def test_list_hosts_refuses_a_limit_out_of_range() -> None:
    async with api_on(make_fake(), "httpx") as api, session(api) as client:
        text = error_text(await client.call_tool("list_hosts", {"limit": 0}))
    assert "limit" in text


# -- create_invite -------------------------------------------------------------------------------


async def test_a_retried_create_invite_sends_once_and_says_replayed(backend: str) -> None:
    fake = make_fake()
    async with api_on(fake, backend) as api, session(api) as client:
        first = answer(await client.call_tool("create_invite", INVITE))
        # An agent's retry: another case, other spacing; the same invite.
        retry = {**INVITE, "email": " Marty@Evenitron.COM ", "summary": "Driving  lesson"}
        again = answer(await client.call_tool("create_invite", retry))
    assert first["replayed"] is False
    assert again["replayed"] is True
    assert again["scheduling_request_id"] == first["scheduling_request_id"]
    assert again["select_url"] == first["select_url"]
    assert first["select_url"].startswith("https://app.cronofy.test/")
    assert first["idempotency_key"].startswith(KEY_PREFIX)
    (created,) = fake.scheduling_requests
    assert created.scheduling_request_id == first["scheduling_request_id"]


async def test_create_invite_sends_what_it_was_given() -> None:
    fake = make_fake()
    async with api_on(fake, "httpx") as api, session(api) as client:
        created = answer(
            await client.call_tool(
                "create_invite",
                {
                    **INVITE,
                    "display_name": "Marty McFly",
                    "duration_minutes": 45,
                    "description": "Bring the camera",
                },
            )
        )
        (status,) = answer(
            await client.call_tool("get_invites", {"ids": [created["scheduling_request_id"]]})
        )["invites"]
    (entry,) = fake.scheduling_requests
    body = entry.body
    assert body["host"] == {"sub": HOST}
    assert body["recipients"] == [
        {"email": "marty@evenitron.com", "display_name": "Marty McFly", "slot_selector": True}
    ]
    assert body["event"]["summary"] == "Driving lesson"
    assert body["event"]["description"] == "Bring the camera"
    assert body["event"]["duration"] == {"minutes": 45}
    assert status["slot_selection"] == "pending"


async def test_create_invite_with_a_selection_rule(backend: str) -> None:
    fake = make_fake()
    arguments = {"email": "a@example.com", "summary": "Intro", "selection_rule": "sel_1"}
    async with api_on(fake, backend) as api, session(api) as client:
        answer(await client.call_tool("create_invite", arguments))
    (entry,) = fake.scheduling_requests
    assert entry.body["host_group"] == {"sub": "sel_1"}


async def test_different_invites_are_each_sent() -> None:
    fake = make_fake()
    async with api_on(fake, "httpx") as api, session(api) as client:
        for changed in ({"email": "b@example.com"}, {"summary": "Other"}, {"host": "acc_2"}):
            assert answer(await client.call_tool("create_invite", {**INVITE, **changed}))
        answer(await client.call_tool("create_invite", {**INVITE, "duration_minutes": 15}))
    assert len(fake.scheduling_requests) == 4


async def test_an_explicit_key_decides_what_is_the_same_invite(backend: str) -> None:
    fake = make_fake()
    async with api_on(fake, backend) as api, session(api) as client:
        one = answer(await client.call_tool("create_invite", {**INVITE, "idempotency_key": "a"}))
        two = answer(await client.call_tool("create_invite", {**INVITE, "idempotency_key": "b"}))
        conflict = error_text(
            await client.call_tool(
                "create_invite", {**INVITE, "summary": "Other", "idempotency_key": "a"}
            )
        )
    assert one["scheduling_request_id"] != two["scheduling_request_id"]
    assert one["idempotency_key"] == "a"
    assert len(fake.scheduling_requests) == 2
    assert "'a'" in conflict
    assert "nothing was sent" in conflict


async def test_a_reworded_retry_is_a_conflict_not_a_second_invite() -> None:
    fake = make_fake()
    async with api_on(fake, "httpx") as api, session(api) as client:
        answer(await client.call_tool("create_invite", {**INVITE, "display_name": "Marty"}))
        text = error_text(
            await client.call_tool("create_invite", {**INVITE, "display_name": "Marty McFly"})
        )
    assert len(fake.scheduling_requests) == 1
    assert "nothing was sent" in text
    assert "new idempotency_key" in text


async def test_an_unknown_outcome_is_never_sent_again(backend: str) -> None:
    fake = make_fake()
    fake.inject(Fault.ERROR_AFTER_CREATE)  # created, then a 500: the client cannot know
    policy = RetryPolicy(attempts=1)
    async with api_on(fake, backend, retry=policy) as api, session(api) as client:
        first = error_text(await client.call_tool("create_invite", INVITE))
        received = fake.received
        again = error_text(await client.call_tool("create_invite", INVITE))
        entry = await api.ledger.get(_key_of(INVITE))
    assert "may exist" in first
    assert "may already exist" in again
    assert "nothing was sent" in again
    assert "dashboard" in again  # how to check
    assert fake.received == received  # the retry sent nothing
    assert len(fake.scheduling_requests) == 1
    assert entry is not None
    assert entry.state is LedgerState.UNKNOWN


def _key_of(arguments: dict[str, Any]) -> str:
    from cronofy_async.mcp import invite_key, invite_request

    return invite_key(invite_request(**arguments))


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({**INVITE, "email": "not-an-email"}, "email"),
        ({**INVITE, "selection_rule": "sel_1"}, "exactly one of host"),
        ({"email": "a@example.com", "summary": "x"}, "exactly one of host"),
        ({**INVITE, "summary": "   "}, "summary"),
        ({**INVITE, "duration_minutes": 0}, "duration_minutes"),
        ({**INVITE, "display_name": ""}, "display_name"),
        ({**INVITE, "idempotency_key": "k" * 256}, "idempotency_key"),
        ({**INVITE, "host": "not a sub/.."}, "host"),
        ({"summary": "x", "host": HOST}, "email"),
    ],
)
async def test_bad_arguments_name_the_argument_and_send_nothing(
    arguments: dict[str, Any], named: str
) -> None:
    fake = make_fake()
    async with api_on(fake, "httpx") as api, session(api) as client:
        text = error_text(await client.call_tool("create_invite", arguments))
    assert named in text
    assert fake.received == 0


async def test_a_refused_secret_says_to_check_the_secret(backend: str) -> None:
    fake = make_fake()
    wrong = "sk_test_wrong_0123456789abcdef"
    async with api_on(fake, backend, client_secret=wrong) as api, session(api) as client:
        text = error_text(await client.call_tool("create_invite", INVITE))
        listed = error_text(await client.call_tool("list_hosts", {}))
    assert "401" in text
    assert "secret" in text
    assert wrong not in text
    assert wrong not in listed
    assert not fake.scheduling_requests


async def test_a_429_says_when_to_retry(backend: str) -> None:
    fake = make_fake()
    fake.inject(Fault.RATE_LIMITED, times=2)  # each attempt of the first call
    policy = RetryPolicy(attempts=2)
    async with api_on(fake, backend, retry=policy) as api, session(api) as client:
        text = error_text(await client.call_tool("create_invite", INVITE))
        # The key is free again: nothing was created, so a later call sends.
        created = answer(await client.call_tool("create_invite", INVITE))
    assert "429" in text
    assert "retry in" in text
    assert created["replayed"] is False
    assert len(fake.scheduling_requests) == 1


async def test_an_unreachable_cronofy_is_one_sentence() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    api = AsyncSchedulerAPI(
        SECRET, base_url=f"http://127.0.0.1:{port}", rate_limit=None, retry=RetryPolicy(attempts=1)
    )
    async with api, session(api) as client:
        text = error_text(await client.call_tool("create_invite", INVITE))
    assert "Try again" in text
    assert "\n" not in text


async def test_an_unexpected_failure_tells_only_its_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    async with api_on(make_fake(), "httpx") as api, session(api) as client:

        async def broken(self: Any, ids: Any) -> Any:
            raise RuntimeError(f"internal detail {SECRET}")

        monkeypatch.setattr(AsyncSchedulerAPI, "query_scheduling_requests", broken)
        text = error_text(await client.call_tool("get_invites", {"ids": ["srq_1"]}))
    assert text.endswith("Unexpected error (RuntimeError); nothing more is known.")
    assert "internal detail" not in text


# -- get_invites, cancel_invite, show_selection_rule ----------------------------------------------


async def test_get_invites_says_what_became_of_each(backend: str) -> None:
    fake = make_fake()
    async with api_on(fake, backend) as api, session(api) as client:
        one = answer(await client.call_tool("create_invite", INVITE))["scheduling_request_id"]
        two = answer(await client.call_tool("create_invite", {**INVITE, "email": "b@example.com"}))[
            "scheduling_request_id"
        ]
        fake.select_slot(one)
        found = answer(await client.call_tool("get_invites", {"ids": [one, two, "srq_unknown"]}))
    states = {i["scheduling_request_id"]: i["slot_selection"] for i in found["invites"]}
    assert states == {one: "complete", two: "pending"}
    assert found["not_found"] == ["srq_unknown"]
    for invite in found["invites"]:
        assert invite["select_url"]
        assert invite["dashboard_url"]


async def test_get_invites_refuses_no_ids() -> None:
    async with api_on(make_fake(), "httpx") as api, session(api) as client:
        assert "ids" in error_text(await client.call_tool("get_invites", {"ids": []}))


async def test_cancel_invite_cancels_and_an_unknown_id_is_404(backend: str) -> None:
    fake = make_fake()
    async with api_on(fake, backend) as api, session(api) as client:
        made = answer(await client.call_tool("create_invite", INVITE))["scheduling_request_id"]
        done = answer(await client.call_tool("cancel_invite", {"id": made}))
        missing = error_text(await client.call_tool("cancel_invite", {"id": "srq_nope"}))
        bad = error_text(await client.call_tool("cancel_invite", {"id": ""}))
    assert done == {"scheduling_request_id": made, "cancelled": True}
    (entry,) = fake.scheduling_requests
    assert entry.cancelled
    assert "404" in missing
    assert "id" in bad


async def test_show_selection_rule(backend: str) -> None:
    async with api_on(make_fake(), backend) as api, session(api) as client:
        rule = answer(await client.call_tool("show_selection_rule", {"id": "sel_1"}))
        missing = error_text(await client.call_tool("show_selection_rule", {"id": "sel_none"}))
        bad = error_text(await client.call_tool("show_selection_rule", {"id": "../x"}))
    assert rule["id"] == "sel_1"
    assert rule["name"] == "Instructors"
    assert rule["required"] == 1
    assert [m["email"] for m in rule["members"]] == ["doc@evenitron.com"]
    assert "404" in missing
    assert bad.startswith("id:")


# -- the server's life -----------------------------------------------------------------------------


async def test_the_ledger_file_answers_a_retry_after_a_restart(tmp_path: Path) -> None:
    fake = make_fake()
    path = tmp_path / "mcp-ledger.sqlite3"
    answers = []
    for _ in range(2):  # two server lives, one file
        async with (
            SQLiteLedger(path) as ledger,
            api_on(fake, "httpx", ledger=ledger) as api,
            session(api) as client,
        ):
            answers.append(answer(await client.call_tool("create_invite", INVITE)))
    assert [a["replayed"] for a in answers] == [False, True]
    assert len(fake.scheduling_requests) == 1


async def test_build_server_refuses_what_is_not_an_api_and_never_closes_it() -> None:
    with pytest.raises(TypeError, match="AsyncSchedulerAPI"):
        build_server("not an api")  # type: ignore[arg-type]
    async with api_on(make_fake(), "httpx") as api:
        async with session(api) as client:
            await client.call_tool("list_hosts", {})
        assert not api.closed


def test_the_default_ledger_is_in_the_state_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert default_ledger_path() == tmp_path / "cronofy-async" / "mcp-ledger.sqlite3"
    monkeypatch.setenv("XDG_STATE_HOME", "relative/ignored")
    assert default_ledger_path() == Path.home() / ".local/state/cronofy-async/mcp-ledger.sqlite3"


def test_the_command_keeps_its_keys_in_the_state_directory_and_the_fakes_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    parser = _parser()
    real = _mcp._ledger(parser.parse_args([]))
    assert isinstance(real, SQLiteLedger)
    assert real.path == tmp_path / "cronofy-async" / "mcp-ledger.sqlite3"
    assert isinstance(_mcp._ledger(parser.parse_args(["--fake"])), MemoryLedger)
    chosen = _mcp._ledger(parser.parse_args(["--ledger", str(tmp_path / "x.db")]))
    assert isinstance(chosen, SQLiteLedger)
    assert chosen.path == tmp_path / "x.db"


def _parser() -> Any:
    from cronofy_async._cli._args import Parser

    parser = Parser(prog="cronofy-async mcp")
    _mcp.add_arguments(parser)
    return parser


@pytest.mark.parametrize(
    ("text", "host", "port", "loopback"),
    [
        ("8000", "127.0.0.1", 8000, True),
        (":8001", "127.0.0.1", 8001, True),
        ("localhost:8002", "localhost", 8002, True),
        ("[::1]:8003", "::1", 8003, True),
        ("0.0.0.0:8004", "0.0.0.0", 8004, False),
        ("10.1.2.3:8005", "10.1.2.3", 8005, False),
    ],
)
def test_http_addresses(text: str, host: str, port: int, loopback: bool) -> None:
    address = _mcp.http_address(text)
    assert (address.host, address.port, address.loopback) == (host, port, loopback)


@pytest.mark.parametrize("text", ["x", "1.2.3.4:", "1.2.3.4:99999", "a b:1"])
def test_a_bad_http_address_is_refused(text: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["mcp", "--http", text])
    assert exit_.value.code == 2
    assert "HOST:PORT" in capsys.readouterr().err


def test_a_reachable_address_without_a_token_is_refused(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(_mcp.TOKEN_ENV, raising=False)
    assert main(["mcp", "--fake", "--http", "0.0.0.0:8765"]) == 2
    err = capsys.readouterr().err
    assert "needs a bearer token" in err
    assert _mcp.TOKEN_ENV in err


def test_a_reachable_address_with_a_token_is_served_with_a_warning(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    served: list[Any] = []

    async def serve(server: Any, address: Any, token: Any, err: Any, allow: Any) -> None:
        served.append((address.host, token))

    monkeypatch.setattr(_mcp, "_serve_http", serve)
    monkeypatch.setenv(_mcp.TOKEN_ENV, "t0ken-for-the-test")
    assert main(["mcp", "--fake", "--http", "0.0.0.0:8765"]) == 0
    assert served == [("0.0.0.0", "t0ken-for-the-test")]
    err = capsys.readouterr().err
    assert "warning" in err
    assert "reachable from other machines" in err
    assert "t0ken-for-the-test" not in err


def test_the_api_is_closed_when_the_server_stops(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[AsyncSchedulerAPI] = []
    real = _mcp._api

    @contextlib.asynccontextmanager
    async def recording(args: Any) -> AsyncIterator[Any]:
        async with real(args) as (api, where):
            seen.append(api)
            yield api, where

    async def stdio(self: Any) -> None:
        assert not seen[0].closed

    monkeypatch.setattr(_mcp, "_api", recording)
    monkeypatch.setattr("mcp.server.mcpserver.MCPServer.run_stdio_async", stdio)
    assert main(["mcp", "--fake"]) == 0
    assert seen[0].closed


def test_a_secret_on_the_command_line_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["mcp", "--client-secret", SECRET])
    assert SECRET not in capsys.readouterr().err


def test_no_secret_is_a_clear_refusal(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("CRONOFY_CLIENT_SECRET", raising=False)
    assert main(["mcp", "--ledger", str(tmp_path / "l.db")]) == 2
    assert "CRONOFY_CLIENT_SECRET" in capsys.readouterr().err


# -- over stdio and HTTP, as a subprocess ---------------------------------------------------------


def _env(**more: str) -> dict[str, str]:
    env = cli_env(**more)
    env.pop("CRONOFY_CLIENT_SECRET", None)
    return env


async def test_cronofy_async_mcp_fake_over_stdio(tmp_path: Path) -> None:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "cronofy_async._cli", "mcp", "--fake"],
        env=_env(XDG_STATE_HOME=str(tmp_path)),
    )
    async with Client(params) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        hosts = answer(await client.call_tool("list_hosts", {}))["hosts"]
        arguments = {"email": "a@example.com", "summary": "Intro", "host": hosts[0]["sub"]}
        first = answer(await client.call_tool("create_invite", arguments))
        again = answer(await client.call_tool("create_invite", arguments))
        invites = answer(
            await client.call_tool("get_invites", {"ids": [first["scheduling_request_id"]]})
        )
    assert names == TOOLS
    assert (first["replayed"], again["replayed"]) == (False, True)
    assert again["scheduling_request_id"] == first["scheduling_request_id"]
    assert len(invites["invites"]) == 1
    assert not (tmp_path / "cronofy-async").exists()  # the fake's keys never touch the file


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def http_server(*extra: str, env: dict[str, str]) -> AsyncIterator[str]:
    port = _free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cronofy_async._cli",
        "mcp",
        "--fake",
        "--http",
        f"127.0.0.1:{port}",
        *extra,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        async with httpx.AsyncClient() as probe:
            for _ in range(200):
                try:
                    await probe.get(url)
                    break
                except httpx.TransportError:
                    assert process.returncode is None, await process.stderr.read()  # type: ignore[union-attr]
                    await asyncio.sleep(0.05)
            else:
                raise AssertionError("the MCP server did not start listening")
        yield url
    finally:
        process.terminate()
        out, _ = await process.communicate()
        assert out == b""  # stdout is never written, even over HTTP


@contextlib.asynccontextmanager
async def _client_with(url: str, token: str) -> AsyncIterator[Client]:
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    # The SDK never closes a client it was given: this one is closed here.
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx2.AsyncClient(headers=headers) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        yield client


async def test_http_on_loopback_without_a_token(tmp_path: Path) -> None:
    env = _env(XDG_STATE_HOME=str(tmp_path))
    async with http_server(env=env) as url, Client(url) as client:
        arguments = {"email": "a@example.com", "summary": "Intro", "host": HOST}
        first = answer(await client.call_tool("create_invite", arguments))
        again = answer(await client.call_tool("create_invite", arguments))
    assert (first["replayed"], again["replayed"]) == (False, True)


async def test_http_with_a_token_refuses_every_request_without_it(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-mcp-token-for-tests\n")
    env = _env(XDG_STATE_HOME=str(tmp_path))
    async with http_server("--http-token-file", str(token_file), env=env) as url:
        async with httpx.AsyncClient() as raw:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
                refused = await raw.post(url, json={}, headers=headers)
                assert refused.status_code == 401
                assert "s3cret" not in refused.text
        async with _client_with(url, "s3cret-mcp-token-for-tests") as client:
            tools = await client.list_tools()
    assert {t.name for t in tools.tools} == TOOLS


async def test_http_token_from_the_environment(tmp_path: Path) -> None:
    env = _env(XDG_STATE_HOME=str(tmp_path), CRONOFY_MCP_TOKEN="env-token-0123")
    async with http_server(env=env) as url:
        async with httpx.AsyncClient() as raw:
            assert (await raw.post(url, json={})).status_code == 401
        async with _client_with(url, "env-token-0123") as client:
            assert answer(await client.call_tool("list_hosts", {}))["hosts"]


async def test_the_bearer_guard_checks_every_request_in_process() -> None:
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    guarded = _mcp.bearer_guard(app, "t0k3n")
    transport = httpx.ASGITransport(app=guarded)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        for headers in (
            {},
            {"Authorization": "Bearer t0k3"},
            {"Authorization": "Bearer t0k3n "},
            {"Authorization": "bearer t0k3n"},
            {"Authorization": "t0k3n"},
        ):
            for method in ("GET", "POST", "DELETE"):
                refused = await client.request(method, "/mcp", headers=headers)
                assert refused.status_code == 401
                assert refused.headers["www-authenticate"].startswith("Bearer")
        allowed = await client.get("/anything", headers={"Authorization": "Bearer t0k3n"})
    assert allowed.status_code == 200
    assert seen == ["/anything"]


@pytest.mark.parametrize(
    ("content", "said"), [(None, "cannot read it"), ("  \n", "the file is empty")]
)
def test_an_unusable_token_file_is_refused(
    content: str | None, said: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "token"
    if content is not None:
        path.write_text(content)
    assert main(["mcp", "--fake", "--http", "8765", "--http-token-file", str(path)]) == 2
    assert f"--http-token-file: {said}" in capsys.readouterr().err


def test_fake_with_a_real_destination_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["mcp", "--fake", "--data-center", "uk"]) == 2
    assert "--fake serves in process" in capsys.readouterr().err
