"""
A batch script: invite everyone in a CSV (``email,name`` header), report every outcome.

    CRONOFY_CLIENT_SECRET=... python examples/batch_invites.py people.csv acc_HOST_SUB

For resumable runs with a progress bar, the ``cronofy-async batch`` command does this and more;
this shows the library calls underneath.
"""

from __future__ import annotations

import asyncio
import csv
import os
import sys
from collections.abc import Iterator, Sequence

from cronofy_async import AsyncSchedulerAPI, Event, Host, NewSchedulerRequest, Outcome, Recipient


def read_requests(path: str, host_sub: str) -> Iterator[NewSchedulerRequest]:
    """One request per row, read lazily: a file of any size runs in flat memory."""
    with open(path, newline="", encoding="utf-8") as stream:
        for row in csv.DictReader(stream):
            yield NewSchedulerRequest(
                host=Host(sub=host_sub),
                recipients=[Recipient(email=row["email"], display_name=row.get("name") or None)],
                event=Event(summary="Intro call"),
            )


async def invite_all(path: str, host_sub: str) -> int:
    """Invite every row; print one line per outcome; 0 if every invite was created."""
    async with AsyncSchedulerAPI(base_url=os.environ.get("CRONOFY_BASE_URL")) as api:
        report = await api.batch_create_scheduler_requests(read_requests(path, host_sub))
    for result in report.results:
        email = result.request.recipients[0].email
        if result.outcome is Outcome.CREATED and result.scheduler_request:
            print(f"{email}: {result.scheduler_request.select_url}")
        else:
            print(f"{email}: {result.outcome.value} ({result.error})")
    counts = ", ".join(f"{outcome.value} {n}" for outcome, n in report.counts.items())
    print(f"done: {counts}")
    return 0 if report.all_created else 1


def main(argv: Sequence[str]) -> int:
    """Entry point: ``batch_invites.py CSV HOST_SUB``."""
    if len(argv) != 2:
        print(__doc__)
        return 2
    return asyncio.run(invite_all(argv[0], argv[1]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
