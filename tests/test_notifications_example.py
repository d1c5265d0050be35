"""
The notification bot example, served by uvicorn, receiving what the fake Cronofy sends.

Until the fake creates scheduling requests (and ``select_slot`` sends the notification), the
invite is created by a stand-in and the notification is sent by the fake's `NotificationSender`
directly: everything from the select URL on is the real path.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from cronofy_async.testing._notify import (
    NotificationFaults,
    NotificationSender,
    build_notification_body,
    link_metadata_from_url,
)
from examples import notification_bot

SECRET = "sk_test_bot_secret"
SELECT_URL = "https://app.cronofy.test/r/abc123"
WHEN = datetime(2025, 1, 19, 16, 14, 11, tzinfo=UTC)


class Chat:
    def __init__(self) -> None:
        self.said: list[tuple[str, str]] = []

    async def say(self, chat: str, text: str) -> None:
        self.said.append((chat, text))


async def create_invite(email: str) -> str:
    assert email == "doc@evenitron.com"
    return SELECT_URL


def picked(link: str) -> dict[str, Any]:
    """What Cronofy sends once the recipient picks a slot through `link`."""
    request = {"scheduling_request_id": "srq_1", "slot_selection": "complete"}
    return build_notification_body(
        request, triggered_at=WHEN, metadata=link_metadata_from_url(link)
    )


async def test_the_bot_hears_back_once_when_the_time_is_chosen() -> None:
    chat = Chat()
    bot = notification_bot.InviteBot(create_invite, chat.say, SECRET)
    answer = await bot.invite("#sales", "doc@evenitron.com")
    assert answer.startswith(f"Invite for doc@evenitron.com: {SELECT_URL}?correlation_id=")
    link = answer.split(": ", 1)[1]
    assert link_metadata_from_url(link)["utm_source"] == "bot"

    async with notification_bot.serving(bot, port=0) as url:
        assert url.startswith("http://127.0.0.1:")
        async with NotificationSender(url, SECRET) as cronofy:
            cronofy.send(picked(link), faults=NotificationFaults(bad_signature=True))
            cronofy.send(picked(link), faults=NotificationFaults(repeat=2))
            cronofy.send(picked("https://app.cronofy.test/r/other?correlation_id=elsewhere"))
            other = picked(link)
            other["notification"]["type"] = "something_else"
            cronofy.send(other)
            deliveries = await cronofy.drain()

    statuses = sorted((d.notification, d.attempt, d.status_code) for d in deliveries)
    assert statuses == [(0, 1, 401), (1, 1, 200), (1, 2, 200), (2, 1, 200), (3, 1, 200)]
    assert chat.said == [("#sales", "doc@evenitron.com picked a time (2025-01-19 16:14 UTC).")]
    assert bot.pending == {}


async def test_serving_refuses_a_port_already_taken() -> None:
    chat = Chat()
    bot = notification_bot.InviteBot(create_invite, chat.say, SECRET)
    async with notification_bot.serving(bot, port=0) as url:
        taken = int(url.rsplit(":", 1)[1])
        with pytest.raises(OSError, match="in use"):
            async with notification_bot.serving(bot, port=taken):
                pass  # pragma: no cover - never reached
