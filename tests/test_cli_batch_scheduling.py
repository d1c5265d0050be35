"""
``cronofy-async batch --scheduling``: scheduling requests (BETA), with the same resume guarantees.

The resume cases run the command as a real subprocess against FakeCronofy over loopback and
check the fake's scheduling ledger: who was invited, and that no invite was created twice.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cronofy_async import (
    Event,
    Host,
    NewSchedulingRequest,
    PermissionDeniedError,
    Recipient,
    SelectionRule,
)
from cronofy_async._cli import main
from cronofy_async._cli._key import SCHEDULER_REQUEST, SCHEDULING_REQUEST
from cronofy_async._cli._results import ResultsError, load_history
from cronofy_async._cli._rows import (
    Defaults,
    InputError,
    Invite,
    Row,
    RowError,
    check_kind,
    read_rows,
    survey,
)
from cronofy_async._cli._stops import explain_stop
from cronofy_async.testing import FakeCronofy, Fault, Faults

from .cli_support import (
    SECRET,
    Done,
    batch_args,
    cli,
    cli_env,
    last_run,
    outcomes_of,
    people,
    records,
    run,
    summary_counts,
    write_csv,
)

RULE = "sel_support"


@pytest.fixture
def fake() -> FakeCronofy:
    return FakeCronofy(
        [SECRET],
        members=["acc_1", "acc_2"],
        selection_rules={RULE: ("Support", 1, ["acc_1@example.com"])},
        rate_limit=None,
    )


@pytest.fixture
async def url(fake: FakeCronofy) -> AsyncIterator[str]:
    async with fake.serve() as base_url:
        yield base_url


def argv(source: Path, output: Path, url: str, *more: str, host: str = "--host") -> list[str]:
    """``batch --scheduling`` with one way to host (acc_1, or the rule), a summary, the fake."""
    hosted = [host, RULE if host == "--selection-rule" else "acc_1"] if host else []
    options = ["-o", str(output), *hosted, "--summary", "Hi", "--base-url", url]
    return ["batch", str(source), "--scheduling", *options, "--plain", "--no-pacing", *more]


async def batch(source: Path, output: Path, url: str, *more: str, **options: Any) -> Done:
    done = await cli(*argv(source, output, url, *more, **options))
    assert "Traceback" not in done.err
    return done


def scheduled(fake: FakeCronofy, *, only: bool = True) -> list[str]:
    """
    Everyone the fake sent a scheduling request, in order; nobody twice.

    `only`: and no scheduler request was created.
    """
    assert fake.scheduling_duplicates() == {}
    if only:
        assert fake.created == []
    return [entry.email.lower() for entry in fake.scheduling_requests]


def emails(count: int, start: int = 0) -> set[str]:
    return {f"person{i}@example.com" for i in range(start, start + count)}


# -- what is sent, and what is recorded --------------------------------------------------------


async def test_each_way_to_host_and_what_the_records_say(
    fake: FakeCronofy, url: str, tmp_path: Path
) -> None:
    source, output = tmp_path / "in.csv", tmp_path / "results.jsonl"
    rows = [
        "a@example.com,Ada,acc_2,,",
        f"b@example.com,Bob,,{RULE},",
        "c@example.com,Cy,,,acc_2",
        "d@example.com,,,,",  # the options': --host acc_1
    ]
    write_csv(source, rows, header="email,display_name,host,selection_rule,impersonate")
    done = await batch(source, output, url)
    assert done.status == 0, done.err
    assert summary_counts(done.out) == {"created": 4}
    assert sorted(scheduled(fake)) == [f"{name}@example.com" for name in "abcd"]
    hosts = {e.email: (e.host_sub, e.host_group, e.impersonated) for e in fake.scheduling_requests}
    assert hosts == {
        "a@example.com": ("acc_2", None, None),
        "b@example.com": (None, {"sub": RULE}, None),
        "c@example.com": (None, None, "acc_2"),
        "d@example.com": ("acc_1", None, None),
    }
    ada = next(e for e in fake.scheduling_requests if e.email == "a@example.com")
    assert ada.body["recipients"] == [
        {"email": "a@example.com", "display_name": "Ada", "slot_selector": True}
    ]
    assert ada.body["event"] == {"summary": "Hi"}

    # Every record has every field (records() checks); the ids are the scheduling requests'.
    found = records(output)
    assert {r["kind"] for r in found} == {SCHEDULING_REQUEST}
    created = {r["email"]: r for r in found if r["outcome"] == "created"}
    ledger = {e.email: e for e in fake.scheduling_requests}
    assert {e: r["scheduler_request_id"] for e, r in created.items()} == {
        e: entry.scheduling_request_id for e, entry in ledger.items()
    }
    assert {e: r["select_url"] for e, r in created.items()} == {
        e: entry.select_url for e, entry in ledger.items()
    }
    assert created["b@example.com"]["selection_rule"] == RULE
    assert all(r["group_rule"] is None for r in found)

    # The ids recorded are what `cronofy-async query` and `cancel` take, as docs/cli.md shows.
    ids = [r["scheduler_request_id"] for r in found if r["outcome"] == "created"]
    fake.select_slot(ids[0])
    query = await cli("query", *ids, "--base-url", url, "--json")
    assert query.status == 0, query.err
    answers = [json.loads(line) for line in query.out.splitlines()]
    assert [a["slot_selection"] for a in answers] == ["complete", "pending", "pending", "pending"]


async def test_a_selection_rule_for_every_row(fake: FakeCronofy, url: str, tmp_path: Path) -> None:
    source, output = tmp_path / "in.jsonl", tmp_path / "results.jsonl"
    source.write_text('{"email": "a@example.com"}\n{"email": "b@example.com"}\n', "utf-8")
    done = await batch(source, output, url, host="--selection-rule")
    assert done.status == 0, done.err
    assert [e.host_group for e in fake.scheduling_requests] == [{"sub": RULE}] * 2
    assert len(scheduled(fake)) == 2

    # An unknown rule is refused by Cronofy (the fake knows its rules): that row fails alone.
    source.write_text('{"email": "c@example.com", "selection_rule": "sel_gone"}\n', "utf-8")
    failed = await batch(source, output, url, host="--selection-rule")
    assert failed.status == 1
    assert "line 1: failed: host_group.sub: unknown selection rule" in failed.err
    assert len(scheduled(fake)) == 2


# -- resuming ----------------------------------------------------------------------------------


async def test_editing_the_input_between_runs_invites_each_row_once(
    fake: FakeCronofy, url: str, tmp_path: Path
) -> None:
    source, output = tmp_path / "in.csv", tmp_path / "results.jsonl"
    rows = people(6)
    write_csv(source, [*rows[:2], "not-an-email,Bad", *rows[2:]])
    first = await batch(source, output, url)
    assert first.status == 1
    assert summary_counts(first.out) == {"created": 6, "invalid": 1}
    assert "line 4: recipients.email: 'not-an-email' is not a valid email address" in first.err

    # The bad row deleted, a new one at the top, the rest reversed, one name spelt anew.
    edited = [row.replace("Person 3", "P. Three") for row in reversed(rows)]
    write_csv(source, ["new@example.com,New", *edited])
    second = await batch(source, output, url)
    assert second.status == 0
    assert summary_counts(second.out) == {"created": 1, "created_before": 6}
    assert "person3@example.com was invited before as 'Person 3' (srq_" in second.err
    assert sorted(scheduled(fake)) == sorted({*emails(6), "new@example.com"})
    [new] = [r for r in last_run(output) if r["outcome"] == "created"]
    assert (new["line"], new["email"]) == (2, "new@example.com")
    # A skipped row points at the scheduling request that exists.
    ids = {e.email: e.scheduling_request_id for e in fake.scheduling_requests}
    skipped = [r for r in last_run(output) if r["outcome"] == "created_before"]
    assert {r["email"]: r["scheduler_request_id"] for r in skipped} == {
        e: i for e, i in ids.items() if e != "new@example.com"
    }

    # Another summary is another invite, as for scheduler requests.
    third = await batch(source, output, url, "--summary", "Follow-up")
    assert summary_counts(third.out) == {"created": 7}
    assert len(scheduled(fake)) == 14


async def test_unknown_rows_are_written_ahead_and_not_resent_without_the_flag(
    fake: FakeCronofy, url: str, tmp_path: Path
) -> None:
    source, output = write_csv(tmp_path / "in.csv", people(5)), tmp_path / "results.jsonl"
    fake.inject(Fault.DROP_AFTER)  # line 2: created, then the answer lost -> unknown
    fake.inject(Fault.UNAVAILABLE)  # line 3: a 503, may exist -> unknown (was not created)
    first = await batch(source, output, url, "--concurrency", "1")
    assert first.status == 1
    assert summary_counts(first.out) == {"created": 3, "unknown": 2}
    assert [r["outcome"] for r in records(output) if r["line"] in (2, 3)] == [
        "sending",
        "unknown",
        "sending",
        "unknown",
    ]
    assert len(scheduled(fake)) == 4  # line 2's exists, unbeknown to the command

    # Moved, still recognised by key; sent nothing at all.
    write_csv(source, list(reversed(people(5))))
    received = fake.received
    second = await batch(source, output, url)
    assert second.status == 1
    assert summary_counts(second.out) == {"created_before": 3, "unknown_before": 2}
    assert fake.received == received
    assert "--resend-unknown" in second.out

    # With the flag they are sent again: line 2's now exists twice, as the flag warns.
    third = await batch(source, output, url, "--resend-unknown")
    assert third.status == 0
    assert summary_counts(third.out) == {"created": 2, "created_before": 3}
    assert list(fake.scheduling_duplicates()) == [("person0@example.com", "acc_1", "Hi")]

    # Created now: never sent again, with the flag or without.
    fourth = await batch(source, output, url, "--resend-unknown")
    assert summary_counts(fourth.out) == {"created_before": 5}
    assert len(fake.scheduling_requests) == 6


async def test_kill_9_mid_flight_then_resume(tmp_path: Path) -> None:
    fake = FakeCronofy([SECRET], members=["acc_1"], rate_limit=None, faults=Faults(latency=0.2))
    source, output = write_csv(tmp_path / "in.csv", people(60)), tmp_path / "results.jsonl"
    async with fake.serve() as url:
        command = ["-m", "cronofy_async._cli", *argv(source, output, url, "--concurrency", "10")]
        first = await asyncio.create_subprocess_exec(
            sys.executable, *command, env=cli_env(), stderr=-3, stdout=-3
        )
        while fake.received < 20:  # noqa: ASYNC110 - polling the fake's counter is the point
            await asyncio.sleep(0.01)
        first.kill()  # SIGKILL: no chance to write anything more
        await first.wait()
        fake.faults = Faults()
        written = records(output)
        cut_off = {r["key"] for r in written if r["outcome"] == "sending"}
        cut_off -= {r["key"] for r in written if r["outcome"] != "sending"}
        assert cut_off  # rows whose request was in flight when the process died

        second = await batch(source, output, url)
    assert second.status == 1  # rows cut off mid-flight may exist: not re-sent blindly
    second_run = last_run(output)
    counts = outcomes_of(second_run)
    assert counts == summary_counts(second.out)
    assert sum(counts.values()) == 60
    assert {r["key"] for r in second_run if r["outcome"] == "unknown_before"} == cut_off
    ledger = scheduled(fake)  # nobody twice
    assert len(ledger) >= counts["created_before"] + counts["created"]


async def test_a_401_stops_the_batch_and_the_terminal_says_why(
    fake: FakeCronofy, url: str, tmp_path: Path
) -> None:
    source, output = write_csv(tmp_path / "in.csv", people(12)), tmp_path / "results.jsonl"
    revoked = cli_env(CRONOFY_CLIENT_SECRET="sk_revoked")
    done = await cli(*argv(source, output, url, "--concurrency", "1"), env=revoked)
    assert done.status == 1
    assert "stopped: Cronofy answered 401 to line 2, so nothing more was sent." in done.err
    assert "The client secret was not accepted" in done.err
    assert summary_counts(done.out) == {"failed": 1, "not_sent": 11}
    assert fake.received == 1
    assert scheduled(fake) == []

    again = await batch(source, output, url)
    assert again.status == 0
    assert sorted(scheduled(fake)) == sorted(emails(12))


async def test_a_403_names_the_account(fake: FakeCronofy, url: str, tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    lines = [{"email": "a@example.com", "impersonate": "acc_9"}, {"email": "b@example.com"}]
    source.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    status, out, err = await run(
        batch_args(*argv(source, tmp_path / "o.jsonl", url, "--concurrency", "1")[1:])
    )
    assert status == 1
    assert "line 1: failed: Cronofy answered 403 to a request sent as acc_9: the account" in err
    assert summary_counts(out) == {"failed": 1, "created": 1}
    assert [e.email for e in fake.scheduling_requests] == ["b@example.com"]


def test_a_403_for_a_selection_rule_names_the_rule() -> None:
    response = httpx.Response(403, request=httpx.Request("POST", "https://x/"))
    error = PermissionDeniedError("Cronofy answered", response=response, outcome_unknown=False)
    invite = Invite(kind=SCHEDULING_REQUEST, data_center="us", email="a@x", selection_rule=RULE)
    assert f"(selection rule {RULE}): the account" in explain_stop(error, line=3, invite=invite)


# -- one kind per results file -----------------------------------------------------------------


async def test_a_results_file_of_scheduler_requests_is_refused_untouched(
    fake: FakeCronofy, url: str, tmp_path: Path
) -> None:
    source, output = write_csv(tmp_path / "in.csv", people(3)), tmp_path / "results.jsonl"
    plain = argv(source, output, url)
    plain.remove("--scheduling")
    first = await cli(*plain)
    assert first.status == 0
    assert fake.created_count == 3
    with output.open("a", encoding="utf-8") as stream:
        stream.write('{"line": 9, "outc')  # and a kill cut the last record short
    before, received = output.read_bytes(), fake.received

    done = await batch(source, output, url)
    assert done.status == 2
    assert done.out == ""
    assert done.err.count("\n") == 1
    assert (
        f"{output}: line 1 is a record of scheduler requests, and this run creates scheduling "
        "requests (--scheduling): one results file holds one kind" in done.err
    )
    assert "Give a new --output file" in done.err
    assert fake.received == received
    assert output.read_bytes() == before  # not even the cut-off line's newline added

    # A new results file, as the message says: the scheduling requests are sent.
    fresh = await batch(source, tmp_path / "scheduling.jsonl", url)
    assert fresh.status == 0
    assert sorted(scheduled(fake, only=False)) == sorted(emails(3))


async def test_a_results_file_of_scheduling_requests_is_refused_without_the_flag(
    fake: FakeCronofy, url: str, tmp_path: Path
) -> None:
    source, output = write_csv(tmp_path / "in.csv", people(2)), tmp_path / "results.jsonl"
    assert (await run(batch_args(*argv(source, output, url)[1:])))[0] == 0
    before = output.read_bytes()
    plain = argv(source, output, url)[1:]
    plain.remove("--scheduling")
    status, out, err = await run(batch_args(*plain))
    assert (status, out, err.count("\n")) == (2, "", 1)
    assert (
        "line 1 is a record of scheduling requests (--scheduling), and this run creates "
        "scheduler requests" in err
    )
    assert output.read_bytes() == before
    assert fake.created == []


@pytest.mark.parametrize(
    ("kind", "record", "says"),
    [
        (SCHEDULING_REQUEST, {}, "a record of scheduler requests"),  # written before kinds
        (SCHEDULING_REQUEST, {"kind": None}, "a record of scheduler requests"),
        (SCHEDULER_REQUEST, {"kind": "meeting"}, "a record of 'meeting' requests"),
    ],
)
def test_the_kind_of_a_record(tmp_path: Path, kind: str, record: dict[str, Any], says: str) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps({"line": 2, "outcome": "created", "key": "k", **record}) + "\n")
    with pytest.raises(ResultsError, match=f"line 1 is {says}"):
        load_history(path, kind)
    assert load_history(path).created("k") is not None  # no kind asked: read as it is


async def test_an_old_results_file_is_still_refused_as_old(
    fake: FakeCronofy, url: str, tmp_path: Path
) -> None:
    source, output = write_csv(tmp_path / "in.csv", people(1)), tmp_path / "results.jsonl"
    output.write_text('{"line": 2, "email": "person0@example.com", "outcome": "created"}\n')
    status, _, err = await run(batch_args(*argv(source, output, url)[1:]))
    assert status == 2
    assert "line 1 is a record of an earlier cronofy-async, which matched rows by line" in err
    assert fake.received == 0


# -- refused before anything is sent -----------------------------------------------------------


def refused(capsys: pytest.CaptureFixture[str], tmp_path: Path, source: Path, *more: str) -> str:
    """Run the command, check it refused in one line with status 2, return that line."""
    output = tmp_path / "o.jsonl"
    status = main(
        ["batch", str(source), "-o", str(output), "--base-url", "http://127.0.0.1:9", *more]
    )
    captured = capsys.readouterr()
    assert status == 2
    assert captured.out == ""
    assert captured.err.count("\n") == 1, captured.err
    assert not output.exists()
    return captured.err


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRONOFY_CLIENT_SECRET", SECRET)


@pytest.mark.parametrize(
    ("options", "says"),
    [
        (
            ["--scheduling", "--group-rule", "sgr_1"],
            "--group-rule names a scheduler group rule, which scheduling requests "
            "(--scheduling) do not take: give --selection-rule SUB, --host SUB or",
        ),
        (
            ["--selection-rule", RULE],
            "--selection-rule is for scheduling requests: add --scheduling (scheduler requests "
            "take --group-rule ID)",
        ),
    ],
)
def test_options_of_the_other_kind(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], options: list[str], says: str
) -> None:
    source = write_csv(tmp_path / "in.csv", people(1))
    assert says in refused(capsys, tmp_path, source, "--summary", "Hi", *options)


def test_one_way_to_host_on_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write_csv(tmp_path / "in.csv", people(1))
    with pytest.raises(SystemExit) as info:
        main(
            [
                "batch",
                str(source),
                "-o",
                "x",
                "--scheduling",
                "--selection-rule",
                RULE,
                "--host",
                "a",
            ]
        )
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "argument --host: not allowed with argument --selection-rule" in err


@pytest.mark.parametrize(
    ("content", "options", "says"),
    [
        (
            "email,group_rule\na@example.com,sgr_1\n",
            ["--scheduling"],
            "in.csv: the 'group_rule' column names scheduler group rules, which scheduling "
            "requests (--scheduling) do not take: name a selection rule (sel_...) in a "
            "'selection_rule' column instead, or remove the column",
        ),
        (
            'email,Scheduler Group Rule\na@example.com,""\n',
            ["--scheduling", "--host", "acc_1"],
            "the 'Scheduler Group Rule' column names scheduler group rules",
        ),
        (
            f"email,selection_rule\na@example.com,{RULE}\n",
            ["--host", "acc_1"],
            "in.csv: the 'selection_rule' column is for scheduling requests: add --scheduling, "
            "or remove the column",
        ),
        (
            "email,name\na@example.com,A\n",
            ["--scheduling"],
            "in.csv: the header row has no host, selection_rule or impersonate column, and none "
            "of --host SUB, --selection-rule SUB or --impersonate SUB was given",
        ),
        (
            "email,selecton_rule\na@example.com,sel_1\n",
            ["--scheduling", "--host", "acc_1"],
            "unknown column 'selecton_rule' (did you mean 'selection_rule'?)",
        ),
    ],
)
def test_columns_of_the_other_kind_or_none(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: str,
    options: list[str],
    says: str,
) -> None:
    source = tmp_path / "in.csv"
    source.write_text(content, encoding="utf-8")
    assert says in refused(capsys, tmp_path, source, "--summary", "Hi", *options)


def test_a_jsonl_without_a_host_says_so_in_its_terms(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"email": "a@example.com"}\n', encoding="utf-8")
    line = refused(capsys, tmp_path, source, "--summary", "Hi", "--scheduling")
    assert "no line has a host, selection_rule or impersonate key" in line
    source.write_text('{"email": "a@example.com", "group_rule": "sgr_1"}\n', encoding="utf-8")
    line = refused(capsys, tmp_path, source, "--summary", "Hi", "--scheduling")
    assert "the 'group_rule' key names scheduler group rules" in line
    assert "in a 'selection_rule' key instead, or remove the key" in line


# -- rows --------------------------------------------------------------------------------------


def rows(path: Path, **defaults: str) -> list[Row | RowError]:
    return list(read_rows(survey(path), Defaults(kind=SCHEDULING_REQUEST, **defaults)))


def test_what_each_row_sends(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text(
        "email,name,host,selection_rule,impersonate\n"
        f"a@example.com,Ada,,{RULE},\n"
        "b@example.com,,acc_2,,acc_1\n"  # sent as acc_1, hosted by acc_2
        "c@example.com,,,,\n"
        f"d@example.com,,acc_2,{RULE},\n"
        ",,acc_2,,\n",
        encoding="utf-8",
    )
    a, b, c, d, e = rows(source, selection_rule="sel_default", summary="Hi")
    assert isinstance(a, Row)
    assert a.request == NewSchedulingRequest(
        host_group=SelectionRule(sub=RULE),
        recipients=[Recipient(email="a@example.com", display_name="Ada", slot_selector=True)],
        event=Event(summary="Hi"),
    )
    assert isinstance(b, Row)
    assert isinstance(b.request, NewSchedulingRequest)
    assert (b.request.host, b.invite.impersonate) == (Host(sub="acc_2"), "acc_1")
    assert isinstance(c, Row)  # the options' rule
    assert isinstance(c.request, NewSchedulingRequest)
    assert c.request.host_group == SelectionRule(sub="sel_default")
    assert isinstance(d, RowError)
    assert d.message == "give a host or a selection_rule, not both: they both pick who hosts"
    assert isinstance(e, RowError)
    assert "recipients.email" in e.message


def test_a_row_without_a_host_in_its_terms(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("email,host\na@example.com,\n", encoding="utf-8")
    [row] = rows(source, summary="Hi")
    assert isinstance(row, RowError)
    assert row.message == (
        "no host: give a host, selection_rule or impersonate column, "
        "or --host, --selection-rule or --impersonate"
    )


def test_the_kind_and_the_rule_make_another_key(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("email\na@example.com\n", encoding="utf-8")
    found = survey(source)

    def key(**defaults: str) -> str:
        [row] = read_rows(found, Defaults(summary="Hi", **defaults))
        assert isinstance(row, Row)
        return row.key

    scheduling = {"kind": SCHEDULING_REQUEST}
    assert key(host="acc_1") != key(host="acc_1", **scheduling)
    assert key(host="acc_1", **scheduling) == key(impersonate="acc_1", **scheduling)
    assert key(selection_rule="acc_1", **scheduling) != key(host="acc_1", **scheduling)
    # With a rule picking the host, the account sent as is not the host, nor part of the key.
    assert key(selection_rule=RULE, impersonate="acc_1", **scheduling) == key(
        selection_rule=RULE, **scheduling
    )


def test_the_options_are_checked_alone() -> None:
    with pytest.raises(InputError, match="--selection-rule is for scheduling requests"):
        check_kind(Defaults(selection_rule=RULE))
    check_kind(Defaults(selection_rule=RULE, kind=SCHEDULING_REQUEST))
    check_kind(Defaults(group_rule="sgr_1"))


# -- the fake's ledger -------------------------------------------------------------------------


async def test_the_fake_finds_scheduling_requests_created_twice() -> None:
    fake = FakeCronofy(members=["acc_1"], rate_limit=None)

    def request(email: str, summary: str = "Hi") -> NewSchedulingRequest:
        return NewSchedulingRequest(
            host=Host(sub="acc_1"),
            recipients=[Recipient(email=email)],
            event=Event(summary=summary),
        )

    async with fake.api(rate_limit=None) as api:
        await api.create_scheduling_request(request("a@example.com"))
        await api.create_scheduling_request(request("b@example.com"))
        assert fake.scheduling_duplicates() == {}
        await api.create_scheduling_request(request("A@Example.com"))
        await api.create_scheduling_request(request("b@example.com", summary="Other"))
    [(key, entries)] = fake.scheduling_duplicates().items()
    assert key == ("a@example.com", "acc_1", "Hi")
    assert [e.sequence for e in entries] == [0, 2]
    by_email = fake.scheduling_duplicates(key=lambda entry: entry.email.lower())
    assert set(by_email) == {"a@example.com", "b@example.com"}
