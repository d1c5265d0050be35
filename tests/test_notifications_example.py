"""
The notification bot example, run for real: its `main` creates a scheduling request on the
fake Cronofy, serves the bot's receiver under uvicorn on loopback, and has the fake pick a time
through the bot's link, so the fake POSTs the signed notification to the bot.
"""

from __future__ import annotations

import asyncio
import json
import re

import pytest

from cronofy_async._clock import SystemClock
from cronofy_async.notifications import TIME_CHOSEN, verify_signature
from cronofy_async.testing import FakeCronofy, NotificationFaults
from cronofy_async.testing._notify import NotificationSender, build_notification_body
from examples import notification_bot

SECRET = "sk_test_notification_bot"  # main's: the fake signs with it, the bot checks it
PICKED = re.compile(r"doc@evenitron\.com picked a time \(\d{4}-\d\d-\d\d \d\d:\d\d UTC\)\.")


def reactions(run: notification_bot.DemoRun) -> list[str]:
    return [text for _, text in run.said if "picked a time" in text]


def the_invite(run: notification_bot.DemoRun) -> str:
    [(chat, text)] = [said for said in run.said if said[1].startswith("Invite for")]
    assert chat == "#sales"
    return text


async def test_main_invites_and_hears_back_once(capsys: pytest.CaptureFixture[str]) -> None:
    run = await notification_bot.main()
    invite = the_invite(run)
    assert invite.startswith("Invite for doc@evenitron.com: https://app.cronofy.test/s/")
    assert "?correlation_id=" in invite
    assert "&utm_source=bot" in invite
    [reaction] = reactions(run)
    assert PICKED.fullmatch(reaction)
    assert run.pending == {}

    [delivery] = run.deliveries
    assert delivery.status_code == 200
    assert delivery.url.startswith("http://127.0.0.1:")
    assert delivery.url.endswith("/cronofy/notifications")
    assert verify_signature(delivery.body, delivery.signature, SECRET)
    body = json.loads(delivery.body)
    assert body["notification"]["type"] == TIME_CHOSEN
    scheduler = body["scheduling_request"]["event"]["metadata"]["scheduler"]
    correlation_id = invite.split("correlation_id=", 1)[1].split("&", 1)[0]
    assert scheduler == {"correlation_id": correlation_id, "utm_source": "bot"}

    out = capsys.readouterr().out
    assert "[#sales] Invite for doc@evenitron.com" in out
    assert "[#sales] doc@evenitron.com picked a time" in out


async def test_a_repeated_delivery_gets_one_reaction() -> None:
    run = await notification_bot.main(NotificationFaults(repeat=2))
    first, again = run.deliveries
    assert (first.attempt, again.attempt) == (1, 2)
    assert (first.status_code, again.status_code) == (200, 200)
    assert (first.body, first.signature) == (again.body, again.signature)
    assert len(reactions(run)) == 1
    assert run.pending == {}


async def test_a_wrong_signature_is_refused_and_changes_nothing() -> None:
    run = await notification_bot.main(NotificationFaults(bad_signature=True))
    [delivery] = run.deliveries
    assert (delivery.status_code, delivery.signed_correctly) == (401, False)
    assert reactions(run) == []
    assert len(run.pending) == 1  # still waiting for a genuine notification


async def test_a_late_delivery_still_gets_its_reaction(monkeypatch: pytest.MonkeyPatch) -> None:
    waited: list[float] = []

    async def virtual(self: SystemClock, seconds: float) -> None:
        waited.append(seconds)  # the fake's delay, on virtual time
        await asyncio.sleep(0)

    monkeypatch.setattr(SystemClock, "sleep", virtual)
    run = await notification_bot.main(NotificationFaults(delay=90))
    assert waited == [90.0]
    [delivery] = run.deliveries
    assert delivery.status_code == 200
    assert len(reactions(run)) == 1
    assert run.said[-1][1] == reactions(run)[0]  # after the invite, as late as it came


async def test_notifications_the_bot_did_not_ask_for_are_answered_and_ignored() -> None:
    said: list[tuple[str, str]] = []

    async def say(chat: str, text: str) -> None:
        said.append((chat, text))

    async def create(email: str) -> str:
        async with FakeCronofy([SECRET], members=["acc_1"]).api(rate_limit=None) as api:
            return await notification_bot.create_invite(api, email, "acc_1")

    bot = notification_bot.InviteBot(create, say, SECRET)
    await bot.invite("#sales", "doc@evenitron.com")
    async with notification_bot.serving(bot, port=0) as url:
        # A time picked on a request the bot never linked (no correlation id), and a type
        # it does not handle: both answered 200, and neither makes it say anything.
        fake = FakeCronofy([SECRET], members=["acc_1"], rate_limit=None, notification_url=url)
        async with fake.api(rate_limit=None) as api:
            await notification_bot.create_invite(api, "marty@evenitron.com", "acc_1")
        fake.select_slot(fake.scheduling_requests[0].scheduling_request_id)
        async with NotificationSender(url, SECRET) as cronofy:
            cronofy.send(
                build_notification_body(
                    {"scheduling_request_id": "srq_x"},
                    type="something_else",
                    triggered_at="2025-01-19T16:14:11Z",
                    metadata={"correlation_id": next(iter(bot.pending))},
                )
            )
            deliveries = [*await fake.drain_notifications(), *await cronofy.drain()]
    assert [d.status_code for d in deliveries] == [200, 200]
    assert said == []
    assert len(bot.pending) == 1


async def test_serving_refuses_a_port_already_taken() -> None:
    async def never(email: str) -> str:  # pragma: no cover - no invite is made
        raise AssertionError(email)

    async def quiet(chat: str, text: str) -> None:  # pragma: no cover - nothing is said
        raise AssertionError(text)

    bot = notification_bot.InviteBot(never, quiet, SECRET)
    async with notification_bot.serving(bot, port=0) as url:
        taken = int(url.rsplit(":", 1)[1])
        with pytest.raises(OSError, match="in use"):
            async with notification_bot.serving(bot, port=taken):
                pass  # pragma: no cover - never reached
