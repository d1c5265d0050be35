"""
The whole scheduling journey: find a host, invite, learn the outcome, withdraw.

    CRONOFY_CLIENT_SECRET=... python examples/journey.py marty@example.com
    python examples/journey.py --demo        # against a fake Cronofy, in process

1. list the Organizational Unit's members and pick one who can host;
2. create a scheduling request (BETA) and hand its link to the recipient;
3. ask Cronofy, now and then, whether the recipient picked a time;
4. once they did, cancel the request (here: the meeting was called off).

Every step is safe to retry except the create, which the library never repeats blindly: an
error there says, in ``outcome_unknown``, whether the invite may exist anyway.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable, Sequence

from cronofy_async import (
    AsyncSchedulerAPI,
    Event,
    Host,
    NewSchedulingRequest,
    OrganizationalUnitMember,
    Recipient,
    SchedulingRequest,
)

POLL_SECONDS = 30.0


async def find_host(api: AsyncSchedulerAPI) -> OrganizationalUnitMember:
    """The first member who may host through the Scheduler (every page is read lazily)."""
    async for member in api.iter_organizational_unit_members():
        if member.scheduler_enabled:
            return member
    raise LookupError("no member of the Organizational Unit has the Scheduler enabled")


async def wait_for_choice(
    api: AsyncSchedulerAPI, request_id: str, *, every: float = POLL_SECONDS
) -> SchedulingRequest:
    """Query until the recipient has picked a time (a query is safe to retry, and is)."""
    while True:
        found = await api.query_scheduling_requests([request_id])
        if not found:
            raise LookupError(f"Cronofy no longer knows {request_id}")
        if found[0].slot_selection == "complete":
            return found[0]
        await asyncio.sleep(every)


async def journey(
    api: AsyncSchedulerAPI,
    email: str,
    *,
    on_invited: Callable[[SchedulingRequest], Awaitable[None]],
    every: float = POLL_SECONDS,
) -> SchedulingRequest:
    """Run the four steps for `email`; `on_invited` gets the request to pass the link on."""
    host = await find_host(api)
    print(f"host: {host.email} ({host.sub})")
    created = await api.create_scheduling_request(
        NewSchedulingRequest(
            host=Host(sub=host.sub),
            recipients=[Recipient(email=email, slot_selector=True)],
            event=Event(summary="Intro call", duration_minutes=30, location="Video call"),
        )
    )
    print(f"invited {email}: {created.select_url}")
    await on_invited(created)
    chosen = await wait_for_choice(api, created.scheduling_request_id, every=every)
    print(f"{email} picked a time ({chosen.slot_selection})")
    await api.cancel_scheduling_request(chosen.scheduling_request_id)
    print(f"cancelled {chosen.scheduling_request_id}")
    return chosen


async def demo() -> int:
    """The journey against a fake Cronofy in process, which also plays the recipient."""
    from cronofy_async.testing import FakeCronofy

    fake = FakeCronofy(members={"acc_1": "doc@evenitron.com"})

    async def recipient_picks(created: SchedulingRequest) -> None:
        fake.select_slot(created.scheduling_request_id)

    async with fake.api() as api:
        await journey(api, "marty@evenitron.com", on_invited=recipient_picks)
    return 0 if fake.scheduling_requests[0].cancelled else 1


async def live(email: str, *, every: float = POLL_SECONDS) -> int:
    """The journey against Cronofy: the recipient picks a time through the link."""

    async def tell(created: SchedulingRequest) -> None:
        print("send that link to the recipient; waiting for their choice...")

    async with AsyncSchedulerAPI(base_url=os.environ.get("CRONOFY_BASE_URL")) as api:
        await journey(api, email, on_invited=tell, every=every)
    return 0


def main(argv: Sequence[str]) -> int:
    """Entry point: ``journey.py EMAIL`` or ``journey.py --demo``."""
    if list(argv) == ["--demo"]:
        return asyncio.run(demo())
    if len(argv) != 1 or argv[0].startswith("-"):
        print(__doc__)
        return 2
    return asyncio.run(live(argv[0]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
