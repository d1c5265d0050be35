"""examples/distributed: worker processes on a taskiq queue, one budget, a ledger in Redis."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import pytest
import redis.asyncio

from cronofy_async import (
    AsyncSchedulerAPI,
    Event,
    Host,
    LedgerState,
    NewSchedulerRequest,
    RateLimit,
    Recipient,
)
from cronofy_async._idempotency import fingerprint
from cronofy_async._request import create_operation
from cronofy_async.redis import RedisLimiter
from cronofy_async.testing import FakeCronofy, Fault, Faults
from cronofy_async.testing._fake import IN_PROCESS_URL
from examples.distributed.__main__ import main, produce, read_invites, report
from examples.distributed.ledger import FINAL, Invite, Ledger, State
from examples.distributed.worker import Worker

ROOT = Path(__file__).resolve().parent.parent
SECRET = "sk_distributed_test"


def invites(count: int, prefix: str = "inv") -> list[Invite]:
    return [
        Invite(id=f"{prefix}-{i:03}", email=f"{prefix}{i}@example.com", host="acc_1", summary="Hi")
        for i in range(count)
    ]


@pytest.fixture
async def ledger(redis_client: redis.asyncio.Redis, redis_namespace: str) -> Ledger:
    return Ledger(redis_client, redis_namespace, lease=3.0)


# -- the ledger ------------------------------------------------------------------------------


async def test_a_redelivered_job_finds_sending_then_unknown_and_never_sends(
    redis_client: redis.asyncio.Redis, redis_namespace: str
) -> None:
    ledger = Ledger(redis_client, redis_namespace, lease=0.5)
    [invite] = invites(1)
    assert await ledger.add(invite, 0)
    fake = FakeCronofy([SECRET], members=["acc_1"], rate_limit=None)
    # The first worker claimed it and died mid-send: its claim is left in the shared ledger.
    request = NewSchedulerRequest(
        host=Host(sub="acc_1"),
        recipients=[Recipient(email=invite.email)],
        event=Event(summary="Hi"),
    )
    print_ = fingerprint(
        create_operation(request, impersonating=False), base_url=IN_PROCESS_URL, impersonate=None
    )
    claim = await ledger.keys.claim(invite.id, print_, owner="12345-dead")
    assert claim.held_by("12345-dead")
    assert (await ledger.get(invite.id)).state is State.SENDING
    async with fake.api(rate_limit=None, retry=None, ledger=ledger.keys) as api:
        # The redelivered job waits for the dead holder's lease, then finds it unknown.
        assert await Worker(api, ledger).send(invite.id) == State.UNKNOWN
    assert (await ledger.get(invite.id)).state is State.UNKNOWN
    assert fake.received == 0


async def test_producing_twice_enqueues_only_what_never_left(
    redis_client: redis.asyncio.Redis, redis_namespace: str
) -> None:
    ledger = Ledger(redis_client, redis_namespace)
    first, second = invites(2)
    assert await ledger.add(first, 0)
    assert await ledger.add(second, 1)
    fake = FakeCronofy([SECRET], members=["acc_1"], rate_limit=None)
    async with fake.api(rate_limit=None, ledger=ledger.keys) as api:
        assert await Worker(api, ledger).send(first.id) == State.CREATED
    assert not await ledger.add(first, 0)  # created: never enqueued again
    assert await ledger.add(second, 1)  # never sent: produced again
    assert [i.state async for i in ledger.all()] == [State.CREATED, State.QUEUED]


@pytest.mark.parametrize(
    ("fault", "email", "state", "created"),
    [
        (None, "doc@example.com", State.CREATED, 1),
        (Fault.DROP_AFTER, "doc@example.com", State.UNKNOWN, 1),
        (Fault.UNAVAILABLE, "doc@example.com", State.UNKNOWN, 0),
        (None, "not-an-email", State.FAILED, 0),
    ],
)
async def test_a_worker_records_each_outcome(
    ledger: Ledger, fault: Fault | None, email: str, state: State, created: int
) -> None:
    fake = FakeCronofy([SECRET], members=["acc_1"], rate_limit=None)
    if fault is not None:
        fake.inject(fault)
    invite = Invite(id="x", email=email, host="acc_1", summary="Hi")
    await ledger.add(invite, 0)
    async with fake.api(rate_limit=None, retry=None, ledger=ledger.keys) as api:
        assert await Worker(api, ledger).send("x") == state
        assert await Worker(api, ledger).send("x") == state  # done: never sent again
    recorded = await ledger.get("x")
    assert recorded.state is state
    assert fake.created_count == created
    if state is State.CREATED:
        assert recorded.scheduler_request_id == fake.created[0].scheduler_request_id
    else:
        assert recorded.error


async def test_a_worker_whose_limiter_is_down_sends_nothing(ledger: Ledger) -> None:
    fake = FakeCronofy([SECRET], members=["acc_1"], rate_limit=None)
    await ledger.add(invites(1)[0], 0)
    limiter = RedisLimiter("redis://127.0.0.1:1/0", namespace="down", timeout=1)
    async with fake.api(rate_limit=limiter, ledger=ledger.keys) as api:
        assert await Worker(api, ledger).send("inv-000") == State.NOT_SENT
    assert fake.received == 0
    assert await ledger.add(invites(1)[0], 0)  # safe to produce again


# -- N worker processes, one killed ----------------------------------------------------------


async def _until(condition: str, check: object, deadline: float = 90.0) -> None:
    started = time.monotonic()
    while not await check():  # type: ignore[operator]
        assert time.monotonic() - started < deadline, f"gave up waiting until {condition}"
        await asyncio.sleep(0.05)


async def _states(ledger: Ledger) -> dict[str, State]:
    return {invite.id: invite.state async for invite in ledger.all()}


@pytest.fixture
def workers_env() -> dict[str, str]:
    return {**os.environ, "CRONOFY_CLIENT_SECRET": SECRET, "PYTHONPATH": str(ROOT)}


@pytest.mark.real_time  # real processes, paced for real against a fake counting arrivals
async def test_a_worker_killed_mid_batch_leaves_no_duplicate_and_no_invite_unaccounted(
    redis_url: str, redis_namespace: str, ledger: Ledger, workers_env: dict[str, str]
) -> None:
    count, concurrency = 60, 5
    # A third of the creates are answered 3 s late: created at the fake, still unanswered.
    fake = FakeCronofy(
        [SECRET],
        members=["acc_1"],
        rate_limit=RateLimit(per_second=40, per_minute=None),
        faults=Faults(seed=7, slow=0.3, slow_seconds=3.0),
    )
    async with fake.serve() as url:
        assert await produce(redis_url, redis_namespace, iter(invites(count))) == (count, 0)
        command = [
            sys.executable, "-m", "examples.distributed", "worker", "--redis-url", redis_url,
            "--namespace", redis_namespace, "--concurrency", str(concurrency),
            "--per-second", "40", "--per-minute", "none", "--reclaim-after", "5", "--lease", "3",
            "--base-url", url,
        ]  # fmt: skip
        workers = [
            await asyncio.create_subprocess_exec(
                *command, env=workers_env, cwd=ROOT, stdout=-3, stderr=-3
            )
            for _ in range(3)
        ]
        victim = workers[0]
        cut_off: list[Invite] = []
        try:

            async def victim_is_mid_send() -> bool:
                # An invite the victim is sending that the fake has already created: killing
                # now leaves one that exists but whose sender never learns it.
                created = {entry.email for entry in fake.created}
                cut_off[:] = [
                    invite
                    async for invite in ledger.all()
                    if invite.state is State.SENDING
                    and (invite.owner or "").startswith(f"{victim.pid}-")
                    and invite.email in created
                ]
                return bool(cut_off)

            await _until("the victim is mid-send", victim_is_mid_send)
            victim.kill()  # SIGKILL: its jobs in flight are cut off
            await victim.wait()
            await victim_is_mid_send()  # what it was still sending when it died
            assert cut_off

            async def all_final() -> bool:
                states = await _states(ledger)
                return len(states) == count and set(states.values()) <= FINAL

            await _until("every invite is final", all_final)
        finally:
            for worker in workers[1:]:
                worker.terminate()
                await worker.wait()

    assert fake.duplicates() == {}  # the redelivered jobs sent nothing again
    recorded = {invite.id: invite async for invite in ledger.all()}
    assert len(recorded) == count
    for invite in cut_off:
        assert recorded[invite.id].state is State.UNKNOWN
    sent = {entry.email: entry.scheduler_request_id for entry in fake.created}
    unknown = [i for i in recorded.values() if i.state is State.UNKNOWN]
    for invite in recorded.values():
        assert invite.state in (State.CREATED, State.UNKNOWN)
        if invite.state is State.CREATED:
            assert sent[invite.email] == invite.scheduler_request_id
    # Only what the dead worker was sending can be unknown (no job of a live worker outlasts
    # the reclaim delay here): it held at most `concurrency`.
    assert len(unknown) <= concurrency
    # The ledger forgets the owner of a lapsed claim: the unknown ones are those cut off.
    assert {i.id for i in unknown} >= {i.id for i in cut_off}
    assert set(sent) <= {i.email for i in recorded.values()}


async def test_the_report_prints_every_invite(
    redis_url: str, redis_namespace: str, ledger: Ledger, capsys: pytest.CaptureFixture[str]
) -> None:
    for sequence, invite in enumerate(invites(3)):
        await ledger.add(invite, sequence)
    await ledger.keys.claim("inv-001", "fp", owner="t")
    await ledger.keys.settle(
        "inv-001", owner="t", state=LedgerState.CREATED, request_id="srq_9", result=b"{}"
    )
    counts = await report(redis_url, redis_namespace)
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == "inv-001\tcreated\tinv1@example.com\tsrq_9"
    assert lines[-1] == "total queued=2 sending=0 created=1 failed=0 unknown=0 not_sent=0"
    assert counts[State.QUEUED] == 2


def test_the_command_line(
    tmp_path: Path, redis_url: str, redis_namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "people.csv"
    source.write_text("email,display_name\ndoc@example.com,Doc\nmarty@example.com,\n")
    assert [i.id for i in read_invites(source, "acc_1", "Hi")] == ["line-2", "line-3"]
    common = ["--redis-url", redis_url, "--namespace", redis_namespace]
    argv = ["produce", *common, str(source), "--host", "acc_1", "--summary", "Hi"]
    assert main(argv) == 0
    assert main(argv) == 0
    assert main(["report", *common]) == 1  # queued, not created yet
    out = capsys.readouterr().out
    # Queued but never sent: produced again, they are enqueued again (sent once all the same).
    assert out.count("enqueued 2, already sent 0") == 2
    assert "line-3\tqueued\tmarty@example.com" in out


async def test_an_api_with_a_shared_limiter_is_what_workers_use(redis_url: str) -> None:
    # The worker builds its limiter on its own client (shared with the ledger) and closes both.
    client = redis.asyncio.Redis.from_url(redis_url)
    async with (
        RedisLimiter(client, namespace="n") as limiter,
        AsyncSchedulerAPI(SECRET, rate_limit=limiter),
    ):
        pass
    assert await client.ping()
    await client.aclose()
