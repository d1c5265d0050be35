"""cronofy-async query, cancel and members, against FakeCronofy on loopback."""

from __future__ import annotations

import asyncio
import io
import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from cronofy_async import (
    MAX_QUERY_IDS,
    AsyncSchedulerAPI,
    Event,
    Host,
    NewSchedulingRequest,
    Recipient,
)
from cronofy_async._cli import _connect, _parser, main
from cronofy_async._cli._cancel import run_cancel
from cronofy_async._cli._members import run_members
from cronofy_async._cli._query import run_query
from cronofy_async.testing import FakeCronofy, Fault
from cronofy_async.testing._fake import IN_PROCESS_URL

from .helpers import FakeClock, use_clock

SECRET = "sk_cli_scheduling"

Runner = Callable[..., Awaitable[int]]


@pytest.fixture(autouse=True)
def _in_process(monkeypatch: pytest.MonkeyPatch, fake: FakeCronofy) -> None:
    # Everything the commands decide (secret, data center, base URL, pace) stays theirs; only
    # the transport is the fake's, in process, and time is virtual.
    def build(secret: str | None, **options: Any) -> AsyncSchedulerAPI:
        api = AsyncSchedulerAPI(secret, http_client=fake.client(), **options)
        api._shared.owns_http = True
        use_clock(api, FakeClock())
        return api

    monkeypatch.setattr(_connect, "AsyncSchedulerAPI", build)


@pytest.fixture
def fake() -> FakeCronofy:
    return FakeCronofy(
        [SECRET],
        members={"acc_1": "doc@evenitron.com", "acc_2": "marty@evenitron.com"},
        resources={"res_1": "Room 1"},
        page_size=1,
        rate_limit=None,
    )


@pytest.fixture
def base_url() -> str:
    """Where the commands are pointed: the fake, in process."""
    return IN_PROCESS_URL


async def cli(runner: Runner, *argv: str, secret: str | None = SECRET) -> tuple[int, str, str]:
    args = _parser().parse_args(list(argv))
    out, err = io.StringIO(), io.StringIO()
    status = await runner(args, secret=secret, out=out, err=err)
    return status, out.getvalue(), err.getvalue()


async def create(fake: FakeCronofy, count: int = 1) -> list[str]:
    async with fake.api(client_secret=SECRET, rate_limit=None) as api:
        made = [
            await api.create_scheduling_request(
                NewSchedulingRequest(
                    host=Host(sub="acc_1"),
                    recipients=[Recipient(email=f"p{i}@example.com")],
                    event=Event(summary="Intro"),
                )
            )
            for i in range(count)
        ]
    return [m.scheduling_request_id for m in made]


# -- query -----------------------------------------------------------------------------------


async def test_query_prints_a_table_in_the_order_asked(fake: FakeCronofy, base_url: str) -> None:
    first, second = await create(fake, 2)
    fake.select_slot(second)
    status, out, err = await cli(run_query, "query", second, first, "--base-url", base_url)
    assert status == 0, err
    header, *lines = out.splitlines()
    assert header.split() == ["ID", "SLOT", "SELECTION", "SELECT", "URL"]
    assert [line.split()[:2] for line in lines] == [[second, "complete"], [first, "pending"]]
    assert all("https://" in line for line in lines)


async def test_query_says_which_ids_were_not_found(fake: FakeCronofy, base_url: str) -> None:
    [known] = await create(fake)
    status, out, _ = await cli(
        run_query, "query", known, "srq_gone", known, "--json", "--base-url", base_url
    )
    assert status == 1
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["scheduling_request_id"] for r in records] == [known, "srq_gone"]
    assert records[0]["slot_selection"] == "pending"
    assert records[0]["select_url"].startswith("https://")
    assert records[1] == {"scheduling_request_id": "srq_gone", "error": "not found"}


async def test_query_asks_in_chunks(fake: FakeCronofy, base_url: str) -> None:
    ids = await create(fake, 3)
    many = [*ids, *(f"srq_missing_{i}" for i in range(MAX_QUERY_IDS))]
    status, out, _ = await cli(run_query, "query", *many, "--json", "--base-url", base_url)
    assert status == 1
    assert fake.outcomes["scheduling:query"] == 2
    assert len(out.splitlines()) == len(many)


async def test_query_reports_a_failure_per_id(fake: FakeCronofy, base_url: str) -> None:
    fake.inject(Fault.DROP_BEFORE, times=3)
    status, out, err = await cli(run_query, "query", "srq_1", "--base-url", base_url)
    assert status == 1
    assert "RemoteProtocolError" in err
    assert out.splitlines()[1].startswith("srq_1")


