"""
A chat-bot command handler: ``/invite <email> [name...]`` answers with the link to pick a slot.

Chat frameworks (Slack, Discord, Matrix...) differ in how messages arrive; what they share is a
coroutine that takes the text and returns the reply, with one AsyncSchedulerAPI for the whole
bot. Every failure becomes a sentence a person can act on.
"""

from __future__ import annotations

from cronofy_async import (
    APIError,
    AsyncSchedulerAPI,
    Event,
    NewSchedulerRequest,
    PayloadError,
    RateLimitError,
    Recipient,
)

USAGE = "usage: /invite <email> [name]"


async def handle_message(api: AsyncSchedulerAPI, host_sub: str, text: str) -> str:
    """The bot's reply to one message; `host_sub` hosts, through impersonation."""
    words = text.split()
    if not words or words[0] != "/invite":
        return USAGE
    if len(words) < 2:
        return USAGE
    email, name = words[1], " ".join(words[2:]) or None
    try:
        created = await api.impersonate(host_sub).create_scheduler_request(
            NewSchedulerRequest(
                recipients=[Recipient(email=email, display_name=name)],
                event=Event(summary=f"Meeting with {name or email}"),
            )
        )
    except PayloadError as error:
        return f"I can't send that: {error}"
    except RateLimitError:
        return "Cronofy is busy right now; try again in a minute."
    except APIError as error:
        if error.outcome_unknown:
            return f"I'm not sure the invite went out ({error}); check before sending it again."
        return f"Cronofy refused the invite: {error}"
    return f"Invite sent to {email}: {created.select_url}"
