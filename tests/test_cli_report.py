"""What ``cronofy-async batch`` tells the user: stops explained, counts that agree, the bar."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from rich.console import Console

from cronofy_async import (
    APIStatusError,
    AuthenticationError,
    Event,
    Host,
    NewSchedulerRequest,
    PaymentRequiredError,
    PermissionDeniedError,
    Recipient,
)
from cronofy_async._cli._batch_command import NOTES_SHOWN, run_batch
from cronofy_async._cli._command import run_async
from cronofy_async._cli._outcomes import ROW_OUTCOMES, Tally
from cronofy_async._cli._progress import PlainProgress, RichProgress, make_progress
from cronofy_async._cli._rows import Defaults, Invite, Row
from cronofy_async._cli._stops import explain_stop, stops_batch
from cronofy_async.testing import FakeCronofy, Fault, Faults

from .cli_support import (
    ROOT,
    SECRET,
    batch_args,
    common,
    last_run,
    outcomes_of,
    people,
    records,
    run,
    summary_counts,
    write_csv,
)

_REQUEST = NewSchedulerRequest(
    host=Host(sub="acc_1"), recipients=[Recipient(email="a@x.com")], event=Event(summary="S")
)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def fake() -> FakeCronofy:
    return FakeCronofy([SECRET], members=["acc_1", "acc_2"], rate_limit=None)


@pytest.fixture
async def base_url(fake: FakeCronofy) -> AsyncIterator[str]:
    async with fake.serve() as url:
        yield url


def progress_counts(err: str) -> dict[str, int]:
    """The last plain progress line's counts, by outcome name; zeros left out."""
    line = [text for text in err.splitlines() if text.startswith("progress: ")][-1]
    parts = line.split(", ")[2:]  # after "N/M rows" and the rate
    counts = {name: int(n) for name, n in (part.rsplit(" ", 1) for part in parts)}
    return {name: n for name, n in counts.items() if n}


async def test_a_401_stops_the_batch_and_the_terminal_says_why(
    fake: FakeCronofy, base_url: str, tmp_path: Path
) -> None:
    source, output = write_csv(tmp_path / "in.csv", people(30)), tmp_path / "out.jsonl"
    argv = common(source, output, base_url, "--concurrency", "1")
    status, out, err = await run(batch_args(*argv), secret="sk_revoked")
    assert status == 1
    assert "stopped: Cronofy answered 401 to line 2, so nothing more was sent." in err
    assert "The client secret was not accepted: it is wrong, revoked, or belongs" in err
    assert "Check CRONOFY_CLIENT_SECRET (or --client-secret-file) and --data-center" in err
    assert summary_counts(out) == {"failed": 1, "not_sent": 29} == outcomes_of(records(output))
    not_sent = [r for r in records(output) if r["outcome"] == "not_sent"]
    assert all(r["error"].startswith("not sent: the batch stopped at line 2 (") for r in not_sent)
    assert fake.received == 1

    # Fixed, the same command sends every row, once.
    status, out, _ = await run(batch_args(*argv))
    assert status == 0
    assert summary_counts(out) == {"created": 30}
    assert fake.duplicates() == {}


async def test_a_403_names_the_account_and_what_to_check(
    fake: FakeCronofy, base_url: str, tmp_path: Path
) -> None:
    source = tmp_path / "in.jsonl"
    lines = [{"email": "a@example.com", "impersonate": "acc_9"}, {"email": "b@example.com"}]
    source.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    output = tmp_path / "out.jsonl"
    argv = common(source, output, base_url, "--concurrency", "1")
    status, out, err = await run(batch_args(*argv))
    # The row's account is not the application's to use: that row's problem, not the batch's.
    assert status == 1
    assert "stopped:" not in err
    says = (
        "Cronofy answered 403 to a request sent as acc_9: the account is not a member of the "
        "application's Organizational Unit, or the application lacks a permission; check the "
        "row's impersonate value"
    )
    assert f"line 1: failed: {says}" in err
    assert summary_counts(out) == {"created": 1, "failed": 1}
    assert [(r["line"], r["error"]) for r in records(output) if r["outcome"] == "failed"] == [
        (1, says)
    ]
    # A re-run sends the failed row again, and only it: no loop, no duplicate.
    status, out, _ = await run(batch_args(*argv))
    assert (status, summary_counts(out)) == (1, {"created_before": 1, "failed": 1})
    assert fake.created_count == 1


