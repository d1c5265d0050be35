"""What ``cronofy-async`` refuses before any work: one line, exit 2, nothing sent or written."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pytest

from cronofy_async._cli import main
from cronofy_async._cli._args import (
    SecretFileError,
    hide_secrets,
    looks_like_secret,
    read_secret_file,
)
from cronofy_async._cli._extras import _requirements, missing_extra
from cronofy_async._cli._rows import Defaults, check_columns, survey
from cronofy_async._version import __version__

from .cli_support import SECRET, cli, people, write_csv

NOWHERE = "http://127.0.0.1:9"  # were anything sent, it would fail there (status 1, not 2)


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRONOFY_CLIENT_SECRET", SECRET)


def refused(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """Run the command, check it refused in one line with status 2, return that line."""
    status = main(list(argv))
    captured = capsys.readouterr()
    assert status == 2
    assert captured.out == ""
    assert captured.err.count("\n") == 1, captured.err
    assert captured.err.startswith("cronofy-async ")
    return captured.err


def batch(source: Path, output: Path, *more: str) -> list[str]:
    return ["batch", str(source), "-o", str(output), "--base-url", NOWHERE, "--plain", *more]


def test_an_output_that_is_a_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = write_csv(tmp_path / "in.csv", people(1))
    line = refused(capsys, *batch(source, tmp_path, "--host", "acc_1", "--summary", "x"))
    assert f"{tmp_path}: is a directory; give --output a file name" in line


def test_an_output_that_cannot_be_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write_csv(tmp_path / "in.csv", people(1))
    blocker = tmp_path / "file"
    blocker.write_text("", encoding="utf-8")
    output = blocker / "results.jsonl"  # its directory is a file
    line = refused(capsys, *batch(source, output, "--host", "acc_1", "--summary", "x"))
    assert f"{output}: cannot write it: " in line


def test_the_output_is_the_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"email": "a@example.com"}\n', encoding="utf-8")
    line = refused(capsys, *batch(source, source, "--host", "acc_1", "--summary", "x"))
    assert "is the input file; give --output another file" in line
    assert source.read_text(encoding="utf-8") == '{"email": "a@example.com"}\n'


@pytest.mark.parametrize("kind", ["directory", "missing"])
def test_an_input_that_is_not_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    source = tmp_path / "in.csv"
    if kind == "directory":
        source.mkdir()
    line = refused(capsys, *batch(source, tmp_path / "o.jsonl", "--host", "a", "--summary", "x"))
    assert ("is a directory, not an input file" if kind == "directory" else "no such file") in line
    assert not (tmp_path / "o.jsonl").exists()


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("email,name\na@example.com,A\n", "has no host, group_rule or impersonate column, and"),
        ('{"email": "a@example.com"}\n', "no line has a host, group_rule or impersonate key"),
        ("email,host\na@example.com,acc_1\n", "has no 'summary' column, and no --summary TEXT"),
        ("name,summary\nA,B\n", "the header row has no 'email' column (found: name, summary)"),
        ("ada@example.com,Ada\n", "the first line must name the columns"),
        ('{"address": "a@example.com"}\n', "no line has an 'email' key (found: address)"),
    ],
)
def test_no_row_could_be_sent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, fragment: str
) -> None:
    suffix = ".jsonl" if content.startswith("{") else ".csv"
    source = tmp_path / f"in{suffix}"
    source.write_text(content * 1000, encoding="utf-8")  # many rows, still one line
    defaults = [] if "summary" in fragment else ["--summary", "x"]
    line = refused(capsys, *batch(source, tmp_path / "o.jsonl", *defaults))
    assert fragment in line


@pytest.mark.parametrize(
    ("header", "meant"),
    [
        ("email,dispaly_name", "'dispaly_name' (did you mean 'display_name'?)"),
        ("email,sumary", "'sumary' (did you mean 'summary'?)"),
        ("Email,Host Sub,impersonat", "'impersonat' (did you mean 'impersonate'?)"),
        ("emial,name", "'emial' (did you mean 'email'?)"),
    ],
)
def test_a_near_miss_of_a_column_names_the_one_meant(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], header: str, meant: str
) -> None:
    source = write_csv(tmp_path / "in.csv", ["a@example.com,x,y"], header=header)
    line = refused(
        capsys, *batch(source, tmp_path / "o.jsonl", "--host", "acc_1", "--summary", "x")
    )
    assert f"unknown column {meant}: rename it and run again" in line


def test_a_near_miss_in_jsonl(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"email": "a@example.com", "sumary": "x", "host": "acc_1"}\n', "utf-8")
    line = refused(capsys, *batch(source, tmp_path / "o.jsonl"))
    assert "'sumary' (did you mean 'summary'?)" in line


def test_other_unknown_columns_are_listed_once_as_ignored(tmp_path: Path) -> None:
    source = write_csv(
        tmp_path / "in.csv",
        [f"p{i}@example.com,P,555,Acme,x@example.com" for i in range(50)],
        header="email,name,phone,Company,email2",
    )
    notes = check_columns(survey(source), Defaults(host="acc_1", summary="x"))
    assert notes == [
        f"{source}: ignoring columns this command does not use: phone, Company, email2"
    ]


@pytest.mark.parametrize("encoding", ["latin-1", "utf-16"])
async def test_an_input_that_is_not_utf8(tmp_path: Path, encoding: str) -> None:
    source = tmp_path / "people.csv"
    source.write_bytes("email,name\nzoe@example.com,Zoë\n".encode(encoding))
    done = await cli(*batch(source, tmp_path / "o.jsonl", "--host", "acc_1", "--summary", "x"))
    assert done.status == 2
    assert done.err.count("\n") == 1
    assert f"{source}: line " in done.err
    assert "is not UTF-8 text" in done.err
    assert "save the file as UTF-8" in done.err
    assert not (tmp_path / "o.jsonl").exists()


def test_a_bad_byte_late_in_the_file_is_found_before_anything_is_sent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "in.csv"
    source.write_bytes(("email\n" + "a@example.com\n" * 5000).encode() + b"caf\xe9@example.com\n")
    line = refused(capsys, *batch(source, tmp_path / "o.jsonl", "--host", "a", "--summary", "x"))
    assert "line 5002 is not UTF-8 text (byte 0xe9)" in line


@pytest.mark.parametrize(
    "argv",
    [
        ["--client-secret=sk_live_LEAKME"],
        ["--client-secret", "sk_live_LEAKME"],
        ["--client-secret"],
        ["--client-secrt=sk_live_LEAKME"],
        ["--client-secret-fil=sk_live_LEAKME"],
        ["--CLIENT-SECRET", "sk_live_LEAKME"],
    ],
)
def test_a_secret_on_the_command_line_is_refused_unseen(
    tmp_path: Path, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["batch", "in.csv", "-o", str(tmp_path / "o.jsonl"), *argv])
    assert info.value.code == 2
    captured = capsys.readouterr()
    assert "LEAKME" not in captured.out + captured.err
    assert captured.err.count("\n") == 1
    assert captured.err.startswith("cronofy-async")
    assert captured.err.endswith(" --help)\n")
    if argv[0] == "--client-secret":
        assert "--client-secret is not accepted: a secret on the command line" in captured.err


async def test_a_secret_on_the_real_command_line(tmp_path: Path) -> None:
    done = await cli("batch", "in.csv", "-o", str(tmp_path / "o"), "--client-secret=sk_LEAKME")
    assert done.status == 2
    assert "LEAKME" not in done.out + done.err
    assert "Traceback" not in done.err
    assert "--client-secret is not accepted" in done.err


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (None, "the file given does not exist"),
        (b"\xff\xfe", "the file given is not UTF-8 text"),
        ("dir", "the file given is a directory"),
    ],
)
@pytest.mark.parametrize("command", ["batch", "query", "members", "cancel"])
def test_an_unreadable_secret_file(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: bytes | str | None,
    says: str,
    command: str,
) -> None:
    # The path is not repeated: it may be the secret itself, pasted after the wrong option.
    secret = tmp_path / "sk_live_LEAKME"
    if content == "dir":
        secret.mkdir()
    elif isinstance(content, bytes):
        secret.write_bytes(content)
    source = write_csv(tmp_path / "in.csv", people(1))
    argv = {
        "batch": batch(source, tmp_path / "o.jsonl", "--host", "a", "--summary", "x"),
        "query": ["query", "srq_1", "--base-url", NOWHERE],
        "members": ["members", "--base-url", NOWHERE],
        "cancel": ["cancel", "srq_1", "--base-url", NOWHERE],
    }[command]
    line = refused(capsys, *argv, "--client-secret-file", str(secret))
    assert f"--client-secret-file: {says}" in line
    assert "LEAKME" not in line


def test_a_secret_file_that_cannot_be_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: Path, *args: object, **kwargs: object) -> str:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_text", refuse)
    with pytest.raises(SecretFileError) as info:
        read_secret_file(tmp_path / "sk_live_LEAKME")
    assert str(info.value).startswith(
        "--client-secret-file: the file given cannot be read (Permission denied)"
    )
    assert "LEAKME" not in str(info.value)


@pytest.mark.parametrize(
    "argv",
    [
        ["sk_live_LEAKME"],  # a stray positional
        ["CRN_LEAKMEggYusqPGLxwjw5FHOJYOqSrTPNXy8WQf14OID"],
        ["LEAKMEqPGLxwjw5FHOJYOqSrTPNXy8WQf14OIDa"],  # long and random-looking
        ["--data-center", "sk_live_LEAKME"],
        ["--base-url", "sk_live_LEAKME"],
        ["--concurrency", "sk_live_LEAKME"],
    ],
)
def test_a_secret_pasted_in_the_wrong_place_is_not_echoed(
    tmp_path: Path, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    source = write_csv(tmp_path / "in.csv", people(1))
    more = ["--host", "acc_1", "--summary", "x", *argv]
    try:
        status = main(["batch", str(source), "-o", str(tmp_path / "o.jsonl"), *more])
    except SystemExit as exc:
        status = exc.code  # type: ignore[assignment]
    assert status == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "LEAKME" not in err
    assert "[hidden]" in err


@pytest.mark.parametrize(
    ("value", "secret"),
    [
        ("sk_live_abc", True),
        ("CRN_NggYusqPGLxwjw5FHOJYOqSrTPNXy8WQf14OID", True),
        ("NggYusqPGLxwjw5FHOJYOqSrTPNXy8WQf14OID", True),
        ("acc_5ba21743f408617d1269ea1e", False),  # an account's sub: an id, shown
        ("srq_5ba21743f408617d1269ea1e", False),
        ("people-2025-01-02.csv", False),
        ("https://api-uk.cronofy.com", False),
        ("ada@example.com", False),
        ("uk", False),
    ],
)
def test_what_looks_like_a_secret(value: str, secret: bool) -> None:
    assert looks_like_secret(value) is secret


def test_unknown_options_are_echoed_without_their_values(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["batch", "in.csv", "-o", "o.jsonl", "--tokn=abc123", "--pass", "def456", "--x"])
    err = capsys.readouterr().err
    assert "unrecognized arguments: --tokn=[hidden] --pass [hidden] --x" in err
    assert "abc123" not in err
    assert "def456" not in err


def test_hide_secrets() -> None:
    argv = ["--client-secret=abc123", "--x-secret", "def456", "--plain", "--secret", "-o"]
    message = "unrecognized arguments: --client-secret=abc123 --x-secret def456"
    assert hide_secrets(message, argv) == (
        "unrecognized arguments: --client-secret=[hidden] --x-secret [hidden]"
    )


@pytest.mark.parametrize("command", ["demo", "fake-server"])
def test_a_command_without_its_extra(
    command: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # import uvicorn now raises ImportError
    line = refused(capsys, command)
    assert f"cronofy-async {command} needs uvicorn (the 'testing' extra)" in line
    assert "run  python -m pip install " in line
    assert "'uvicorn>=" in line
    assert "cronofy-async[" not in line  # a name the package index may not know


def test_the_install_line_comes_from_the_package_metadata(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib.metadata

    def requires(name: str) -> list[str]:
        assert name == "cronofy-async"
        return [
            "httpx>=0.27,<1",
            'uvicorn>=0.31; extra == "testing"',
            "httptools >= 0.6 ; extra == 'testing'",
            "cronofy-async[testing]; extra == 'cli'",
        ]

    monkeypatch.setattr(importlib.metadata, "requires", requires)
    assert _requirements("testing") == ["uvicorn>=0.31", "httptools>=0.6"]

    def not_installed(name: str) -> list[str]:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "requires", not_installed)
    assert _requirements("testing") == ["uvicorn>=0.30", "httptools>=0.6"]
    assert missing_extra("demo", "json", "testing") is None


def test_demo_rows_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    for rows in ("0", "many"):
        with pytest.raises(SystemExit):
            main(["demo", "--rows", rows])
        assert f"--rows: must be a whole number from 1, not '{rows}'" in capsys.readouterr().err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out == f"cronofy-async {__version__}\n"


async def test_a_malformed_jsonl_line_is_named_once(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"email": "nope"}\n{"email": \n', encoding="utf-8")
    done = await cli(*batch(source, tmp_path / "o.jsonl", "--host", "acc_1", "--summary", "x"))
    [message] = [line for line in done.err.splitlines() if "not valid JSON" in line]
    assert message == "line 2: not valid JSON (Expecting value at column 11)"
    invalid = [json.loads(line) for line in (tmp_path / "o.jsonl").read_text("utf-8").splitlines()]
    assert [(r["line"], r["outcome"]) for r in invalid] == [(1, "invalid"), (2, "invalid")]


def test_python_dash_m(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import runpy

    monkeypatch.setattr(sys, "argv", ["cronofy-async", "--version"])
    with pytest.raises(SystemExit) as info:
        runpy.run_module("cronofy_async._cli", run_name="__main__")
    assert info.value.code == 0
    assert capsys.readouterr().out == f"cronofy-async {__version__}\n"


def test_python_dash_m_of_the_fake_server(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import runpy

    monkeypatch.setattr(sys, "argv", ["python -m cronofy_async.testing", "--help"])
    with pytest.raises(SystemExit) as info:
        runpy.run_module("cronofy_async.testing", run_name="__main__")
    assert info.value.code == 0
    assert "--fault KIND=P" in capsys.readouterr().out


def test_the_fake_server_command_serves_when_it_can(monkeypatch: pytest.MonkeyPatch) -> None:
    from cronofy_async._cli import _fake_server

    served: list[argparse.Namespace] = []

    def serve(args: argparse.Namespace) -> int:
        served.append(args)
        return 0

    monkeypatch.setattr(_fake_server, "run_from_arguments", serve)
    assert main(["fake-server", "--port", "0"]) == 0
    assert served[0].port == 0