async def test_a_malformed_id_is_refused_before_sending(fake: FakeCronofy, base_url: str) -> None:
    for runner, command in ((run_query, "query"), (run_cancel, "cancel")):
        status, _, err = await cli(runner, command, "srq 1", "--base-url", base_url)
        assert status == 2
        assert "whitespace" in err
    assert fake.received == 0


# -- cancel ----------------------------------------------------------------------------------


async def test_cancel_is_safe_to_run_again(fake: FakeCronofy, base_url: str) -> None:
    first, second = await create(fake, 2)
    for _ in range(2):
        status, out, err = await cli(run_cancel, "cancel", first, second, "--base-url", base_url)
        assert status == 0, err
        assert [line.split()[:2] for line in out.splitlines()[1:]] == [
            [first, "cancelled"],
            [second, "cancelled"],
        ]
    assert [e.cancel_count for e in fake.scheduling_requests] == [2, 2]


async def test_cancel_reports_each_outcome(fake: FakeCronofy, base_url: str) -> None:
    [known] = await create(fake)
    status, out, err = await cli(
        run_cancel, "cancel", "srq_gone", known, "--json", "--base-url", base_url
    )
    assert status == 1
    records = [json.loads(line) for line in out.splitlines()]
    assert [(r["scheduling_request_id"], r["outcome"]) for r in records] == [
        ("srq_gone", "not_found"),
        (known, "cancelled"),
    ]
    assert "404" in records[0]["error"]
    assert records[1]["error"] is None
    assert "running again is safe" not in err


async def test_a_cancel_that_may_have_happened_says_run_again(
    fake: FakeCronofy, base_url: str
) -> None:
    [known] = await create(fake)
    fake.inject(Fault.DROP_AFTER, times=3)  # every attempt processed, no answer seen
    status, out, err = await cli(run_cancel, "cancel", known, "--json", "--base-url", base_url)
    assert status == 1
    assert json.loads(out)["outcome"] == "unknown"
    assert "running again is safe" in err
    assert fake.scheduling_requests[0].cancelled
    status, _, _ = await cli(run_cancel, "cancel", known, "--base-url", base_url)
    assert status == 0


async def test_a_refused_secret_stops_the_cancels(fake: FakeCronofy, base_url: str) -> None:
    status, out, _ = await cli(
        run_cancel, "cancel", "srq_1", "srq_2", "--json", "--base-url", base_url, secret="sk_no"
    )
    assert status == 1
    outcomes = [json.loads(line)["outcome"] for line in out.splitlines()]
    assert outcomes == ["failed", "not_sent"]
    assert fake.received == 1


async def test_cancel_may_impersonate(fake: FakeCronofy, base_url: str) -> None:
    [known] = await create(fake)
    status, _, _ = await cli(
        run_cancel, "cancel", known, "--impersonate", "acc_2", "--base-url", base_url
    )
    assert status == 0
    status, _, err = await cli(
        run_cancel, "cancel", known, "--impersonate", "acc 2", "--base-url", base_url
    )
    assert status == 2
    assert "Cronofy-Impersonate" in err


# -- members ---------------------------------------------------------------------------------


async def test_members_as_a_table_over_every_page(fake: FakeCronofy, base_url: str) -> None:
    status, out, err = await cli(run_members, "members", "--base-url", base_url)
    assert status == 0, err
    header, *lines = out.splitlines()
    assert header.split() == ["SUB", "EMAIL", "ROLES", "SCHEDULER", "PUBLIC", "URL"]
    assert [line.split()[:4] for line in lines] == [
        ["acc_1", "doc@evenitron.com", "member", "enabled"],
        ["acc_2", "marty@evenitron.com", "member", "enabled"],
    ]
    assert fake.outcomes["organizational_unit_members"] == 2


async def test_members_as_json(fake: FakeCronofy, base_url: str) -> None:
    status, out, _ = await cli(run_members, "members", "--json", "--base-url", base_url)
    assert status == 0
    first = json.loads(out.splitlines()[0])
    assert first == {
        "sub": "acc_1",
        "email": "doc@evenitron.com",
        "roles": ["member"],
        "scheduler_enabled": True,
        "public_url": "https://app.cronofy.test/pls/acc_1",
    }


async def test_resources(fake: FakeCronofy, base_url: str) -> None:
    status, out, _ = await cli(run_members, "members", "--resources", "--base-url", base_url)
    assert status == 0
    assert out.splitlines()[1].split() == [
        "res_1",
        "res_1@resources.example.com",
        "Room",
        "1",
        "enabled",
    ]
    status, out, _ = await cli(
        run_members, "members", "--resources", "--json", "--base-url", base_url
    )
    assert json.loads(out)["name"] == "Room 1"