@pytest.mark.parametrize(
    ("error", "impersonate", "stops"),
    [
        (AuthenticationError, "acc_9", True),
        (PaymentRequiredError, "acc_9", True),
        (PermissionDeniedError, "acc_9", False),  # the row's own account
        (PermissionDeniedError, None, True),  # the application's own 403
        (PermissionDeniedError, "acc_cli", True),  # --impersonate: every row's account
        (ValueError, None, False),
    ],
)
def test_what_stops_the_batch(error: type[Exception], impersonate: str | None, stops: bool) -> None:
    response = httpx.Response(403, request=httpx.Request("POST", "https://x/"))
    failure = (
        error("Cronofy answered", response=response, outcome_unknown=False)
        if issubclass(error, APIStatusError)
        else error("x")
    )
    invite = Invite(
        kind="scheduler_request", data_center="us", email="a@x.com", impersonate=impersonate
    )
    row = Row(line=2, invite=invite, request=_REQUEST, key="k")
    assert stops_batch(Defaults(impersonate="acc_cli"))(row, failure) is stops


def _error(kind: type[AuthenticationError], status: int) -> AuthenticationError:
    response = httpx.Response(status, request=httpx.Request("POST", "https://x/"))
    return kind("Cronofy answered", response=response, outcome_unknown=False)


def test_a_stop_sent_as_the_impersonate_option_names_it() -> None:
    invite = Invite(kind="scheduler_request", data_center="us", email="a@x", impersonate="acc_1")
    error = _error(PermissionDeniedError, 403)  # type: ignore[arg-type]
    message = explain_stop(error, line=2, invite=invite)
    assert "(sent as acc_1): the account is not a member" in message


@pytest.mark.parametrize(
    ("kind", "status", "says"),
    [
        (AuthenticationError, 401, "data center than 'uk'"),
        (PaymentRequiredError, 402, "plan does not include the Scheduler API"),
        (PermissionDeniedError, 403, "(group rule sgr_1): the account is not a member"),
        (PermissionDeniedError, 403, "(host acc_1): the account is not a member"),
    ],
)
def test_each_stop_is_explained(kind: type[AuthenticationError], status: int, says: str) -> None:
    hosts = {"host": "acc_1"} if "host acc_1" in says else {"group_rule": "sgr_1"}
    invite = Invite(kind="scheduler_request", data_center="uk", email="a@x.com", **hosts)
    message = explain_stop(_error(kind, status), line=7, invite=invite)
    assert message.startswith(f"stopped: Cronofy answered {status} to line 7, so nothing more")
    assert says in message
    assert message.endswith("then run the same command again: only the rows not created are sent.")


async def test_counts_agree_everywhere(fake: FakeCronofy, base_url: str, tmp_path: Path) -> None:
    source, output = tmp_path / "in.csv", tmp_path / "out.jsonl"
    rows = [
        "a@example.com,A,acc_1",  # line 2: a 503 (injected): unknown
        "b@example.com,B,acc_1",
        "not-an-email,C,acc_1",  # invalid
        "d@example.com,D,acc_9",  # acc_9 is no member: 422, failed
        "b@example.com,B again,acc_1",  # duplicate of line 3
        "e@example.com,E,acc_2",
    ]
    write_csv(source, rows, header="email,display_name,host")
    fake.inject(Fault.UNAVAILABLE)
    argv = common(source, output, base_url, "--concurrency", "1")
    status, out, err = await run(batch_args(*argv))
    assert status == 1
    expected = {"created": 2, "unknown": 1, "failed": 1, "invalid": 1, "duplicate": 1}
    assert summary_counts(out) == expected
    assert progress_counts(err) == expected
    assert outcomes_of(last_run(output)) == expected
    sending = [r for r in records(output) if r["outcome"] == "sending"]
    assert "requests sent in this run: 4" in out
    assert len(sending) == 4 == fake.received

    # Resumed: the same numbers for the same rows; nothing is re-sent but what failed.
    status, out, err = await run(batch_args(*argv))
    expected = {"created_before": 2, "unknown_before": 1, "failed": 1, "invalid": 1}
    expected["duplicate"] = 1
    assert summary_counts(out) == expected == progress_counts(err)
    assert outcomes_of(last_run(output)) == expected
    assert "requests sent in this run: 1" in out


async def test_many_bad_rows_are_summed_up_not_listed(
    fake: FakeCronofy, base_url: str, tmp_path: Path
) -> None:
    source = write_csv(tmp_path / "in.csv", [f"bad{i},B" for i in range(NOTES_SHOWN + 30)])
    status, out, err = await run(batch_args(*common(source, tmp_path / "o.jsonl", base_url)))
    assert status == 1
    assert err.count("is not a valid email address") == NOTES_SHOWN
    assert "... and 30 more invalid rows; all of them: jq -c 'select(.run == " in err
    assert summary_counts(out) == {"invalid": NOTES_SHOWN + 30}


