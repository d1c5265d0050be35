"""The examples run against FakeCronofy, so a broken example fails the suite."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, MutableMapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from cronofy_async.testing import FakeCronofy, Fault
from examples import batch_invites, chat_bot, journey, web_app


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


# -- the scheduling journey: list members, create, select a slot, query, cancel ------------------


async def test_the_journey_runs_end_to_end(
    fake: FakeCronofy, capsys: pytest.CaptureFixture[str]
) -> None:
    async def recipient_picks(created: Any) -> None:
        fake.select_slot(created.scheduling_request_id)

    async with fake.api(rate_limit=None) as api:
        chosen = await journey.journey(api, "marty@example.com", on_invited=recipient_picks)
    assert chosen.slot_selection == "complete"
    [entry] = fake.scheduling_requests
    assert (entry.host, entry.email, entry.cancelled) == ("acc_1", "marty@example.com", True)
    assert entry.body["event"]["duration"] == {"minutes": 30}
    out = capsys.readouterr().out
    assert "host: acc_1@example.com (acc_1)" in out
    assert f"cancelled {entry.scheduling_request_id}" in out


@pytest.mark.real_time  # the live journey keeps the default pacing: a few 21 ms waits
async def test_the_live_journey_waits_for_the_choice_over_loopback(
    fake: FakeCronofy, served: str, capsys: pytest.CaptureFixture[str]
) -> None:
    task = asyncio.ensure_future(journey.live("marty@example.com", every=0))
    while fake.outcomes["scheduling:query"] < 2:  # noqa: ASYNC110 - pending, and asked again
        await asyncio.sleep(0.001)
    assert not task.done()
    fake.select_slot(fake.scheduling_requests[0].scheduling_request_id)
    assert await task == 0
    assert fake.scheduling_requests[0].cancelled
    assert "waiting for their choice" in capsys.readouterr().out


async def test_the_journey_says_when_there_is_no_host_or_no_request() -> None:
    empty = FakeCronofy(rate_limit=None)
    async with empty.api(rate_limit=None) as api:
        with pytest.raises(LookupError, match="Scheduler enabled"):
            await journey.find_host(api)
        with pytest.raises(LookupError, match="srq_gone"):
            await journey.wait_for_choice(api, "srq_gone")


@pytest.mark.real_time  # the demo keeps the default pacing: a few 21 ms waits
def test_the_journey_demo_and_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert journey.main(["--demo"]) == 0
    assert "picked a time (complete)" in capsys.readouterr().out
    assert journey.main([]) == 2
    assert journey.main(["--help"]) == 2
    assert "python examples/journey.py" in capsys.readouterr().out
