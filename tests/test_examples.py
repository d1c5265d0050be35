"""The examples run against FakeCronofy, so a broken example fails the suite."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, MutableMapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from cronofy_async.testing import FakeCronofy, Fault
from examples import batch_invites, chat_bot, web_app


@pytest.fixture
def fake() -> FakeCronofy:
    return FakeCronofy(members=["acc_1"], rate_limit=None)


@pytest.fixture
async def served(fake: FakeCronofy, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    """The fake on loopback, and the environment the examples read pointing at it."""
    async with fake.serve() as url:
        monkeypatch.setenv("CRONOFY_CLIENT_SECRET", fake.secret)
        monkeypatch.setenv("CRONOFY_BASE_URL", url)
        monkeypatch.setenv("HOST_SUB", "acc_1")
        yield url


@pytest.mark.real_time  # the example's default pacing: a few 21 ms waits
async def test_the_web_app(fake: FakeCronofy, served: str) -> None:
    app = web_app.InviteApp()
    inbox: asyncio.Queue[MutableMapping[str, Any]] = asyncio.Queue()
    outbox: list[MutableMapping[str, Any]] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        outbox.append(message)

    lifespan = asyncio.ensure_future(app({"type": "lifespan"}, inbox.get, send))
    await inbox.put({"type": "lifespan.startup"})
    while not outbox:  # noqa: ASYNC110 - the app answers through `send`
        await asyncio.sleep(0)
    assert outbox[0]["type"] == "lifespan.startup.complete"

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        ok = await client.post("/invite", json={"email": "doc@evenitron.com", "name": "Doc"})
        bad = await client.post("/invite", json={"email": "not-an-email"})
        fake.inject(Fault.DROP_AFTER)
        lost = await client.post("/invite", json={"email": "marty@example.com"})
        missing = await client.get("/nowhere")

    await inbox.put({"type": "lifespan.shutdown"})
    await lifespan
    assert app.api is not None
    assert app.api.closed

    assert ok.status_code == 201
    assert ok.json()["select_url"].startswith("https://")
    assert ok.json()["scheduler_request_id"] == fake.created[0].scheduler_request_id
    assert bad.status_code == 400
    assert bad.json()["field"] == "recipients.email"
    assert lost.status_code == 502
    assert lost.json()["may_exist"] is True
    assert missing.status_code == 404


@pytest.mark.parametrize(
    ("text", "reply"),
    [
        ("/invite doc@evenitron.com Dr Emmet Brown", "Invite sent to doc@evenitron.com: https://"),
        ("/invite not-an-email", "I can't send that: recipients.email: 'not-an-email'"),
        ("/invite", chat_bot.USAGE),
        ("hello", chat_bot.USAGE),
    ],
)
async def test_the_chat_bot(fake: FakeCronofy, text: str, reply: str) -> None:
    async with fake.api() as api:
        answer = await chat_bot.handle_message(api, "acc_1", text)
    assert answer.startswith(reply)


async def test_the_chat_bot_says_when_an_invite_may_exist(fake: FakeCronofy) -> None:
    fake.inject(Fault.ERROR_AFTER_CREATE)
    async with fake.api() as api:
        answer = await chat_bot.handle_message(api, "acc_1", "/invite doc@evenitron.com")
    assert answer.startswith("I'm not sure the invite went out")


@pytest.mark.real_time  # the example's default pacing: 25 requests, 21 ms apart
async def test_the_batch_script(
    fake: FakeCronofy, served: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    people = tmp_path / "people.csv"
    people.write_text(
        "email,name\n" + "".join(f"p{i}@example.com,P {i}\n" for i in range(25)), encoding="utf-8"
    )
    status = await batch_invites.invite_all(str(people), "acc_1")
    out = capsys.readouterr().out
    assert status == 0
    assert fake.created_count == 25
    assert "done: created 25, failed 0, unknown 0, not_sent 0" in out
    assert out.count("https://") == 25


def test_the_batch_script_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert batch_invites.main([]) == 2
    assert "python examples/batch_invites.py" in capsys.readouterr().out