def test_plain_lines_when_not_a_terminal() -> None:
    assert isinstance(make_progress(io.StringIO()), PlainProgress)
    assert isinstance(make_progress(Terminal(), plain=True), PlainProgress)
    assert isinstance(make_progress(Terminal()), RichProgress)


@pytest.mark.parametrize("total", [10, 100_000, 5_000_000])
def test_the_live_bar_fits_80_columns(total: int) -> None:
    progress = RichProgress(Terminal())
    tally = Tally(total=total)
    progress._timing.begin(tally)  # as start() does, without a live display
    progress._task = progress.bar.add_task("batch", total=total, **progress._fields())
    tally.counts.update(created=total - 4, failed=1, unknown=1, created_before=1)
    tally.sent = total - 4
    progress._timing.started -= 12_345.6
    progress.update()
    screen = io.StringIO()
    Console(file=screen, width=80).print(progress.bar.get_renderable())
    [line] = screen.getvalue().splitlines()
    assert len(line) <= 80
    assert line.startswith(f"{total - 1}/{total} ")


async def test_the_live_bar_on_a_terminal(fake: FakeCronofy, base_url: str, tmp_path: Path) -> None:
    source = write_csv(tmp_path / "in.csv", ["bad,B", *people(5)])
    terminal, out = Terminal(), io.StringIO()
    args = batch_args(*common(source, tmp_path / "o.jsonl", base_url))
    args.plain = False
    status = await run_batch(args, secret=SECRET, out=out, err=terminal)
    assert status == 1
    shown = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", terminal.getvalue())  # colours, cursor
    assert "line 2: recipients.email: 'bad' is not a valid email address" in shown
    assert "5 created 0 failed 0 unknown" in shown
    assert "progress:" not in shown


@pytest.mark.real_time
async def test_ctrl_c_twice_accounts_for_every_row(tmp_path: Path) -> None:
    fake = FakeCronofy([SECRET], members=["acc_1"], rate_limit=None, faults=Faults(latency=1))
    source, output = write_csv(tmp_path / "in.csv", people(50)), tmp_path / "out.jsonl"
    async with fake.serve() as url:
        task = asyncio.ensure_future(run(batch_args(*common(source, output, url))))
        while fake.received < 20:  # noqa: ASYNC110 - polling the fake's counter is the point
            await asyncio.sleep(0.01)
        os.kill(os.getpid(), signal.SIGINT)  # once: wait for those in flight...
        await asyncio.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)  # ...twice: abandon them
        status, out, err = await task
    assert status == 130
    assert "interrupt again to abandon them" in err
    counts = summary_counts(out)
    assert counts == {"unknown": 20, "not_reached": 30}  # abandoned in flight: may exist
    assert outcomes_of(records(output)) == {"unknown": 20}
    assert {r["error"] for r in records(output) if r["outcome"] == "unknown"} == {
        "abandoned in flight by a second interrupt: may exist"
    }
    assert "requests sent in this run: 20" in out


def test_the_unreadable_lines_of_a_results_file_are_reported(tmp_path: Path) -> None:
    output = tmp_path / "out.jsonl"
    output.write_text('{"line": 2, "outcome": "sen\nnot json\n', encoding="utf-8")
    source = write_csv(tmp_path / "in.csv", ["bad,B"], header="email,name,phone")
    argv = common(source, output, "http://127.0.0.1:9")
    status, _, err = asyncio.run(run(batch_args(*argv)))
    assert status == 1
    assert f"{output}: ignoring 2 line(s) that are not records (line 1, 2)" in err
    assert "ignoring columns this command does not use: phone" in err


def test_ctrl_c_outside_the_batch_is_130() -> None:
    async def interrupted() -> int:
        raise KeyboardInterrupt

    assert run_async(interrupted()) == 130


class _TinyDisk(io.FileIO):
    """A file on a disk with room for `room` bytes; then every write fails, as ENOSPC does."""

    room = 6000

    def write(self, data: Any) -> int:
        if self.tell() + len(data) > self.room:
            raise OSError(28, "No space left on device")
        return super().write(data)


