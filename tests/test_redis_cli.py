"""``cronofy-async batch --redis-url``: batch processes sharing one budget through Redis."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio

from cronofy_async import RateLimit
from cronofy_async.redis._keys import keys_for
from cronofy_async.testing import FakeCronofy

from .cli_support import (
    batch_args,
    final_states,
    people,
    records,
    run,
    summary_counts,
    write_csv,
)
from .test_redis_limiter import contract_breaks

ROOT = Path(__file__).resolve().parent.parent
SECRET = "sk_cli_test"


def shard_args(source: Path, output: Path, url: str, redis_url: str, namespace: str) -> list[str]:
    return [
        str(source), "-o", str(output), "--host", "acc_1", "--summary", "Hi",
        "--base-url", url, "--plain", "--per-second", "40", "--per-minute", "1000",
        "--redis-url", redis_url, "--namespace", namespace,
    ]  # fmt: skip


@pytest.mark.real_time  # two processes paced for real, at 40/s between them
async def test_two_batch_processes_share_one_budget(
    tmp_path: Path, redis_url: str, redis_namespace: str, redis_client: redis.asyncio.Redis
) -> None:
    fake = FakeCronofy([SECRET], members=["acc_1"], rate_limit=RateLimit(per_second=40))
    env = {**os.environ, "CRONOFY_CLIENT_SECRET": SECRET, "PYTHONPATH": str(ROOT)}
    run_cli = "import sys; from cronofy_async._cli import main; sys.exit(main())"
    async with fake.serve() as url:
        shards = []
        for shard in range(2):
            rows = [f"s{shard}p{i}@example.com,P" for i in range(30)]
            source = write_csv(tmp_path / f"in{shard}.csv", rows)
            argv = shard_args(
                source, tmp_path / f"out{shard}.jsonl", url, redis_url, redis_namespace
            )
            shards.append(
                await asyncio.create_subprocess_exec(
                    sys.executable, "-c", run_cli, "batch", *argv, env=env, stdout=-3, stderr=-3
                )
            )
        assert [await shard.wait() for shard in shards] == [0, 0]
    assert fake.created_count == 60
    assert fake.duplicates() == {}
    for shard in range(2):
        assert set(final_states(tmp_path / f"out{shard}.jsonl").values()) == {"created"}
    # One log holds both processes' admissions, and together they keep the windows.
    log: Any = await redis_client.zrange(keys_for(redis_namespace).log, 0, -1, withscores=True)
    assert len(log) == 60 + fake.outcomes["429"]
    limit = RateLimit(per_second=40, per_minute=1000)
    assert contract_breaks([int(score) for _member, score in log], limit) == []


async def test_redis_url_with_no_pacing_is_refused(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "in.csv", people(1))
    argv = [
        str(source),
        "-o",
        str(tmp_path / "o.jsonl"),
        "--host",
        "acc_1",
        "--summary",
        "Hi",
        "--no-pacing",
    ]
    status, _out, err = await run(batch_args(*argv, "--redis-url", "redis://127.0.0.1:1/0"))
    assert status == 2
    assert "--redis-url shares the pace: it cannot go with --no-pacing" in err


async def test_a_bad_redis_url_is_refused_before_anything(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "in.csv", people(1))
    argv = [str(source), "-o", str(tmp_path / "o.jsonl"), "--host", "acc_1", "--summary", "Hi"]
    status, _out, err = await run(batch_args(*argv, "--redis-url", "http://nowhere/"))
    assert status == 2
    assert "not a Redis URL" in err


async def test_redis_down_fails_every_row_and_sends_nothing(tmp_path: Path) -> None:
    fake = FakeCronofy([SECRET], members=["acc_1"], rate_limit=None)
    source = write_csv(tmp_path / "in.csv", people(3))
    output = tmp_path / "o.jsonl"
    async with fake.serve() as url:
        argv = [str(source), "-o", str(output), "--host", "acc_1", "--summary", "Hi"]
        argv += ["--base-url", url, "--plain", "--redis-url", "redis://127.0.0.1:1/0"]
        status, out, _err = await run(batch_args(*argv))
    assert status == 1
    assert fake.received == 0
    assert set(final_states(output).values()) == {"failed"}  # never sent: a re-run sends them
    errors = [r["error"] for r in records(output) if r["outcome"] == "failed"]
    # The row's claim in the shared ledger, before any pacing, is what finds Redis down.
    assert all("the idempotency ledger (Redis" in e and "nothing was sent" in e for e in errors)
    assert summary_counts(out)["failed"] == 3


@pytest.mark.parametrize(
    "redis_url",
    ["redis://127.0.0.1:1/0?password=TopSecretRedisPw", "redis://:TopSecretRedisPw@127.0.0.1:1/0"],
)
async def test_a_redis_password_is_in_no_output_or_results_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_url: str
) -> None:
    monkeypatch.setenv("CRONOFY_REDIS_URL", redis_url)
    fake = FakeCronofy([SECRET], members=["acc_1"], rate_limit=None)
    source = write_csv(tmp_path / "in.csv", people(2))
    output = tmp_path / "o.jsonl"
    async with fake.serve() as url:
        argv = [str(source), "-o", str(output), "--host", "acc_1", "--summary", "Hi"]
        status, out, err = await run(batch_args(*argv, "--base-url", url, "--plain"))
    assert status == 1
    assert fake.received == 0
    errors = [r["error"] for r in records(output) if r["outcome"] == "failed"]
    assert len(errors) == 2
    assert all("redis://" in e and "***" in e for e in errors)
    for text in (output.read_text(), out, err):
        assert "TopSecretRedisPw" not in text


async def test_the_redis_url_may_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A password in a URL on the command line would show in ps; the environment keeps it out.
    monkeypatch.setenv("CRONOFY_REDIS_URL", "redis://:hunter2@127.0.0.1:1/0")
    source = write_csv(tmp_path / "in.csv", people(1))
    argv = [
        str(source),
        "-o",
        str(tmp_path / "o.jsonl"),
        "--host",
        "acc_1",
        "--summary",
        "Hi",
        "--no-pacing",
    ]
    status, _out, err = await run(batch_args(*argv))
    assert status == 2
    assert "--redis-url shares the pace" in err
    assert "hunter2" not in err
