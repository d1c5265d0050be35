"""The resume key and the results file, piece by piece."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from cronofy_async._cli._key import invite_key
from cronofy_async._cli._results import (
    FIELDS,
    ResultsError,
    ResultsFile,
    load_history,
    make_record,
)
from cronofy_async._cli._rows import Invite

BASE = {"kind": "scheduler_request", "data_center": "us", "email": "ada@example.com"}


def key(**fields: str | None) -> str:
    return invite_key({**BASE, "host": "acc_1", "summary": "Intro", **fields})


def test_the_key_derivation_is_pinned() -> None:
    # Changing it would orphan every results file written so far: this must never change.
    canonical = (
        '{"data_center":"us","email":"ada@example.com","host":"acc_1",'
        '"kind":"scheduler_request","summary":"Intro"}'
    )
    assert key() == hashlib.sha256(canonical.encode()).hexdigest()


def test_the_key_of_a_scheduling_request_is_pinned() -> None:
    canonical = (
        '{"data_center":"us","email":"ada@example.com","kind":"scheduling_request",'
        '"selection_rule":"sel_1","summary":"Intro"}'
    )
    pinned = hashlib.sha256(canonical.encode()).hexdigest()
    assert key(kind="scheduling_request", host=None, selection_rule="sel_1") == pinned


def test_what_makes_the_same_invite() -> None:
    assert key(email="  Ada@EXAMPLE.com ") == key()
    assert key(summary=" Intro ") == key()
    assert key(group_rule=None, impersonate="") == key()  # absent, however written
    assert key(host=None, impersonate="acc_1") == key()  # sent as acc_1: acc_1 hosts
    # A host named in the row decides who hosts: the account it is sent as changes nothing.
    assert key(impersonate="acc_1") == key()
    assert key(impersonate="acc_2") == key()
    assert key(host=None, group_rule="sgr_1", impersonate="acc_1") == key(
        host=None, group_rule="sgr_1"
    )
    assert key(host=None, selection_rule="sel_1", impersonate="acc_1") == key(
        host=None, selection_rule="sel_1"
    )


@pytest.mark.parametrize(
    "change",
    [
        {"email": "bob@example.com"},
        {"summary": "Intro call"},
        {"host": "acc_2"},
        {"host": None, "group_rule": "acc_1"},
        {"host": None, "selection_rule": "acc_1"},
        {"host": None, "selection_rule": "sel_1", "impersonate": "acc_1"},  # the rule hosts
        {"data_center": "uk"},
        {"kind": "scheduling_request"},
    ],
)
def test_what_makes_another_invite(change: dict[str, str | None]) -> None:
    assert key(**change) != key()


def test_the_display_name_is_not_part_of_the_key() -> None:
    one = Invite(kind="scheduler_request", data_center="us", email="a@x.com", host="h", summary="s")
    other = Invite(
        kind="scheduler_request",
        data_center="us",
        email="A@x.com",
        display_name="Ada",
        host="h",
        summary="s",
    )
    assert one.key == other.key


def test_a_key_takes_known_fields_only() -> None:
    with pytest.raises(ValueError, match="not part of a resume key: colour"):
        invite_key({"email": "a@x.com", "colour": "red"})


def write(path: Path, *lines: dict[str, Any] | str) -> Path:
    text = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    path.write_text(text, encoding="utf-8")
    return path


def rec(outcome: str, k: str | None = "k1", **more: Any) -> dict[str, Any]:
    return {"line": 2, "outcome": outcome, "key": k, **more}


@pytest.mark.parametrize(
    ("outcomes", "created", "may_exist"),
    [
        ([], False, False),
        (["sending", "created"], True, False),
        (["sending"], False, True),  # cut off mid-flight
        (["sending", "failed"], False, False),
        (["sending", "not_sent"], False, False),
        (["sending", "unknown"], False, True),
        (["sending", "unknown", "sending", "failed"], False, True),  # the first may exist
        (["sending", "sending", "failed"], False, True),
        (["sending", "unknown", "sending", "created"], True, False),
        (["sending", "created", "sending", "failed"], True, False),
        (["sending", "created", "created_before", "duplicate", "invalid"], True, False),
        (["unknown_before", "created_before"], False, False),  # notes, not news
        (["sending", "vanished"], False, True),  # an outcome this version does not know
    ],
)
def test_a_keys_state(tmp_path: Path, outcomes: list[str], created: bool, may_exist: bool) -> None:
    history = load_history(write(tmp_path / "r.jsonl", *(rec(o) for o in outcomes)))
    assert (history.created("k1") is not None) == created
    assert history.may_exist("k1") == may_exist
    assert history.created("k2") is None
    assert not history.may_exist("k2")


def test_the_created_record_is_kept(tmp_path: Path) -> None:
    path = write(
        tmp_path / "r.jsonl",
        rec("created", scheduler_request_id="srq_1", select_url="https://x/1"),
        rec("created", scheduler_request_id="srq_2"),  # cannot happen; the first stands
    )
    created = load_history(path).created("k1")
    assert created is not None
    assert created["scheduler_request_id"] == "srq_1"


def test_torn_and_blank_lines(tmp_path: Path) -> None:
    k = "ab" * 32
    path = write(
        tmp_path / "r.jsonl",
        rec("sending", "k1"),
        rec("failed", "k1"),
        "",
        f'{{"line": 3, "outcome": "sending", "key": "{k}", "ru',  # cut off after its key
        '{"line": 4, "outcome": "sen',  # cut off before it
        "[1, 2]",
        rec("invalid", None),
    )
    history = load_history(path)
    assert history.unreadable == [4, 5, 6]
    assert history.may_exist(k)
    assert not history.may_exist("k1")


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ({"line": 2, "email": "a@x.com", "outcome": "created"}, "a record of an earlier"),
        ({"email": "a@x.com"}, "is not a record of cronofy-async batch"),
    ],
)
def test_files_that_are_refused(tmp_path: Path, line: dict[str, Any], says: str) -> None:
    path = write(tmp_path / "r.jsonl", rec("sending"), line)
    with pytest.raises(ResultsError, match=says) as info:
        load_history(path)
    assert f"{path}: line 2 " in str(info.value)
    assert "\n" not in str(info.value)


def test_a_record_has_every_field() -> None:
    invite = Invite(kind="scheduler_request", data_center="us", email="a@x.com")
    record = make_record(run="r", line=3, outcome="invalid", invite=invite, key=None, error="x")
    assert tuple(record) == FIELDS
    assert record["attempts"] == 0
    with pytest.raises(TypeError, match="not record fields: colour"):
        make_record(run="r", line=3, outcome="x", invite=invite, key=None, colour="red")


def test_appending_after_a_torn_last_line_starts_a_new_line(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps(rec("sending")) + '\n{"line": 3, "outc', encoding="utf-8")
    results = ResultsFile(path)
    results.open()
    results.write(rec("created"))
    results.close()
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[1] == '{"line": 3, "outc'
    assert json.loads(lines[2]) == rec("created")
    results = ResultsFile(path)  # a file that ends well gets nothing added
    results.open()
    results.close()
    assert path.read_text(encoding="utf-8").count("\n") == 3


def test_one_run_at_a_time(tmp_path: Path) -> None:
    first, second = ResultsFile(tmp_path / "r.jsonl"), ResultsFile(tmp_path / "r.jsonl")
    first.open()
    with pytest.raises(ResultsError, match="another cronofy-async batch is using"):
        second.open()
    first.close()
    second.open()
    second.close()


def test_no_results_file_yet(tmp_path: Path) -> None:
    history = load_history(tmp_path / "none.jsonl")
    assert history.created("k1") is None
    assert history.unreadable == []


def test_a_key_without_an_email() -> None:
    # An invalid row may have none; its key is still well defined.
    assert invite_key({"kind": "scheduler_request"}) != invite_key({**BASE})
