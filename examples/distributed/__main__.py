"""
``python -m examples.distributed produce|worker|report``: see the package docstring.

Every command takes ``--redis-url`` (default $REDIS_URL, else redis://127.0.0.1:6379/0) and
``--namespace`` (default ``invites``): one namespace is one batch, its ledger, its queue and
its share of the rate budget.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import os
import signal
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import redis.asyncio
from taskiq.receiver import Receiver

from cronofy_async import AsyncSchedulerAPI, RateLimit
from cronofy_async.redis import RedisLimiter

from .ledger import Invite, Ledger, State
from .worker import DEFAULT_RECLAIM_AFTER, Worker, make_broker, requeue_abandoned


def _limit(text: str) -> int | None:
    return None if text == "none" else int(text)


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    common.add_argument("--namespace", default="invites", help="one batch: ledger, queue, budget")
    parser = argparse.ArgumentParser(prog="python -m examples.distributed")
    commands = parser.add_subparsers(dest="command", required=True)

    produce = commands.add_parser(
        "produce", parents=[common], help="record and enqueue every invite of a CSV"
    )
    produce.add_argument("input", type=Path, help="CSV with an email column (id, display_name)")
    produce.add_argument("--host", required=True, metavar="SUB", help="the account hosting")
    produce.add_argument("--summary", required=True, help="the event summary")

    work = commands.add_parser("worker", parents=[common], help="send queued invites until stopped")
    work.add_argument("--concurrency", type=int, default=10, help="jobs at once per worker")
    work.add_argument("--per-second", type=_limit, default=50, help="shared pace (or none)")
    work.add_argument("--per-minute", type=_limit, default=500, help="shared pace (or none)")
    work.add_argument(
        "--reclaim-after",
        type=float,
        default=DEFAULT_RECLAIM_AFTER,
        help="seconds before a dead worker's jobs are taken over",
    )
    work.add_argument(
        "--lease",
        type=float,
        default=30.0,
        help="seconds before a dead worker's claim reads unknown",
    )
    work.add_argument("--base-url", default=os.environ.get("CRONOFY_BASE_URL"))

    commands.add_parser("report", parents=[common], help="print every invite's outcome")
    return parser


def read_invites(path: Path, host: str, summary: str) -> Iterator[Invite]:
    """One invite per CSV row; its id is the ``id`` column, else the row's line number."""
    with path.open(newline="", encoding="utf-8") as stream:
        for line, row in enumerate(csv.DictReader(stream), start=2):
            yield Invite(
                id=row.get("id") or f"line-{line}",
                email=row["email"].strip(),
                display_name=(row.get("display_name") or "").strip() or None,
                host=host,
                summary=summary,
            )


async def produce(redis_url: str, namespace: str, invites: Iterator[Invite]) -> tuple[int, int]:
    """Record and enqueue each invite not sent yet; return (enqueued, already sent)."""
    broker, task = make_broker(redis_url, namespace)
    client = redis.asyncio.Redis.from_url(redis_url)
    ledger = Ledger(client, namespace)
    enqueued = known = 0
    await broker.startup()
    try:
        for sequence, invite in enumerate(invites):
            # Ledger first: a job whose invite is not in the ledger would have nothing to send.
            if await ledger.add(invite, sequence):
                await task.kiq(invite.id)
                enqueued += 1
            else:
                known += 1
    finally:
        await broker.shutdown()
        await client.aclose()
    return enqueued, known


async def work(
    redis_url: str,
    namespace: str,
    *,
    concurrency: int,
    rate_limit: RateLimit,
    reclaim_after: float,
    base_url: str | None,
    lease: float = 30.0,
) -> None:
    """Run jobs until SIGTERM or SIGINT, then finish the jobs under way and stop."""
    broker, _task = make_broker(
        redis_url, namespace, concurrency=concurrency, reclaim_after=reclaim_after
    )
    client = redis.asyncio.Redis.from_url(redis_url)
    ledger = Ledger(client, namespace, lease=lease)
    async with (
        RedisLimiter(client, rate_limit, namespace=namespace) as limiter,
        AsyncSchedulerAPI(base_url=base_url, rate_limit=limiter, ledger=ledger.keys) as api,
    ):
        broker.state.worker = Worker(api, ledger)
        broker.is_worker_process = True
        await broker.startup()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        requeuer = asyncio.ensure_future(
            requeue_abandoned(client, broker, reclaim_after=reclaim_after)
        )
        receiver = Receiver(broker, max_async_tasks=concurrency, run_startup=False)
        print(f"worker {os.getpid()} ready", flush=True)
        try:
            # Once `stop` is set it takes no new job and returns when those under way are done:
            # the API must not be closed under a job still sending.
            await receiver.listen(stop)
        finally:
            requeuer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await requeuer
            await broker.shutdown()
    await client.aclose()


async def report(redis_url: str, namespace: str) -> Counter[str]:
    """Print one line per invite, then the counts; return the counts."""
    client = redis.asyncio.Redis.from_url(redis_url)
    counts: Counter[str] = Counter()
    try:
        async for invite in Ledger(client, namespace).all():
            counts[invite.state] += 1
            detail = invite.scheduler_request_id or invite.error or ""
            print(f"{invite.id}\t{invite.state}\t{invite.email}\t{detail}")
    finally:
        await client.aclose()
    print("total " + " ".join(f"{state}={counts[state]}" for state in State), flush=True)
    return counts


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; 0 when it did its job (report: when every invite is created)."""
    args = _parser().parse_args(argv)
    if args.command == "produce":
        invites = read_invites(args.input, args.host, args.summary)
        enqueued, known = asyncio.run(produce(args.redis_url, args.namespace, invites))
        print(f"enqueued {enqueued}, already sent {known}")
        return 0
    if args.command == "worker":
        limit = RateLimit(per_second=args.per_second, per_minute=args.per_minute)
        asyncio.run(
            work(
                args.redis_url,
                args.namespace,
                concurrency=args.concurrency,
                rate_limit=limit,
                reclaim_after=args.reclaim_after,
                base_url=args.base_url,
                lease=args.lease,
            )
        )
        return 0
    counts = asyncio.run(report(args.redis_url, args.namespace))
    return 0 if counts[State.CREATED] == sum(counts.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