async def test_members_prints_what_it_read_before_a_failure(
    fake: FakeCronofy, base_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first page is served, then every attempt at the second fails.
    serve_page = fake._list_members

    def then_fail(request: Any) -> Any:
        answer = serve_page(request)
        fake.inject(Fault.UNAVAILABLE, times=3)
        return answer

    monkeypatch.setattr(fake, "_list_members", then_fail)
    status, out, err = await cli(run_members, "members", "--json", "--base-url", base_url)
    assert status == 1
    assert [json.loads(line)["sub"] for line in out.splitlines()] == ["acc_1"]
    assert "503" in err


async def test_members_cut_short_by_a_foreign_link_fail_after_printing_what_came(
    fake: FakeCronofy, base_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    serve_page = fake._list_members

    def foreign_link(request: Any) -> Any:
        key, status, body = serve_page(request)
        body["pages"]["next_page"] = "https://evil.example/v1/organizational_unit_members/pages/x"
        return key, status, body

    monkeypatch.setattr(fake, "_list_members", foreign_link)
    status, out, err = await cli(run_members, "members", "--json", "--base-url", base_url)
    assert status == 1
    assert [json.loads(line)["sub"] for line in out.splitlines()] == ["acc_1"]
    assert "stopped after 1 item on 1 page" in err
    assert "evil" not in err


async def test_members_print_new_members_of_a_repeated_page_then_fail(
    fake: FakeCronofy, base_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every page says it is page 1: the second page's member is new, so it is printed, and
    # the listing then fails instead of ending as if complete.
    serve_page = fake._list_members

    def always_page_one(request: Any) -> Any:
        key, status, body = serve_page(request)
        body["pages"]["current"] = 1
        return key, status, body

    monkeypatch.setattr(fake, "_list_members", always_page_one)
    status, out, err = await cli(run_members, "members", "--json", "--base-url", base_url)
    assert status == 1
    assert [json.loads(line)["sub"] for line in out.splitlines()] == ["acc_1", "acc_2"]
    assert "stopped after 2 items on 2 pages" in err
    assert "page 1 came twice" in err


async def test_no_secret_is_a_usage_error(base_url: str) -> None:
    status, _, err = await cli(run_members, "members", "--base-url", base_url, secret=None)
    assert status == 2
    assert "CRONOFY_CLIENT_SECRET" in err


async def test_the_secret_may_come_from_a_file(
    fake: FakeCronofy, base_url: str, tmp_path: Path
) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text("\ufeff" + SECRET + "\n", encoding="utf-8")  # Notepad's BOM too
    status, _, _ = await cli(
        run_members,
        "members",
        "--client-secret-file",
        str(secret_file),
        "--base-url",
        base_url,
        secret=None,
    )
    assert status == 0
    status, _, err = await cli(
        run_members,
        "members",
        "--client-secret-file",
        str(tmp_path / "missing"),
        secret=None,
    )
    assert status == 2
    assert "--client-secret-file: the file given does not exist" in err
    assert "missing" not in err  # the path is not repeated: it may be the secret


def test_a_secret_on_the_command_line_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    for command in (["query", "srq_1"], ["cancel", "srq_1"], ["members"]):
        with pytest.raises(SystemExit) as info:
            main([*command, "--client-secret", "sk_live_leak"])
        assert info.value.code == 2
        assert "shell history" in capsys.readouterr().err


@pytest.mark.real_time  # a fresh interpreter against the fake on loopback, default pacing
async def test_the_commands_from_a_shell(fake: FakeCronofy) -> None:
    async with fake.serve() as base_url:
        await shell_session(fake, base_url)


async def shell_session(fake: FakeCronofy, base_url: str) -> None:
    [known] = await create(fake)
    env = {**os.environ, "CRONOFY_CLIENT_SECRET": SECRET, "PYTHONPATH": os.getcwd()}
    run_cli = "import sys; from cronofy_async._cli import main; sys.exit(main())"

    async def shell(*argv: str) -> tuple[int, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", run_cli, *argv, "--base-url", base_url, env=env, stdout=-1
        )
        out, _ = await process.communicate()
        assert process.returncode is not None
        return process.returncode, out.decode()

    status, out = await shell("members", "--json")
    assert (status, len(out.splitlines())) == (0, 2)
    status, out = await shell("query", known)
    assert status == 0
    assert "pending" in out
    status, out = await shell("cancel", known)
    assert status == 0
    assert "cancelled" in out
    assert fake.scheduling_requests[0].cancelled


def test_usage_errors_from_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["query"], ["cancel"], ["members", "extra"]):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2
    capsys.readouterr()


def test_help_names_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in ("query", "cancel", "members"):
        assert command in out
