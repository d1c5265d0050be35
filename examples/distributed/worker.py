"""
The queue and the job: one taskiq task per invite, on a Redis stream, sent under one budget.

taskiq's `RedisStreamBroker` reads with a consumer group: a job is acknowledged only once it
has run. A job left unacknowledged by a dead worker is put back on the queue after
``reclaim_after`` seconds by `requeue_abandoned`, which every worker runs: taskiq-redis 1.2's
own reclaim only runs after a read that returned new jobs, so once the queue is drained a dead
worker's jobs would wait forever. That redelivery is what the ledger guards against.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any, Final

import attrs
import redis.asyncio
import redis.exceptions
from taskiq import AsyncTaskiqDecoratedTask, Context, TaskiqDepends
from taskiq_redis import RedisStreamBroker

from cronofy_async import (
    APIError,
    AsyncSchedulerAPI,
    ClientClosedError,
    CronofyError,
    Event,
    Host,
    LedgerUnavailableError,
    LimiterUnavailableError,
    NewSchedulerRequest,
    Recipient,
)

from .ledger import Ledger, State

__all__ = ["TASK_NAME", "Worker", "make_broker", "requeue_abandoned"]

logger: Final = logging.getLogger("examples.distributed")

TASK_NAME: Final = "cronofy_example.send_invite"
DEFAULT_RECLAIM_AFTER: Final = 600.0
"""
Seconds a job may stay unacknowledged before another worker takes it over. Longer than any
job runs (the pacing wait of a full queue plus a request's timeout), or a live worker's job
is taken over too: the ledger still sends it once (the second job waits for the first).
"""


@attrs.define
class Worker:
    """What a worker process sends with: its API object (on the shared limiter and ledger)."""

    api: AsyncSchedulerAPI
    ledger: Ledger

    async def send(self, invite_id: str) -> str:
        """
        Send one invite, under its id as the idempotency key; return its state.

        The API object's `RedisLedger` claims the key before the pacing wait (inside
        `create_scheduler_request`): a worker killed while its jobs wait for their turn
        leaves them ``sending``, then ``unknown`` after the lease, though never sent.
        """
        invite = await self.ledger.get(invite_id)
        try:
            request = NewSchedulerRequest(
                host=Host(sub=invite.host),
                recipients=[Recipient(email=invite.email, display_name=invite.display_name)],
                event=Event(summary=invite.summary),
            )
            created = await self.api.create_scheduler_request(request, idempotency_key=invite_id)
        except (LimiterUnavailableError, LedgerUnavailableError, ClientClosedError):
            return str(State.NOT_SENT)  # it never left, and the key is free: produce it again
        except APIError as exc:  # OutcomeUnknownError too: an earlier send may have made it
            return str(State.UNKNOWN if exc.outcome_unknown else State.FAILED)
        except CronofyError as exc:  # refused before sending (a bad email, say)
            await self.ledger.refuse(invite_id, str(exc))
            return str(State.FAILED)
        del created  # recorded by the ledger, answer and all
        return str(State.CREATED)


async def send_invite(invite_id: str, context: Annotated[Context, TaskiqDepends()]) -> str:
    """The job: send invite `invite_id` with the worker this process runs."""
    worker: Worker = context.state.worker
    return await worker.send(invite_id)


def make_broker(
    redis_url: str,
    namespace: str,
    *,
    concurrency: int = 10,
    reclaim_after: float = DEFAULT_RECLAIM_AFTER,
) -> tuple[RedisStreamBroker, AsyncTaskiqDecoratedTask[..., Any]]:
    """The broker of `namespace`'s queue, and the task producers enqueue on it."""
    broker = RedisStreamBroker(
        redis_url,
        queue_name=f"cronofy-example:{{{namespace}}}:queue",
        consumer_group_name="cronofy-example-workers",
        consumer_id="0",  # a group made late still sees every job already enqueued
        xread_block=500,
        xread_count=concurrency,  # take no more jobs than run at once
        idle_timeout=int(reclaim_after * 1000),
        # Its reclaim lock is left set by a worker killed while holding it: let it expire.
        unacknowledged_lock_timeout=10.0,
    )
    task = broker.register_task(send_invite, task_name=TASK_NAME)
    return broker, task


_REQUEUE: Final = """
-- KEYS[1] the queue (a stream); ARGV: group, consumer, idle ms, how many at most
local claimed = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], '0-0',
                           'COUNT', ARGV[4])
local moved = 0
for _, entry in ipairs(claimed[2]) do
  if entry[2] then
    redis.call('XADD', KEYS[1], '*', unpack(entry[2]))
    moved = moved + 1
  end
  redis.call('XACK', KEYS[1], ARGV[1], entry[1])
  redis.call('XDEL', KEYS[1], entry[1])
end
return moved
"""


async def requeue_abandoned(
    client: redis.asyncio.Redis, broker: RedisStreamBroker, *, reclaim_after: float
) -> None:
    """
    Put back on the queue, forever, every job unacknowledged for `reclaim_after` seconds.

    One script moves each job atomically (append it anew, acknowledge and delete the old
    entry), so workers running this together never put one job back twice.
    """
    requeue = client.register_script(_REQUEUE)
    args: list[str | int] = [
        broker.consumer_group_name,
        broker.consumer_name,
        int(reclaim_after * 1000),
        100,
    ]
    while True:
        await asyncio.sleep(max(0.25, reclaim_after / 4))
        try:
            moved = await requeue(keys=[broker.queue_name], args=args)
        except (redis.exceptions.RedisError, OSError) as exc:
            logger.warning("could not requeue abandoned jobs: %s", exc)
            continue
        if moved:
            logger.warning("requeued %d jobs a worker left unacknowledged", moved)
