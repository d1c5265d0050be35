"""
``cronofy-async batch --ledger PATH`` and ``--redis-url``: batch processes given overlapping
inputs invite each row once, and each one's results file stays its report.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from cronofy_async.testing import FakeCronofy, Faults

from .cli_support import batch_args, final_states, people, records, run, write_csv

ROOT = Path(__file__).resolve().parent.parent
SECRET = "sk_cli_test"
RUN_CLI = "import sys; from cronofy_async._cli import main; sys.exit(main())"


def shared_args(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> list[str]:
    if kind == "sqlite":
        return ["--ledger", str(tmp_path / "shared.db")]
    url = request.getfixturevalue("redis_url")
    return ["--redis-url", url, "--namespace", request.getfixturevalue("redis_namespace")]


@pytest.mark.real_time  # two real processes against a server that takes its time
@pytest.mark.parametrize("kind", ["sqlite", "redis"])
async def test_two_batch_processes_with_overlapping_inputs_invite_each_row_once(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    fake = FakeCronofy([SECRET], members=["acc_1"], rate_limit=None, faults=Faults(latency=0.05))
    env = {**os.environ, "CRONOFY_CLIENT_SECRET": SECRET, "PYTHONPATH": str(ROOT)}
    shared = shared_args(kind, tmp_path, request)
    async with fake.serve() as url:
        shards = []
        for shard, start in enumerate((0, 20)):  # rows 20..39 are in both inputs
            source = write_csv(tmp_path / f"in{shard}.csv", people(40, start=start))
            argv = [
                str(source), "-o", str(tmp_path / f"out{shard}.jsonl"), "--host", "acc_1",
                "--summary", "Hi", "--base-url", url, "--plain", "--no-pacing", *shared,
            ]  # fmt: skip
            if kind == "redis":
                argv.remove("--no-pacing")
            shards.append(
                await asyncio.create_subprocess_exec(
                    sys.executable, "-c", RUN_CLI, "batch", *argv, env=env, stdout=-3, stderr=-3
                )
            )
        assert [await asyncio.wait_for(shard.wait(), 120) for shard in shards] == [0, 0]
    assert fake.created_count == 60
    assert fake.duplicates() == {}
    by_email: dict[str, set[str]] = {}
    for shard in range(2):
        states = set(final_states(tmp_path / f"out{shard}.jsonl").values())
        assert states <= {"created", "created_before"}
        for record in records(tmp_path / f"out{shard}.jsonl"):
            if record["outcome"] in ("created", "created_before"):
                by_email.setdefault(record["email"], set()).add(record["scheduler_request_id"])
    assert len(by_email) == 60
    assert all(len(ids) == 1 for ids in by_email.values())  # both files name the one invite


async def test_a_row_another_process_created_is_created_before_and_resume_works(
    tmp_path: Path,
) -> None:
    fake = FakeCronofy([SECRET], members=["acc_1"], rate_limit=None)
    ledger = tmp_path / "shared.db"
    async with fake.serve() as url:

        def argv(source: Path, output: Path) -> list[str]:
            return [
                str(source), "-o", str(output), "--host", "acc_1", "--summary", "Hi",
                "--base-url", url, "--plain", "--no-pacing", "--ledger", str(ledger),
            ]  # fmt: skip

        first = write_csv(tmp_path / "a.csv", people(3))
        status, _, _ = await run(batch_args(*argv(first, tmp_path / "a.jsonl")))
        assert status == 0
        second = write_csv(tmp_path / "b.csv", people(5))
        status, _out, _ = await run(batch_args(*argv(second, tmp_path / "b.jsonl")))
        assert status == 0
        assert fake.created_count == 5
        found = records(tmp_path / "b.jsonl")
        before = [r for r in found if r["outcome"] == "created_before"]
        assert len(before) == 3
        assert all(r["scheduler_request_id"].startswith("srq_") for r in before)
        assert all(r["select_url"] for r in before)
        assert not [r for r in found if r["outcome"] == "sending" and r["line"] <= 4]
        # The same command again resumes from its own results file: nothing is sent.
        received = fake.received
        status, _, _ = await run(batch_args(*argv(second, tmp_path / "b.jsonl")))
        assert status == 0
        assert fake.received == received


async def test_ledger_with_redis_url_is_refused(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "in.csv", people(1))
    argv = [str(source), "-o", str(tmp_path / "o.jsonl"), "--host", "acc_1", "--summary", "Hi"]
    argv += ["--ledger", str(tmp_path / "l.db"), "--redis-url", "redis://127.0.0.1:1/0"]
    status, _out, err = await run(batch_args(*argv))
    assert status == 2
    assert "--ledger and --redis-url" in err


async def test_an_unusable_ledger_fails_every_row_unsent(tmp_path: Path) -> None:
    fake = FakeCronofy([SECRET], members=["acc_1"], rate_limit=None)
    source = write_csv(tmp_path / "in.csv", people(2))
    async with fake.serve() as url:
        argv = [str(source), "-o", str(tmp_path / "o.jsonl"), "--host", "acc_1", "--summary", "Hi"]
        argv += ["--base-url", url, "--plain", "--ledger", str(tmp_path / "no" / "such.db")]
        status, _out, _err = await run(batch_args(*argv))
    assert status == 1
    assert fake.received == 0
    assert set(final_states(tmp_path / "o.jsonl").values()) == {"failed"}
