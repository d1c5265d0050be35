"""
Re-running ``cronofy-async batch`` after the input changed: each row invited once, nobody twice.

Every case runs the command as a real subprocess against FakeCronofy over loopback, and checks
the fake's ledger: who was invited, and that no invite was created twice.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cronofy_async._cli._results import ResultsFile
from cronofy_async.testing import FakeCronofy, Fault, Faults

from .cli_support import (
    SECRET,
    Done,
    batch_args,
    cli,
    cli_env,
    common,
    last_run,
    outcomes_of,
    people,
    records,
    run,
    summary_counts,
    write_csv,
)


@pytest.fixture
def fake() -> FakeCronofy:
    return FakeCronofy([SECRET], members=["acc_1", "acc_2"], rate_limit=None)


@pytest.fixture
async def url(fake: FakeCronofy) -> AsyncIterator[str]:
    async with fake.serve() as base_url:
        yield base_url


def invited(fake: FakeCronofy) -> list[str]:
    """Everyone the fake invited, in order; the ledger must hold no invite twice."""
    assert fake.duplicates() == {}
    return [entry.email.lower() for entry in fake.created]


def emails(count: int, start: int = 0) -> set[str]:
    return {f"person{i}@example.com" for i in range(start, start + count)}


async def batch(source: Path, output: Path, url: str, *more: str) -> Done:
    done = await cli("batch", *common(source, output, url, *more))
    assert "Traceback" not in done.err
    return done


async def test_deleting_then_fixing_the_bad_row(
    fake: FakeCronofy, url: str, tmp_path: Path
) -> None:
    rows = people(9)
    source, output = tmp_path / "in.csv", tmp_path / "results.jsonl"
    write_csv(source, [*rows[:3], "not-an-email,Bad", *rows[3:]])  # the bad row is line 5
    first = await batch(source, output, url)
    assert first.status == 1
    assert "line 5: recipients.email: 'not-an-email' is not a valid email address" in first.err
    assert summary_counts(first.out) == {"created": 9, "invalid": 1}

    # The obvious fix: delete the bad row. Every row after it moves up a line.
    write_csv(source, rows)
    second = await batch(source, output, url)
    assert second.status == 0
    assert summary_counts(second.out) == {"created_before": 9}
    assert sorted(invited(fake)) == sorted(emails(9))

    # Or fix it, back where it was: only that row is new.
    write_csv(source, [*rows[:3], "fixed@example.com,Fixed", *rows[3:]])
    third = await batch(source, output, url)
    assert third.status == 0
    assert summary_counts(third.out) == {"created": 1, "created_before": 9}
    assert sorted(invited(fake)) == sorted({*emails(9), "fixed@example.com"})


async def test_inserting_a_row_at_the_top(fake: FakeCronofy, url: str, tmp_path: Path) -> None:
    source, output = tmp_path / "in.csv", tmp_path / "results.jsonl"
    write_csv(source, people(7))
    assert (await batch(source, output, url)).status == 0
    write_csv(source, ["new@example.com,New", *people(7)])
    again = await batch(source, output, url)
    assert again.status == 0
    assert summary_counts(again.out) == {"created": 1, "created_before": 7}
    assert sorted(invited(fake)) == sorted({*emails(7), "new@example.com"})
    [new] = [r for r in last_run(output) if r["outcome"] == "created"]
    assert (new["line"], new["email"]) == (2, "new@example.com")


async def test_a_new_weeks_file_against_last_weeks_results(
    fake: FakeCronofy, url: str, tmp_path: Path
) -> None:
    output = tmp_path / "results.jsonl"  # the README's name, week after week
    week1 = write_csv(tmp_path / "week1.csv", people(10))
    assert (await batch(week1, output, url)).status == 0
    # Ten new people, and one from last week, who already has this very invite.
    week2 = write_csv(tmp_path / "week2.csv", [*people(10, start=10), "person3@example.com,P3"])
    done = await batch(week2, output, url)
    assert done.status == 0
    assert summary_counts(done.out) == {"created": 10, "created_before": 1}
    assert sorted(invited(fake)) == sorted(emails(20))


async def test_reordering_sends_only_what_failed(
    fake: FakeCronofy, url: str, tmp_path: Path
) -> None:
    source, output = tmp_path / "in.csv", tmp_path / "results.jsonl"
    rows = [*people(5), "stranger@example.com,S,acc_9", *people(4, start=5)]
    write_csv(source, rows, header="email,display_name,host")
    first = await batch(source, output, url, "--concurrency", "1")
    assert first.status == 1
    assert summary_counts(first.out) == {"created": 9, "failed": 1}  # acc_9 is no member: 422
    assert "line 7: failed: host.sub: not a member" in first.err

    # Reversed, with the failing row's host fixed: that row alone is new.
    fixed = [row.replace("acc_9", "acc_2") for row in reversed(rows)]
    write_csv(source, fixed, header="email,display_name,host")
    again = await batch(source, output, url)
    assert again.status == 0
    assert summary_counts(again.out) == {"created": 1, "created_before": 9}
    assert sorted(invited(fake)) == sorted({*emails(9), "stranger@example.com"})


async def test_identical_rows_are_sent_once_and_reported(
    fake: FakeCronofy, url: str, tmp_path: Path
) -> None:
    source, output = tmp_path / "in.csv", tmp_path / "results.jsonl"
    rows = [*people(3), "person1@example.com,Person 1", " PERSON2@Example.COM ,Person Two"]
    write_csv(source, rows)
    done = await batch(source, output, url)
    assert done.status == 0  # every row's invite exists, each created once
    assert summary_counts(done.out) == {"created": 3, "duplicate": 2}
    assert "line 5: the same invite as line 3 (person1@example.com): sent once" in done.err
    assert "line 6: the same invite as line 4" in done.err
    duplicates = [r for r in records(output) if r["outcome"] == "duplicate"]
    assert [(r["line"], r["duplicate_of"]) for r in duplicates] == [(5, 3), (6, 4)]
    assert sorted(invited(fake)) == sorted(emails(3))


async def test_case_spaces_and_display_names_do_not_make_another_invite(
    fake: FakeCronofy, url: str, tmp_path: Path
) -> None:
    source, output = tmp_path / "in.csv", tmp_path / "results.jsonl"
    write_csv(source, ["Ada@Example.com,Ada Lovelace", "bob@example.com,Bob"])
    assert (await batch(source, output, url)).status == 0
    # The same people: an email in other case and spaces, a name spelt anew.
    write_csv(source, ['"  ada@example.COM ",Ada Lovelace', "bob@example.com,Robert"])
    again = await batch(source, output, url)
    assert again.status == 0
    assert summary_counts(again.out) == {"created_before": 2}
    assert "line 2:" not in again.err  # nothing to say about Ada
    assert "line 3: bob@example.com was invited before as 'Bob' (srq_" in again.err
    assert "the new display name 'Robert' is not sent: one invite per person" in again.err
    assert sorted(invited(fake)) == ["ada@example.com", "bob@example.com"]
    # Each skipped row points at the invite that exists: the id comes from the earlier run.
    ids = {e.email.lower(): e.scheduler_request_id for e in fake.created}
    assert {r["email"].lower(): r["scheduler_request_id"] for r in last_run(output)} == ids


async def test_a_display_name_added_or_dropped_is_said_plainly(
    fake: FakeCronofy, url: str, tmp_path: Path
) -> None:
    source, output = tmp_path / "in.csv", tmp_path / "results.jsonl"
    write_csv(source, ["ada@example.com,Ada", "bob@example.com,"])
    assert (await batch(source, output, url)).status == 0
    write_csv(source, ["ada@example.com,", "bob@example.com,Bob"])
    again = await batch(source, output, url)
    assert summary_counts(again.out) == {"created_before": 2}
    assert "None" not in again.err
    assert "line 2: ada@example.com was invited before as 'Ada' (srq_" in again.err
    assert "this row has no display name, and nothing is sent: one invite per person" in again.err
    assert "line 3: bob@example.com was invited before without a display name (srq_" in again.err
    assert "the new display name 'Bob' is not sent: one invite per person" in again.err


async def test_another_summary_or_host_is_another_invite(
    fake: FakeCronofy, url: str, tmp_path: Path
) -> None:
    source, output = tmp_path / "in.csv", tmp_path / "results.jsonl"
    write_csv(source, people(2))
    assert (await batch(source, output, url)).status == 0
    done = await cli("batch", *common(source, output, url, "--summary", "Follow-up"))
    assert summary_counts(done.out) == {"created": 2}
    assert len(invited(fake)) == 4  # two meetings each, none twice


async def test_unknown_rows_stay_skipped_by_key_until_resend_unknown(
    fake: FakeCronofy, url: str, tmp_path: Path
) -> None:
    source, output = tmp_path / "in.csv", tmp_path / "results.jsonl"
    write_csv(source, people(4))
    fake.inject(Fault.UNAVAILABLE)  # the first row: a 503, may exist
    first = await batch(source, output, url, "--concurrency", "1")
    assert summary_counts(first.out) == {"created": 3, "unknown": 1}
    assert "line 2: unknown: Cronofy answered 503" in first.err

    # Moved down by a new row: still recognised, still not re-sent blindly.
    write_csv(source, ["new@example.com,New", *reversed(people(4))])
    second = await batch(source, output, url)
    assert second.status == 1
    assert summary_counts(second.out) == {"created": 1, "created_before": 3, "unknown_before": 1}
    [skipped] = [r for r in last_run(output) if r["outcome"] == "unknown_before"]
    assert (skipped["line"], skipped["email"]) == (6, "person0@example.com")

    third = await batch(source, output, url, "--resend-unknown")
    assert third.status == 0
    assert summary_counts(third.out) == {"created": 1, "created_before": 4}
    assert fake.received == 4 + 1 + 1


async def test_an_old_results_file_is_refused_untouched(
    fake: FakeCronofy, url: str, tmp_path: Path
) -> None:
    source, output = tmp_path / "in.csv", tmp_path / "results.jsonl"
    write_csv(source, people(3))
    old = [
        {"line": 2, "email": "person0@example.com", "outcome": "sending"},
        {"line": 2, "email": "person0@example.com", "outcome": "created", "error": None},
    ]
    output.write_text("".join(json.dumps(r) + "\n" for r in old), encoding="utf-8")
    before = output.read_bytes()
    status, _, err = await run(batch_args(*common(source, output, url)))
    assert status == 2
    assert err.count("\n") == 1
    assert "line 1 is a record of an earlier cronofy-async" in err
    assert "Give a new --output file" in err
    assert fake.received == 0
    assert output.read_bytes() == before


async def test_a_file_that_is_not_results_is_refused(
    fake: FakeCronofy, url: str, tmp_path: Path
) -> None:
    source = write_csv(tmp_path / "in.csv", people(1))
    other = tmp_path / "people.jsonl"
    other.write_text('{"email": "a@example.com"}\n', encoding="utf-8")
    status, _, err = await run(batch_args(*common(source, other, url)))
    assert status == 2
    assert "is not a record of cronofy-async batch" in err
    assert fake.received == 0


async def test_kill_9_with_a_record_cut_mid_line_then_resume(tmp_path: Path) -> None:
    fake = FakeCronofy([SECRET], members=["acc_1"], rate_limit=None, faults=Faults(latency=0.2))
    source, output = write_csv(tmp_path / "in.csv", people(200)), tmp_path / "results.jsonl"
    async with fake.serve() as url:
        argv = ["-m", "cronofy_async._cli", "batch", *common(source, output, url)]
        first = await asyncio.create_subprocess_exec(
            sys.executable, *argv, "--concurrency", "20", env=cli_env(), stderr=-3, stdout=-3
        )
        while fake.received < 50:  # noqa: ASYNC110 - polling the fake's counter is the point
            await asyncio.sleep(0.01)
        first.kill()  # SIGKILL: no chance to write anything more
        await first.wait()
        fake.faults = Faults()  # no more latency: the rest goes quickly
        cut_off = {r["key"] for r in records(output) if r["outcome"] == "sending"}
        cut_off -= {r["key"] for r in records(output) if r["outcome"] != "sending"}
        assert cut_off  # rows whose request was in flight when the process died
        # As if the kill had landed in the middle of writing the last record.
        content = output.read_bytes()
        output.write_bytes(content[: len(content) - 300])
        torn = output.read_text(encoding="utf-8").splitlines()[-1]

        second = await batch(source, output, url)
    assert second.status == 1  # rows cut off mid-flight may exist: not re-sent blindly
    assert f"ignoring 1 line(s) that are not records (line {len(content.splitlines())})" in (
        second.err
    )
    lines = output.read_text(encoding="utf-8").splitlines()
    assert torn in lines  # left alone, on its own line: the next record starts a new one
    assert all(json.loads(line) for line in lines if line != torn)
    # Every row was seen, none sent twice: those cut off mid-flight may exist, and stay skipped.
    second_run = [json.loads(line) for line in lines[lines.index(torn) + 1 :]]
    counts = outcomes_of(second_run)
    assert counts == summary_counts(second.out)
    assert counts["unknown_before"] >= len(cut_off)
    assert sum(counts.values()) == 200
    ledger = invited(fake)
    assert len(ledger) >= counts["created_before"] + counts.get("created", 0)
    assert all(r["outcome"] == "unknown_before" for r in second_run if r["key"] in cut_off)


async def test_two_runs_on_one_results_file_at_once(
    fake: FakeCronofy, url: str, tmp_path: Path
) -> None:
    source, output = write_csv(tmp_path / "in.csv", people(5)), tmp_path / "results.jsonl"
    running = ResultsFile(output)  # another run, holding the file
    running.open()
    try:
        status, _, err = await run(batch_args(*common(source, output, url)))
    finally:
        running.close()
    assert status == 2
    assert "another cronofy-async batch is using this results file" in err
    assert fake.received == 0
    status, _, _ = await run(batch_args(*common(source, output, url)))
    assert status == 0  # once the other run is over, the file is free
