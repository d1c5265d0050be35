"""
A bot that invites someone and hears back when they pick a time: no polling.

1. ``/invite doc@evenitron.com`` in a chat: the bot creates a scheduling request, puts a fresh
   ``correlation_id`` on its select URL (`add_link_metadata`) and remembers who asked.
2. The recipient picks a time; Cronofy POSTs a signed notification to the bot's push
   notification URL, with that ``correlation_id`` in the event's scheduler metadata.
3. The bot's `NotificationReceiver`, served by uvicorn, verifies and parses it; the handler
   tells whoever asked, once: Cronofy may deliver the same notification twice.

How the invite is created and how the bot talks are passed in (`CreateInvite`, `Say`), so the
same class runs behind any chat framework and in the tests, against the fake Cronofy.
Configuration of a real deployment: CRONOFY_CLIENT_SECRET (it signs the notifications too)
and the push notification URL set in Cronofy's dashboard to where `serving` listens.

    python examples/notification_bot.py     # the whole loop against a fake Cronofy (`main`)
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

import attrs
import uvicorn

from cronofy_async import AsyncSchedulerAPI, Event, Host, NewSchedulingRequest, Recipient
from cronofy_async.notifications import (
    TIME_CHOSEN,
    Notification,
    NotificationReceiver,
    add_link_metadata,
)

if TYPE_CHECKING:
    from cronofy_async.testing import Delivery, NotificationFaults

CreateInvite = Callable[[str], Awaitable[str]]
"""Creates a scheduling request for an email address; returns its select URL."""
Say = Callable[[str, str], Awaitable[None]]
"""Posts a message (the second argument) to a chat (the first)."""


@attrs.frozen(kw_only=True)
class Invite:
    """What the bot remembers about an invite until its time is chosen."""

    chat: str
    email: str


class InviteBot:
    """Invites people from a chat, and reports back there when they pick a time."""

    def __init__(self, create_invite: CreateInvite, say: Say, client_secret: str) -> None:
        self._create_invite = create_invite
        self._say = say
        self.pending: dict[str, Invite] = {}
        """Invites whose time is not chosen yet, by correlation id."""
        self.app = NotificationReceiver(client_secret, self.on_notification)
        """The ASGI application to serve at the push notification URL."""

    async def invite(self, chat: str, email: str) -> str:
        """Create the invite, remember who asked, and answer with the link to send."""
        select_url = await self._create_invite(email)
        correlation_id = secrets.token_urlsafe(16)
        self.pending[correlation_id] = Invite(chat=chat, email=email)
        link = add_link_metadata(select_url, correlation_id=correlation_id, utm_source="bot")
        return f"Invite for {email}: {link}"

    async def on_notification(self, notification: Notification) -> None:
        """React to a verified notification; safe to run twice for the same one."""
        if notification.type != TIME_CHOSEN or notification.correlation_id is None:
            return  # another kind of event, or a link that did not come from this bot
        # pop: a second delivery of the same notification finds nothing, and says nothing.
        invite = self.pending.pop(notification.correlation_id, None)
        if invite is None:
            return
        when = notification.triggered_at.strftime("%Y-%m-%d %H:%M UTC")
        await self._say(invite.chat, f"{invite.email} picked a time ({when}).")


@contextlib.asynccontextmanager
async def serving(bot: InviteBot, host: str = "127.0.0.1", port: int = 8080) -> AsyncIterator[str]:
    """Serve the bot's receiver with uvicorn for the duration of the block; yields its URL."""
    # Bound here, not by uvicorn: a port in use is then an OSError, not a SystemExit.
    sock = socket.create_server((host, port))
    config = uvicorn.Config(bot.app, lifespan="on", log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():  # startup failed: say why
                task.result()
                raise RuntimeError("the server stopped during startup")
            await asyncio.sleep(0.01)
        bound_host, bound_port = sock.getsockname()[:2]
        yield f"http://{bound_host}:{bound_port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


async def create_invite(api: AsyncSchedulerAPI, email: str, host: str) -> str:
    """Create a scheduling request for `email`, hosted by `host`; return its select URL."""
    created = await api.create_scheduling_request(
        NewSchedulingRequest(
            host=Host(sub=host),
            recipients=[Recipient(email=email, slot_selector=True)],
            event=Event(summary="Intro call", duration_minutes=30),
        )
    )
    if created.select_url is None:
        raise LookupError(f"Cronofy answered no select URL for {created.scheduling_request_id}")
    return created.select_url


@attrs.frozen(kw_only=True)
class DemoRun:
    """What `main` saw happen."""

    said: list[tuple[str, str]]
    """Every ``(chat, message)`` the bot posted, in order."""
    deliveries: list[Delivery]
    """Every POST of a notification the fake made, with the bot's answer."""
    pending: dict[str, Invite]
    """Invites the bot still waits on, by correlation id."""


async def main(faults: NotificationFaults | None = None) -> DemoRun:
    """
    The whole loop against a fake Cronofy on this machine; `faults` make it misdeliver.

    The bot's receiver is served by uvicorn on 127.0.0.1 (a free port), and the fake is told
    to POST notifications there, signed with the client secret the two share. The bot creates
    a scheduling request and answers with its link, a correlation id on it; the fake, as the
    recipient, picks a time through that link and notifies the bot, which says so once.
    """
    from cronofy_async.testing import FakeCronofy, NotificationFaults

    secret = "sk_test_notification_bot"  # noqa: S105 - the demo's fake secret
    host = "acc_demo_host"
    said: list[tuple[str, str]] = []

    async def say(chat: str, text: str) -> None:
        print(f"[{chat}] {text}")
        said.append((chat, text))

    async def invite_with_the_fake(email: str) -> str:
        return await create_invite(api, email, host)  # `api`: opened below, before any invite

    bot = InviteBot(invite_with_the_fake, say, secret)
    async with serving(bot, port=0) as url:
        fake = FakeCronofy(
            [secret],
            members=[host],
            notification_url=f"{url}/cronofy/notifications",
            notification_faults=faults or NotificationFaults(),
        )
        async with fake.api() as api:
            answer = await bot.invite("#sales", "doc@evenitron.com")
            await say("#sales", answer)
            link = answer.rsplit(" ", 1)[1]
            fake.select_slot(link)  # the recipient follows the link and picks a time
            deliveries = await fake.drain_notifications()
    for delivery in deliveries:
        answered = delivery.status_code or delivery.error
        print(f"(the fake's notification, POST {delivery.attempt}: answered {answered})")
    return DemoRun(said=said, deliveries=deliveries, pending=dict(bot.pending))


if __name__ == "__main__":
    asyncio.run(main())