@pytest.mark.real_time
async def test_a_disk_that_fills_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeCronofy([SECRET], members=["acc_1"], rate_limit=None, faults=Faults(latency=0.1))
    source, output = write_csv(tmp_path / "in.csv", people(40)), tmp_path / "out.jsonl"
    opened = Path.open

    def open_(self: Path, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if self != output or "a" not in mode:
            return opened(self, mode, *args, **kwargs)
        # Buffered like a real file: what a failed flush leaves is flushed again on close.
        return io.TextIOWrapper(io.BufferedWriter(_TinyDisk(self, "a")), encoding="utf-8")

    monkeypatch.setattr(Path, "open", open_)
    async with fake.serve() as url:
        argv = common(source, output, url, "--concurrency", "5")
        status, out, err = await run(batch_args(*argv))  # no second error from the close
        workers = [t for t in asyncio.all_tasks() if "_work" in repr(t.get_coro())]
    assert status == 1
    assert err.count(f"stopped: cannot write {output}: No space left on device") == 1
    assert workers == []  # the batch was closed: nothing is still in flight or sent later
    counts = summary_counts(out)
    # Every row that was sent is counted for what it may be, never as "never read".
    assert counts.get("created", 0) + counts.get("unknown", 0) >= fake.received > 0
    assert sum(counts.values()) == 40
    # Rows whose request left are created, or may be: none failed, none was never read.
    assert f"requests sent in this run: {counts['created'] + counts.get('unknown', 0)}" in out
    assert "second interrupt" not in err  # abandoned because of the disk, and said so
    assert "unknown: abandoned in flight: the results file cannot be written (No space" in err
    # A row whose write-ahead found the disk full was never sent; whether one did is a race
    # between the results and the write-aheads of the rows in flight.
    for line in err.splitlines():
        if "the results file cannot be written" in line:
            assert (
                ": unknown: abandoned in flight: the results file cannot be written" in line
                or ": failed: not sent: the results file cannot be written (No space" in line
            ), line


@pytest.mark.parametrize("failing", ["sending", "invalid"])
async def test_a_write_that_fails_for_some_records_only(
    fake: FakeCronofy,
    base_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    failing: str,
) -> None:
    from cronofy_async._cli._results import ResultsFile

    # A full disk may still take a short record after a long one failed.
    source = write_csv(tmp_path / "in.csv", ["not-an-email,X", *people(3)])
    output = tmp_path / "out.jsonl"
    write = ResultsFile.write

    def full_for_some(self: ResultsFile, record: dict[str, Any]) -> None:
        if record["outcome"] == failing:
            self.failed = self.failed or OSError(28, "No space left on device")
            raise self.failed
        write(self, record)

    monkeypatch.setattr(ResultsFile, "write", full_for_some)
    argv = common(source, output, base_url, "--concurrency", "1")
    status, _, err = await run(batch_args(*argv))
    assert status == 1
    assert err.count(f"stopped: cannot write {output}: No space left on device") == 1
    assert "input raised" not in err  # a record that could not be written, not the input
    assert fake.received == 0  # nothing leaves once the file cannot be written


def test_a_results_file_that_fails_to_close_for_another_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cronofy_async._cli._results import ResultsFile

    results = ResultsFile(tmp_path / "out.jsonl")
    results.open()

    def broken() -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(results._stack, "close", broken)
    with pytest.raises(OSError, match="Input/output error"):
        results.close()  # no earlier failure reported it: not swallowed
    monkeypatch.undo()
    results._stack.close()


async def test_the_summary_fits_80_columns_and_the_docs_show_it(
    fake: FakeCronofy, base_url: str, tmp_path: Path
) -> None:
    source, output = write_csv(tmp_path / "in.csv", people(2)), tmp_path / "out.jsonl"
    status, out, _ = await run(batch_args(*common(source, output, base_url)))
    assert status == 0
    table = [line for line in out.splitlines() if line.startswith("  ")]
    assert len(table) == 1 + len(ROW_OUTCOMES) + 2
    assert max(len(line) for line in table) <= 80
    docs = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    for outcome, label in ROW_OUTCOMES.items():
        assert re.search(rf"^  {outcome} +{re.escape(label)} +\d+$", docs, re.MULTILINE), label


async def test_a_results_file_that_cannot_be_written_any_more(
    fake: FakeCronofy, base_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cronofy_async._cli._results import ResultsFile

    source, output = write_csv(tmp_path / "in.csv", people(10)), tmp_path / "out.jsonl"
    write = ResultsFile.write
    written: list[dict[str, object]] = []

    def full_disk(self: ResultsFile, record: dict[str, object]) -> None:
        if len(written) == 5:
            raise OSError(28, "No space left on device")
        written.append(record)
        write(self, record)

    monkeypatch.setattr(ResultsFile, "write", full_disk)
    status, out, err = await run(
        batch_args(*common(source, output, base_url, "--concurrency", "1"))
    )
    assert status == 1
    assert f"stopped: cannot write {output}: No space left on device" in err
    assert "Traceback" not in err
    assert "results:" in out  # the summary still says how far it got
    # A row's request never leaves before its write-ahead record is written.
    assert fake.received == sum(1 for r in written if r["outcome"] == "sending")
