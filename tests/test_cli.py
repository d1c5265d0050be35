"""The cronofy-async command end to end, against FakeCronofy on loopback."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from cronofy_async._cli import main
from cronofy_async._cli._batch_command import run_batch
from cronofy_async._cli._demo import run_demo
from cronofy_async._cli._outcomes import Tally
from cronofy_async._cli._progress import PlainProgress, make_progress
from cronofy_async._cli._rows import Defaults, Row, RowError, Survey, read_rows, survey
from cronofy_async.testing import FakeCronofy, Fault, Faults

from .cli_support import (
    SECRET,
    batch_args,
    common,
    final_states,
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
async def base_url(fake: FakeCronofy) -> AsyncIterator[str]:
    async with fake.serve() as url:
        yield url


async def test_a_csv_end_to_end(fake: FakeCronofy, base_url: str, tmp_path: Path) -> None:
    source = write_csv(tmp_path / "in.csv", people(40))
    output = tmp_path / "out.jsonl"
    status, out, err = await run(
        batch_args(
            str(source),
            "-o",
            str(output),
            "--host",
            "acc_1",
            "--summary",
            "Hi",
            "--base-url",
            base_url,
            "--no-pacing",
            "--plain",
        )
    )
    assert status == 0
    assert "done: every row's invite exists" in out
    assert summary_counts(out) == {"created": 40}
    assert fake.created_count == 40
    assert fake.duplicates() == {}
    created = [r for r in records(output) if r["outcome"] == "created"]
    assert sorted(r["line"] for r in created) == list(range(2, 42))  # line 1 is the header
    ledger = {e.scheduler_request_id: e for e in fake.created}
    for record in created:
        entry = ledger[record["scheduler_request_id"]]
        assert entry.email == record["email"]
        assert record["select_url"].startswith("https://")
        assert record["attempts"] == 1
        assert entry.summary == "Hi"
        assert entry.display_name == f"Person {record['line'] - 2}"
    assert "progress: 40/40 rows" in err
    assert "created 40, failed 0, unknown 0" in err


async def test_bad_rows_are_reported_by_line_and_do_not_stop_the_good_ones(
    fake: FakeCronofy, base_url: str, tmp_path: Path
) -> None:
    source = write_csv(
        tmp_path / "in.csv",
        ["a@example.com,A", "not-an-email,B", "", "c@example.com,C", "d@example.com,D"],
    )
    output = tmp_path / "out.jsonl"
    status, out, err = await run(batch_args(*common(source, output, base_url)))
    assert status == 1
    assert "line 3: recipients.email: 'not-an-email' is not a valid email address" in err
    assert final_states(output) == {2: "created", 3: "invalid", 5: "created", 6: "created"}
    # The same name and number on the progress line, in the summary and in the file.
    assert summary_counts(out) == {"created": 3, "invalid": 1} == outcomes_of(records(output))
    assert "created 3, failed 0, unknown 0, invalid 1" in err
    assert "fix the invalid rows" in out
    assert fake.created_count == 3


async def test_a_host_also_impersonated_is_the_same_invite(
    fake: FakeCronofy, base_url: str, tmp_path: Path
) -> None:
    source = write_csv(
        tmp_path / "in.csv",
        ["ada@example.com,acc_1,acc_1", "ada@example.com,acc_1,", "ada@example.com,acc_1,acc_2"],
        header="email,host,impersonate",
    )
    output = tmp_path / "out.jsonl"
    status, _, err = await run(batch_args(*common(source, output, base_url)))
    assert status == 0
    assert final_states(output) == {2: "created", 3: "duplicate", 4: "duplicate"}
    assert "line 3: the same invite as line 2 (ada@example.com)" in err
    assert fake.created_count == 1
    # Next week, the impersonate column dropped: still the same invite, not sent again.
    write_csv(source, ["ada@example.com,acc_1"], header="email,host")
    status, _, _ = await run(batch_args(*common(source, output, base_url)))
    assert status == 0
    assert outcomes_of(last_run(output)) == {"created_before": 1}
    assert fake.created_count == 1


async def test_jsonl_with_per_row_hosts(fake: FakeCronofy, base_url: str, tmp_path: Path) -> None:
    lines = [
        {"email": "a@example.com", "summary": "One", "host": "acc_1"},
        {"email": "b@example.com", "summary": "Two", "impersonate": "acc_2"},
        {"email": "c@example.com", "summary": "Three", "group_rule": "sgr_9", "name": "C"},
        {"email": "d@example.com"},  # falls back to --summary and --host
    ]
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(json.dumps(line) for line in lines) + "\n", encoding="utf-8")
    status, _, _ = await run(
        batch_args(
            str(source),
            "-o",
            str(tmp_path / "out.jsonl"),
            "--host",
            "acc_2",
            "--summary",
            "Default",
            "--base-url",
            base_url,
            "--plain",
            "--no-pacing",
        )
    )
    assert status == 0
    hosts = {
        e.email: (e.host_sub, e.impersonated, e.group_rule_id, e.summary) for e in fake.created
    }
    assert hosts == {
        "a@example.com": ("acc_1", None, None, "One"),
        "b@example.com": (None, "acc_2", None, "Two"),
        "c@example.com": (None, None, "sgr_9", "Three"),
        "d@example.com": ("acc_2", None, None, "Default"),
    }


async def test_rerunning_resumes(fake: FakeCronofy, base_url: str, tmp_path: Path) -> None:
    source = write_csv(tmp_path / "in.csv", people(10))
    output = tmp_path / "out.jsonl"
    argv = common(source, output, base_url, "--concurrency", "1")
    fake.inject(Fault.UNAVAILABLE)  # row 2: a 503, may exist -> unknown (and was not created)
    fake.inject(Fault.DROP_AFTER)  # row 3: created, then the connection dropped -> unknown
    status, out, _ = await run(batch_args(*argv))
    assert status == 1
    assert final_states(output)[2] == "unknown"
    assert final_states(output)[3] == "unknown"
    assert fake.created_count == 9

    # Again: nothing to send. Created rows are skipped, unknown ones are not re-sent blindly.
    status, out, err = await run(batch_args(*argv))
    assert status == 1
    assert fake.received == 10
    assert summary_counts(out) == {"created_before": 8, "unknown_before": 2}
    assert outcomes_of(last_run(output)) == {"created_before": 8, "unknown_before": 2}
    assert "0.0 sent/s" in err  # a resumed run's rate counts only what it sent
    assert "--resend-unknown" in out

    # With the explicit flag they are sent again: row 3 now exists twice, as the flag warns.
    status, out, _ = await run(batch_args(*argv, "--resend-unknown"))
    assert status == 0
    assert len(fake.duplicates()) == 1
    assert outcomes_of(last_run(output)) == {"created": 2, "created_before": 8}


async def test_failed_rows_are_sent_again_on_a_rerun(
    fake: FakeCronofy, base_url: str, tmp_path: Path
) -> None:
    source = write_csv(tmp_path / "in.csv", people(3))
    output = tmp_path / "out.jsonl"
    argv = common(source, output, base_url, "--concurrency", "1")
    fake.faults = Faults(retry_after=0)
    fake.inject(Fault.RATE_LIMITED, times=3)  # row 2 fails three times: a 429 is never created
    await run(batch_args(*argv))
    assert final_states(output)[2] == "failed"
    status, _, _ = await run(batch_args(*argv))
    assert status == 0
    assert fake.created_count == 3
    assert fake.duplicates() == {}


@pytest.mark.real_time
async def test_ctrl_c_then_resume_creates_each_row_exactly_once(tmp_path: Path) -> None:
    fake = FakeCronofy([SECRET], members=["acc_1"], rate_limit=None, faults=Faults(latency=0.1))
    source = write_csv(tmp_path / "in.csv", people(200))
    output = tmp_path / "out.jsonl"
    async with fake.serve() as url:
        argv = common(source, output, url, "--concurrency", "10", "--per-second", "40")
        task = asyncio.ensure_future(run(batch_args(*argv)))
        while fake.received < 30:  # noqa: ASYNC110 - polling the fake's counter is the point
            await asyncio.sleep(0.01)
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C, once
        status, out, err = await task
        assert status == 130
        assert "stopping: no new requests" in err
        states = final_states(output)
        assert "unknown" not in states.values()
        assert "sending" not in states.values()
        assert 0 < list(states.values()).count("created") < 200
        # Every input row is accounted for: those never read are counted as not reached.
        counts = summary_counts(out)
        assert sum(counts.values()) == 200
        assert counts["not_reached"] > 0
        assert {k: v for k, v in counts.items() if k != "not_reached"} == outcomes_of(
            records(output)
        )

        status, _out, _ = await run(batch_args(*argv))
    assert status == 0
    assert fake.created_count == 200
    assert fake.duplicates() == {}


async def test_no_secret_fails_before_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = write_csv(tmp_path / "in.csv", people(1))
    err = io.StringIO()
    status = await run_batch(
        batch_args(
            str(source), "-o", str(tmp_path / "out.jsonl"), "--host", "acc_1", "--summary", "x"
        ),
        err=err,
    )
    assert status == 2
    assert "no client secret: set CRONOFY_CLIENT_SECRET" in err.getvalue()
    assert not (tmp_path / "out.jsonl").exists()


async def test_secret_from_a_file(fake: FakeCronofy, base_url: str, tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n", encoding="utf-8")
    source = write_csv(tmp_path / "in.csv", people(2))
    status = await run_batch(
        batch_args(
            str(source),
            "-o",
            str(tmp_path / "o.jsonl"),
            "--host",
            "acc_1",
            "--summary",
            "Hi",
            "--base-url",
            base_url,
            "--client-secret-file",
            str(secret_file),
            "--plain",
            "--no-pacing",
        ),
        out=io.StringIO(),
        err=io.StringIO(),
    )
    assert status == 0
    assert fake.created_count == 2


def test_a_secret_on_the_command_line_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["batch", "in.csv", "-o", "out.jsonl", "--client-secret", "sk_live"])
    assert info.value.code == 2
    assert "lands in shell history" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "fragment"),
    [("name,summary\nA,B\n", "no 'email' column"), (None, "no such file")],
)
async def test_unusable_input(tmp_path: Path, content: str | None, fragment: str) -> None:
    source = tmp_path / "in.csv"
    if content is not None:
        source.write_text(content, encoding="utf-8")
    err = io.StringIO()
    status = await run_batch(
        batch_args(str(source), "-o", str(tmp_path / "o.jsonl")), secret=SECRET, err=err
    )
    assert status == 2
    assert fragment in err.getvalue()


async def test_bad_concurrency(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "in.csv", people(1))
    err = io.StringIO()
    status = await run_batch(
        batch_args(
            *common(source, tmp_path / "o.jsonl", "http://127.0.0.1:9", "--concurrency", "0")
        ),
        secret=SECRET,
        out=io.StringIO(),
        err=err,
    )
    assert status == 2
    assert "concurrency must be" in err.getvalue()
    assert not (tmp_path / "o.jsonl").exists()


def test_rows(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(
        '{"email": "a@example.com", "summary": "x", "host": "acc_1"}\n'
        "\n"
        "not json\n"
        "[1]\n"
        '{"email": "b@example.com", "host": "acc_1"}\n'
        '{"email": "c@example.com", "summary": "x"}\n',
        encoding="utf-8",
    )
    items = list(read_rows(survey(source), Defaults()))
    assert isinstance(items[0], Row)
    assert items[0].line == 1
    errors = [(i.line, i.message) for i in items if isinstance(i, RowError)]
    # The input line is named once, by the caller; the decoder's "line 1 column 1" is gone.
    assert errors[0] == (3, "not valid JSON (Expecting value at column 1)")
    assert errors[1] == (4, "not a JSON object: each line must be one {...}")
    assert errors[2] == (5, "no summary: give a summary column or --summary")
    assert errors[3][0] == 6
    assert errors[3][1].startswith("no host")


def test_plain_progress_lines() -> None:
    stream = io.StringIO()
    progress = PlainProgress(stream, every=0)
    tally = Tally(total=4)
    progress.start(tally)
    for outcome in ("created", "failed", "unknown", "duplicate"):
        tally.counts[outcome] += 1
        progress.update()
    progress.stop()
    last = stream.getvalue().splitlines()[-1]
    assert last.startswith("progress: 4/4 rows, 0.0 sent/s, ")
    assert last.endswith("created 1, failed 1, unknown 1, duplicate 1")
    assert isinstance(make_progress(plain=True), PlainProgress)


@pytest.mark.real_time
async def test_the_demo_exits_0(tmp_path: Path) -> None:
    out = io.StringIO()
    status = await run_demo(argparse.Namespace(rows=80, workdir=tmp_path, plain=True), out=out)
    assert status == 0
    assert (
        "The fake created 80 scheduler requests for 80 rows; invites created twice: 0"
        in out.getvalue()
    )
    assert outcomes_of(records(tmp_path / "demo-results.jsonl")) == {"created": 80}


def _contents(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in folder.iterdir()}


@pytest.mark.real_time
async def test_the_demo_leaves_the_users_files_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mine = {"results.jsonl": '{"outcome": "created"}\n', "recipients.csv": "email\nvip@x.com\n"}
    for name, text in mine.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    demo = argparse.Namespace(rows=3, workdir=tmp_path, plain=True)
    assert await run_demo(demo, out=io.StringIO()) == 0
    assert {name: (tmp_path / name).read_text(encoding="utf-8") for name in mine} == mine
    assert outcomes_of(records(tmp_path / "demo-results.jsonl")) == {"created": 3}
    kept = _contents(tmp_path)
    # A second demo in the same place would read (or append to) the first one's files: it
    # refuses, in one line, and changes nothing.
    capsys.readouterr()
    assert await run_demo(demo, out=io.StringIO()) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "demo-recipients.csv already exists" in err
    assert _contents(tmp_path) == kept


async def test_the_data_center_is_part_of_the_key_and_the_base_url_is_not(
    tmp_path: Path,
) -> None:
    source, output = write_csv(tmp_path / "in.csv", people(2)), tmp_path / "out.jsonl"
    first, second = (FakeCronofy([SECRET], rate_limit=None) for _ in range(2))
    async with first.serve() as url:
        status, _, _ = await run(batch_args(*common(source, output, url, "--data-center", "uk")))
    assert status == 0
    assert {r["data_center"] for r in records(output)} == {"uk"}
    async with second.serve() as other_url:  # another port: the same invites, in uk
        status, out, _ = await run(
            batch_args(*common(source, output, other_url, "--data-center", "uk"))
        )
        assert summary_counts(out) == {"created_before": 2}
        status, out, _ = await run(batch_args(*common(source, output, other_url)))  # us
        assert summary_counts(out) == {"created": 2}
    assert (first.created_count, second.created_count) == (2, 2)


@pytest.mark.parametrize(
    ("option", "says"),
    [
        (["--data-center", "mars"], "unknown Cronofy data center 'mars'"),
        (["--per-second", "0"], "per_second"),
        (["--base-url", "ftp://x"], "must be an absolute http:// or https:// URL"),
        (["--base-url", "http://127.0.0.1:9/?x=1"], "must not have a query string or fragment"),
    ],
)
async def test_bad_options_are_refused_in_one_line(
    tmp_path: Path, option: list[str], says: str
) -> None:
    source = write_csv(tmp_path / "in.csv", people(1))
    argv = [*common(source, tmp_path / "o.jsonl", "http://127.0.0.1:9")[:-2], *option]
    status, out, err = await run(batch_args(*argv, "--plain"))
    assert status == 2
    assert out == ""
    assert err.count("\n") == 1
    assert says in err
    assert not (tmp_path / "o.jsonl").exists()


async def test_an_input_that_cannot_be_decoded_fails_before_anything_is_sent(
    fake: FakeCronofy, base_url: str, tmp_path: Path
) -> None:
    source = tmp_path / "in.csv"
    good = "\n".join(["email,display_name", *people(600)]) + "\n"
    source.write_bytes(good.encode() + b"broken\xff@example.com,X\n")
    output = tmp_path / "out.jsonl"
    status, _out, err = await run(batch_args(*common(source, output, base_url)))
    assert status == 2
    assert "line 602 is not UTF-8 text (byte 0xff)" in err
    assert fake.received == 0


async def test_an_input_that_breaks_midway_keeps_what_was_sent(
    fake: FakeCronofy, base_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The file changes under the command after it was counted (a disk error, a truncation).
    from cronofy_async._cli import _batch_command

    def breaking(found: Survey, defaults: Defaults) -> Iterator[Row | RowError]:
        for number, row in enumerate(read_rows(found, defaults)):
            if number == 5:
                raise OSError("the disk went away")
            yield row

    monkeypatch.setattr(_batch_command, "read_rows", breaking)
    source = write_csv(tmp_path / "in.csv", people(20))
    output = tmp_path / "out.jsonl"
    status, out, err = await run(batch_args(*common(source, output, base_url)))
    assert status == 1
    assert "the batch's input raised OSError after 5 items (the disk went away)" in err
    assert final_states(output) == dict.fromkeys(range(2, 7), "created")
    assert fake.created_count == 5
    assert summary_counts(out) == {"created": 5, "not_reached": 15}
    assert "not done: 15 rows have no invite" in out


async def test_a_422_echoing_the_secret_never_reaches_the_results_file(tmp_path: Path) -> None:
    from .helpers import bearer_of, http_response, raw_server

    async def echo(request: bytes) -> bytes:
        token = bearer_of(request)
        body = {"errors": {"recipients.email": [{"key": token, "description": f"bad {token}"}]}}
        return http_response(422, json.dumps(body).encode())

    source = write_csv(tmp_path / "in.csv", people(3))
    output = tmp_path / "out.jsonl"
    async with raw_server(echo) as url:
        status, out, err = await run(batch_args(*common(source, output, url)))
    assert status == 1
    text = output.read_text(encoding="utf-8")
    assert SECRET not in text + out + err
    assert "recipients.email: bad [secret]" in text


async def test_rows_that_can_never_be_sent_are_failed_never_unknown(
    fake: FakeCronofy, base_url: str, tmp_path: Path
) -> None:
    # A JSON line can carry half of a surrogate pair, NaN, or a sub no header can carry: each
    # is refused before anything goes out, and a re-run knows it was never sent.
    source = tmp_path / "in.jsonl"
    source.write_text(
        "\n".join(
            [
                '{"email": "a@example.com", "summary": "Intro \\ud83d call"}',
                '{"email": "b@example.com", "impersonate": "acc_\\u00e9"}',
                '{"email": "c@example.com", "impersonate": "acc_2\\u200b"}',
                '{"email": "d@example.com"}',
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    output = tmp_path / "out.jsonl"
    status, _out, _err = await run(batch_args(*common(source, output, base_url)))
    assert status == 1
    states = final_states(output)
    assert states[4] == "created"
    assert {states[1], states[2], states[3]} <= {"invalid", "failed"}  # never sent, re-sendable
    assert fake.received == 1
