"""
The ``cronofy_async`` logger (issue 24): one line per retry, 429, pause, refused page link and
unknown outcome, naming the operation and the attempt; ``CRONOFY_LOG`` for a console.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from cronofy_async import (
    APITimeoutError,
    AsyncSchedulerAPI,
    MemoryLedger,
    PaginationError,
    RetryPolicy,
)
from cronofy_async._logs import ENV, configure_from_env, console_handler

from .conftest import CREATE_URL, SECRET, ok_response, seed_request
from .helpers import FakeClock, run_python, use_clock

ROOT = Path(__file__).resolve().parent.parent
CREATE = "create_scheduler_request (POST /v1/scheduler_requests)"


def lines(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    return [
        (r.levelname, r.getMessage()) for r in caplog.records if r.name.startswith("cronofy_async")
    ]


async def test_a_retry_a_429_and_a_pause_are_one_line_each(
    api: AsyncSchedulerAPI, mock: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="cronofy_async")
    api._shared.retry = RetryPolicy(wait_jitter=0)
    answers: Iterator[httpx.Response | Exception] = iter(
        [
            httpx.ConnectError("refused"),
            httpx.Response(429, headers={"Retry-After": "2"}, text="BODY-TEXT"),
            ok_response(),
        ]
    )

    def respond(request: httpx.Request) -> httpx.Response:
        answer: httpx.Response | Exception = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    mock.post(CREATE_URL).mock(side_effect=respond)
    await api.create_scheduler_request(seed_request())
    assert lines(caplog) == [
        (
            "INFO",
            f"retrying {CREATE} in 0.50 s: attempt 1 of 3 failed, not sent (ConnectError)",
        ),
        (
            "WARNING",
            f"{CREATE}: attempt 2 answered 429; every request of this API object pauses 2.00 s",
        ),
        ("INFO", f"retrying {CREATE} in 2.00 s: attempt 2 of 3 failed, rate limited (429)"),
        ("INFO", f"{CREATE}: waiting 2.00 s for a 429 pause before attempt 3"),
    ]
    assert SECRET not in caplog.text
    assert "BODY-TEXT" not in caplog.text
    assert "doc@evenitron.com" not in caplog.text


async def test_an_unknown_outcome_is_one_warning(
    api: AsyncSchedulerAPI, mock: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="cronofy_async")
    mock.post(CREATE_URL).mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(APITimeoutError):
        await api.create_scheduler_request(seed_request())
    assert lines(caplog) == [
        (
            "WARNING",
            f"{CREATE}: outcome unknown after 1 attempt (APITimeoutError): it may have been "
            "processed; check before sending it again",
        )
    ]


async def test_a_read_never_logs_an_unknown_outcome(
    api: AsyncSchedulerAPI, mock: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="cronofy_async")
    api._shared.retry = RetryPolicy(attempts=1)
    mock.post("https://api.cronofy.com/v1/scheduling_requests/query").mock(
        side_effect=httpx.ReadTimeout("slow")
    )
    with pytest.raises(APITimeoutError):
        await api.query_scheduling_requests(["sch_1"])
    assert lines(caplog) == []


async def test_cancelled_on_the_wire_is_an_unknown_outcome(
    api: AsyncSchedulerAPI, mock: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="cronofy_async")
    arrived = asyncio.Event()

    async def hang(request: httpx.Request) -> httpx.Response:
        arrived.set()
        await asyncio.Event().wait()
        raise AssertionError("never answered")

    mock.post(CREATE_URL).mock(side_effect=hang)
    task = asyncio.ensure_future(api.create_scheduler_request(seed_request()))
    await arrived.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert lines(caplog) == [
        (
            "WARNING",
            f"{CREATE}: cancelled while attempt 1 was on the wire: outcome unknown, it may "
            "have been processed",
        )
    ]


async def test_a_refused_page_link_is_one_warning(
    api: AsyncSchedulerAPI, mock: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="cronofy_async")
    mock.get("https://api.cronofy.com/v1/organizational_unit_members").mock(
        return_value=httpx.Response(
            200,
            json={
                "organizational_unit_members": [{"sub": "acc_1", "email": "m@example.com"}],
                "pages": {"current": 1, "total": 2, "next_page": "https://evil.example/x"},
            },
        )
    )
    with pytest.raises(PaginationError):
        _ = [m async for m in api.iter_organizational_unit_members()]
    ((level, message),) = lines(caplog)
    assert level == "WARNING"
    assert message.startswith(
        "iter_organizational_unit_members (GET /v1/organizational_unit_members): "
        "stopped listing after 1 item"
    )
    assert "evil.example" not in message
    assert "m@example.com" not in caplog.text


async def test_an_idempotency_key_that_is_an_email_is_not_logged(
    mock: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="cronofy_async")

    class Broken(MemoryLedger):
        """A ledger that claims, then cannot record anything."""

        async def settle(self, *args: Any, **kwargs: Any) -> None:
            raise OSError("disk full")

    mock.post(CREATE_URL).mock(return_value=ok_response())
    async with AsyncSchedulerAPI(SECRET, ledger=Broken()) as api:
        use_clock(api, FakeClock())
        await api.create_scheduler_request(seed_request(), idempotency_key="doc@evenitron.com")
    assert "could not record the created request for idempotency key" in caplog.text
    assert "doc@evenitron.com" not in caplog.text
    assert "[email]" in caplog.text


# -- CRONOFY_LOG ------------------------------------------------------------------------------


@pytest.fixture
def clean_logger() -> Iterator[logging.Logger]:
    logger = logging.getLogger("cronofy_async")
    level, handlers = logger.level, list(logger.handlers)
    yield logger
    logger.setLevel(level)
    logger.handlers[:] = handlers


@pytest.mark.parametrize(
    ("value", "level"),
    [("debug", logging.DEBUG), ("info", logging.INFO), ("DEBUG", logging.DEBUG)],
)
def test_cronofy_log_turns_on_a_console(
    value: str, level: int, clean_logger: logging.Logger
) -> None:
    handler = configure_from_env({ENV: value})
    assert handler is not None
    assert handler in clean_logger.handlers
    assert clean_logger.level == level
    # Twice (a second import, a reload) is still one console.
    assert configure_from_env({ENV: value}) is handler
    assert clean_logger.handlers.count(handler) == 1


@pytest.mark.parametrize("environ", [{}, {ENV: ""}, {ENV: "verbose"}, {ENV: "warning"}])
def test_without_cronofy_log_nothing_changes(
    environ: dict[str, str], clean_logger: logging.Logger
) -> None:
    before = list(clean_logger.handlers), clean_logger.level
    assert configure_from_env(environ) is None
    assert (list(clean_logger.handlers), clean_logger.level) == before


def test_the_console_format_names_the_logger_and_level(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logging.getLogger(), "handlers", [])  # logging not set up
    stream = io.StringIO()
    handler = console_handler(stream)
    handler.handle(
        logging.LogRecord("cronofy_async", logging.WARNING, __file__, 1, "hello %s", ("x",), None)
    )
    assert stream.getvalue().endswith("WARNING cronofy_async: hello x\n")


def test_the_console_stands_aside_once_the_application_sets_up_logging(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # CRONOFY_LOG, then logging.basicConfig(): each line once, through the application's.
    application = logging.StreamHandler(io.StringIO())  # what basicConfig() adds
    monkeypatch.setattr(logging.getLogger(), "handlers", [application])
    stream = io.StringIO()
    console_handler(stream).handle(
        logging.LogRecord("cronofy_async", logging.WARNING, __file__, 1, "hello", (), None)
    )
    assert stream.getvalue() == ""


def test_a_cronofy_log_value_it_does_not_know_is_said_not_ignored(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert configure_from_env({"CRONOFY_LOG": "verbose"}) is None
    assert "CRONOFY_LOG='verbose' is not debug or info" in capsys.readouterr().err


def test_cronofy_log_prints_every_line_and_never_the_secret() -> None:
    script = textwrap.dedent(
        f"""
        import asyncio
        from cronofy_async import Event, Host, NewSchedulerRequest, Recipient, RetryPolicy
        from cronofy_async.testing import FakeCronofy, Fault, Faults

        fake = FakeCronofy(
            [{SECRET!r}], members=["acc_1"], rate_limit=None, faults=Faults(retry_after=0)
        )
        fake.inject(Fault.RATE_LIMITED)
        fake.inject(Fault.DROP_AFTER)
        api = fake.api(rate_limit=None, retry=RetryPolicy(wait_initial=0))

        async def main():
            request = NewSchedulerRequest(
                host=Host(sub="acc_1"),
                recipients=[Recipient(email="doc@evenitron.com")],
                event=Event(summary="x"),
            )
            try:
                await api.create_scheduler_request(request, idempotency_key="k-1")
            except Exception as error:
                print(type(error).__name__)
            await api.aclose()

        asyncio.run(main())
        """
    )
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CRONOFY")}
    shown = subprocess.run(  # noqa: S603 - our own interpreter, our own code
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
        env={**environ, ENV: "debug"},
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == "APIConnectionError"
    err = shown.stderr
    assert "attempt 1 answered 429" in err
    assert "waiting 0.00 s for a 429 pause before attempt 2" in err
    assert "retrying create_scheduler_request" in err
    assert "outcome unknown after 2 attempts" in err
    assert SECRET not in err
    assert "doc@evenitron.com" not in err
    quiet = subprocess.run(  # noqa: S603
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
        env=environ,
    )
    assert quiet.returncode == 0, quiet.stderr
    # Without CRONOFY_LOG, Python's last resort prints warnings only, as for any library.
    assert "retrying" not in quiet.stderr


def test_cronofy_log_with_logging_configured_prints_each_line_once() -> None:
    done = run_python(
        """
        import asyncio, logging
        from cronofy_async import Event, Host, NewSchedulerRequest, Recipient
        from cronofy_async.testing import FakeCronofy, Fault

        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        fake = FakeCronofy(members=["acc_1"], rate_limit=None)
        fake.inject(Fault.DROP_AFTER)
        api = fake.api(rate_limit=None)

        async def main():
            request = NewSchedulerRequest(
                host=Host(sub="acc_1"),
                recipients=[Recipient(email="a@example.com")],
                event=Event(summary="x"),
            )
            try:
                await api.create_scheduler_request(request)
            except Exception:
                pass
            await api.aclose()

        asyncio.run(main())
        """,
        CRONOFY_LOG="info",
    )
    assert done.returncode == 0, done.stderr
    unknown = [line for line in done.stderr.splitlines() if "outcome unknown" in line]
    assert len(unknown) == 1, unknown
