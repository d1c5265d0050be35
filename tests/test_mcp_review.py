"""
The MCP server under a second hostile review (issue 23): a retry that drops its key after a
keyed call's outcome was lost, a keyless retry that rewords what the keyed call sent, a
keyless call racing a keyed one in flight, ids that hold the secret, and scopes that are
not HTTP passing the bearer guard.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from cronofy_async import LedgerState, MemoryLedger, RetryPolicy, SQLiteLedger
from cronofy_async._cli import _mcp
from cronofy_async.testing import Fault

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

ONCE = RetryPolicy(attempts=1)


async def _spin(done: Callable[[], bool], turns: int = 2000) -> None:
    """Let the loop run until `done` or `turns` iterations have passed (no clock involved)."""
    for _ in range(turns):
        if done():
            return
        await asyncio.sleep(0)


def _gated(ledger: MemoryLedger, key: str) -> tuple[asyncio.Event, asyncio.Event]:
    """Hold the settling of `key` (sent, not yet recorded) until the gate opens."""
    entered, gate = asyncio.Event(), asyncio.Event()
    real: Callable[..., Awaitable[None]] = ledger.settle

    async def settle(name: str, **options: Any) -> None:
        if name == key:
            entered.set()
            await gate.wait()
        await real(name, **options)

    ledger.settle = settle  # type: ignore[method-assign,assignment]
    return entered, gate


# -- a keyed call whose outcome was lost ----------------------------------------------------------


async def test_a_retry_that_drops_its_key_after_a_lost_answer_sends_nothing() -> None:
    fake = make_fake()
    fake.inject(Fault.ERROR_AFTER_CREATE)
    async with api_on(fake, "httpx", retry=ONCE) as api, session(api) as client:
        lost = error_text(
            await client.call_tool("create_invite", {**INVITE, "idempotency_key": "k"})
        )
        keyless = error_text(await client.call_tool("create_invite", INVITE))
    assert "may exist" in lost
    assert "may already exist" in keyless
    assert len(fake.scheduling_requests) == 1


async def test_after_a_restart_a_keyless_retry_of_a_lost_keyed_call_sends_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ledger.sqlite3"
    fake = make_fake()
    fake.inject(Fault.ERROR_AFTER_CREATE)
    for arguments in ({**INVITE, "idempotency_key": "k"}, INVITE):
        async with (
            SQLiteLedger(path) as ledger,
            api_on(fake, "httpx", ledger=ledger, retry=ONCE) as api,
            session(api) as client,
        ):
            error_text(await client.call_tool("create_invite", arguments))
    assert len(fake.scheduling_requests) == 1


async def test_a_keyed_call_refused_by_cronofy_leaves_no_link_behind() -> None:
    fake = make_fake()
    unknown_host = {**INVITE, "host": "acc_nobody"}
    async with api_on(fake, "httpx") as api, session(api) as client:
        keyed = error_text(
            await client.call_tool("create_invite", {**unknown_host, "idempotency_key": "k"})
        )
        keyless = error_text(await client.call_tool("create_invite", unknown_host))
        # Nothing was created, so nothing stands in the way of the invite done right.
        made = answer(await client.call_tool("create_invite", INVITE))
    assert "may" not in keyed
    assert "may" not in keyless
    assert made["replayed"] is False
    assert len(fake.scheduling_requests) == 1


# -- a keyless retry of a keyed call, reworded ----------------------------------------------


async def test_a_keyless_retry_rewording_a_keyed_invite_is_a_conflict_not_a_second_invite() -> None:
    fake = make_fake()
    async with api_on(fake, "httpx") as api, session(api) as client:
        answer(
            await client.call_tool(
                "create_invite", {**INVITE, "display_name": "Marty", "idempotency_key": "k"}
            )
        )
        reworded = error_text(
            await client.call_tool("create_invite", {**INVITE, "display_name": "Marty McFly"})
        )
    assert "already stands for an invite with other details" in reworded
    assert len(fake.scheduling_requests) == 1


async def test_each_of_two_linked_invites_is_still_found_by_its_own_keyless_retry() -> None:
    fake = make_fake()
    plain = {**INVITE, "display_name": "B"}
    async with api_on(fake, "httpx") as api, session(api) as client:
        first = answer(await client.call_tool("create_invite", plain))
        keyed = answer(
            await client.call_tool(
                "create_invite", {**INVITE, "display_name": "A", "idempotency_key": "k"}
            )
        )
        again_plain = answer(await client.call_tool("create_invite", plain))
        again_keyed = answer(
            await client.call_tool("create_invite", {**INVITE, "display_name": "A"})
        )
    assert keyed["replayed"] is False  # reworded, with a key of its own: a second invite
    assert again_plain["scheduling_request_id"] == first["scheduling_request_id"]
    assert again_keyed["scheduling_request_id"] == keyed["scheduling_request_id"]
    assert (again_plain["replayed"], again_keyed["replayed"]) == (True, True)
    assert len(fake.scheduling_requests) == 2


async def test_a_keyed_invite_sent_after_a_lost_keyless_one_answers_later_keyless_retries() -> None:
    fake = make_fake()
    fake.inject(Fault.ERROR_AFTER_CREATE)
    async with api_on(fake, "httpx", retry=ONCE) as api, session(api) as client:
        error_text(await client.call_tool("create_invite", INVITE))
        # The agent checked, found none, and sent again with a new key as the answer said.
        sent = answer(await client.call_tool("create_invite", {**INVITE, "idempotency_key": "n"}))
        again = answer(await client.call_tool("create_invite", INVITE))
    assert again["scheduling_request_id"] == sent["scheduling_request_id"]
    assert again["replayed"] is True
    assert len(fake.scheduling_requests) == 2


# -- calls in flight at once ----------------------------------------------------------------


async def test_a_keyless_call_while_a_keyed_one_is_in_flight_sends_nothing() -> None:
    fake = make_fake()
    ledger = MemoryLedger()
    entered, gate = _gated(ledger, "k")
    async with api_on(fake, "httpx", ledger=ledger) as api, session(api) as client:
        keyed = asyncio.ensure_future(
            client.call_tool("create_invite", {**INVITE, "idempotency_key": "k"})
        )
        await entered.wait()
        keyless = asyncio.ensure_future(client.call_tool("create_invite", INVITE))
        await _spin(keyless.done)
        sent_meanwhile = len(fake.scheduling_requests)
        gate.set()
        first, second = answer(await keyed), answer(await keyless)
    assert sent_meanwhile == 1
    assert second["scheduling_request_id"] == first["scheduling_request_id"]
    assert second["replayed"] is True
    assert len(fake.scheduling_requests) == 1


async def test_a_keyed_call_while_a_keyless_one_is_in_flight_sends_nothing() -> None:
    fake = make_fake()
    ledger = MemoryLedger()
    derived = _mcp_key(INVITE)
    entered, gate = _gated(ledger, derived)
    async with api_on(fake, "httpx", ledger=ledger) as api, session(api) as client:
        keyless = asyncio.ensure_future(client.call_tool("create_invite", INVITE))
        await entered.wait()
        keyed = asyncio.ensure_future(
            client.call_tool("create_invite", {**INVITE, "idempotency_key": "k"})
        )
        await _spin(keyed.done)
        gate.set()
        first, second = answer(await keyless), answer(await keyed)
    assert second["scheduling_request_id"] == first["scheduling_request_id"]
    assert len(fake.scheduling_requests) == 1


async def test_many_identical_calls_at_once_with_and_without_keys_send_once() -> None:
    fake = make_fake()
    async with (
        SQLiteLedger(":memory:") as ledger,
        api_on(fake, "httpx", ledger=ledger) as api,
        session(api) as client,
    ):
        calls = [
            client.call_tool("create_invite", arguments)
            for arguments in [INVITE, {**INVITE, "idempotency_key": "k"}] * 4
        ]
        answers = [answer(result) for result in await asyncio.gather(*calls)]
    assert len({a["scheduling_request_id"] for a in answers}) == 1
    assert sorted(a["replayed"] for a in answers) == [False] + [True] * 7
    assert len(fake.scheduling_requests) == 1


def _mcp_key(arguments: dict[str, Any]) -> str:
    from cronofy_async.mcp import invite_key, invite_request

    return invite_key(invite_request(**arguments))


async def test_a_cancelled_keyed_call_leaves_a_keyless_retry_nothing_to_send() -> None:
    fake = make_fake()
    ledger = MemoryLedger()
    entered, gate = _gated(ledger, "k")
    async with api_on(fake, "httpx", ledger=ledger) as api:
        from cronofy_async.mcp._keys import send_invite
        from cronofy_async.mcp._tools import invite_request

        request = invite_request(email=INVITE["email"], summary=INVITE["summary"], host=HOST)
        keyed = asyncio.ensure_future(send_invite(api, request, "k"))
        await entered.wait()
        keyed.cancel()
        gate.set()
        with pytest.raises(asyncio.CancelledError):
            await keyed
        entry = await ledger.get("k")
        async with session(api) as client:
            keyless = await client.call_tool("create_invite", INVITE)
    assert entry is not None
    assert entry.state in {LedgerState.CREATED, LedgerState.UNKNOWN}
    if keyless.is_error:
        assert "may already exist" in error_text(keyless)
    else:
        assert answer(keyless)["replayed"] is True
    assert len(fake.scheduling_requests) == 1


# -- the secret ------------------------------------------------------------------------------------


async def test_an_id_holding_the_secret_is_refused_and_never_echoed() -> None:
    fake = make_fake()
    async with api_on(fake, "httpx") as api, session(api) as client:
        results = [
            await client.call_tool("get_invites", {"ids": [f"srq_{SECRET}"]}),
            await client.call_tool("cancel_invite", {"id": SECRET}),
            await client.call_tool("show_selection_rule", {"id": SECRET}),
            await client.call_tool("create_invite", {**INVITE, "summary": f"Key {SECRET}"}),
        ]
    for result in results:
        text = error_text(result)
        assert "client secret" in text
        assert SECRET not in str(result.structured_content)
    assert not fake.scheduling_requests


# -- the bearer guard ----------------------------------------------------------------------------


async def test_the_bearer_guard_refuses_a_websocket_without_the_token() -> None:
    reached: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        reached.append(scope["type"])

    guarded = _mcp.bearer_guard(app, "t0k3n")
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await guarded({"type": "websocket", "path": "/mcp", "headers": []}, receive, send)
    await guarded({"type": "lifespan"}, receive, send)
    assert reached == ["lifespan"]
    assert sent == [{"type": "websocket.close", "code": 1008}]


async def test_a_key_reused_for_other_arguments_links_nothing_to_them() -> None:
    fake = make_fake()
    other = {**INVITE, "summary": "Physics"}
    async with api_on(fake, "httpx") as api, session(api) as client:
        first = answer(await client.call_tool("create_invite", {**INVITE, "idempotency_key": "k"}))
        refused = error_text(
            await client.call_tool("create_invite", {**other, "idempotency_key": "k"})
        )
        keyless = answer(await client.call_tool("create_invite", other))
    assert "already stands for an invite with other details" in refused
    # Never the first invite, which was for another meeting.
    assert keyless["scheduling_request_id"] != first["scheduling_request_id"]
    assert keyless["replayed"] is False
    assert len(fake.scheduling_requests) == 2


@pytest.mark.parametrize("keyed", [False, True])
async def test_a_ledger_down_while_routing_sends_nothing_and_says_so(keyed: bool) -> None:
    from cronofy_async import LedgerUnavailableError

    fake = make_fake()
    ledger = MemoryLedger()

    async def get(key: str) -> Any:
        raise LedgerUnavailableError("down for the test")

    ledger.get = get  # type: ignore[method-assign]
    arguments = {**INVITE, "idempotency_key": "k"} if keyed else INVITE
    async with api_on(fake, "httpx", ledger=ledger) as api, session(api) as client:
        down = error_text(await client.call_tool("create_invite", arguments))
    assert down.startswith("The idempotency ledger could not be used, so nothing was sent")
    assert not fake.scheduling_requests


async def test_a_key_that_is_its_own_arguments_alias_is_sent_not_waited_for() -> None:
    from cronofy_async.mcp._keys import keyed_alias

    # An alias answered before a restart with a memory ledger, given back: a fresh key.
    fake = make_fake()
    alias = keyed_alias(_mcp_key(INVITE))
    ledger = MemoryLedger(wait=0.5)
    async with api_on(fake, "httpx", ledger=ledger) as api, session(api) as client:
        made = await client.call_tool("create_invite", {**INVITE, "idempotency_key": alias})
        entry = await ledger.get(alias)
        again = answer(await client.call_tool("create_invite", INVITE))
    assert answer(made)["replayed"] is False
    assert entry is not None
    assert entry.state is LedgerState.CREATED
    assert again["scheduling_request_id"] == answer(made)["scheduling_request_id"]
    assert len(fake.scheduling_requests) == 1
