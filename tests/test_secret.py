"""The client secret never shows: not in a message, a repr, a results file or traceback locals."""

from __future__ import annotations

import json
import socket
import traceback
from typing import Any, Literal

import pytest

from cronofy_async import (
    APIError,
    AsyncSchedulerAPI,
    CronofyError,
    Event,
    Host,
    NewSchedulerRequest,
    Recipient,
    ValidationError,
)

from .helpers import bearer_of, http_response, raw_server

SECRET = "sk_live_do_not_leak_0123456789abcdef"

Backend = Literal["httpx", "aiohttp"]


@pytest.fixture(params=["httpx", "aiohttp"])
def backend(request: pytest.FixtureRequest) -> Backend:
    name: Backend = request.param
    return name


def invite() -> NewSchedulerRequest:
    return NewSchedulerRequest(
        host=Host(sub="acc_1"),
        recipients=[Recipient(email="doc@example.com")],
        event=Event(summary="Intro call"),
    )


async def echo_in_field_errors(request: bytes) -> bytes:
    # A server that echoes the bearer token in every place a 422 carries text.
    token = bearer_of(request)
    body = {
        "errors": {
            f"recipients.{token}": [{"key": f"errors.{token}", "description": f"bad {token}"}],
            "event.summary": [{"key": "errors.required"}],  # no description: the key is shown
            "host": [f"not {token}"],
        }
    }
    return http_response(422, json.dumps(body).encode(), reason=f"Nope {token}")


async def test_a_422_echoing_the_secret_is_redacted_everywhere(backend: Backend) -> None:
    async with (
        raw_server(echo_in_field_errors) as url,
        AsyncSchedulerAPI(SECRET, base_url=url, http_backend=backend, rate_limit=None) as api,
    ):
        with pytest.raises(ValidationError) as info:
            await api.create_scheduler_request(invite())
    error = info.value
    shown = [str(error), repr(error), repr(error.errors), error.message]
    for text in shown:
        assert SECRET not in text
    assert "[secret]" in str(error)
    assert "recipients.[secret]: bad [secret]" in str(error)
    fields = dict(error.errors)
    assert fields["recipients.[secret]"][0].key == "errors.[secret]"
    assert fields["recipients.[secret]"][0].description == "bad [secret]"
    assert fields["host"][0].description == "not [secret]"
    assert "Nope [secret]" in str(error)


def rendered(error: BaseException) -> str:
    """The error as a traceback printed with every frame's locals (Sentry, --showlocals)."""
    return "".join(traceback.TracebackException.from_exception(error, capture_locals=True).format())


async def failure_of(api: AsyncSchedulerAPI) -> CronofyError:
    # No local of this frame (or of the test's) holds the secret: whatever shows it, the
    # library's frames or the libraries below put it there.
    try:
        await api.create_scheduler_request(invite())
    except CronofyError as error:
        return error
    raise AssertionError("the call succeeded")


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def never_answer(request: bytes) -> bytes | None:
    import asyncio

    await asyncio.Event().wait()
    return None


def answer_with(status: int, *, echo: bool = False, **options: Any) -> Any:
    async def answer(request: bytes) -> bytes:
        token = bearer_of(request) if echo else "no"
        return http_response(status, f'{{"error": "{token}"}}'.encode(), **options)

    return answer


@pytest.mark.parametrize(
    "server",
    [
        pytest.param(None, id="connect-refused"),
        pytest.param(never_answer, id="read-timeout"),
        pytest.param(answer_with(401), id="401"),
        pytest.param(answer_with(500), id="500"),
        pytest.param(answer_with(422), id="422"),
        pytest.param(answer_with(200), id="malformed-2xx"),
        pytest.param(answer_with(200, length=5000), id="closed-mid-answer"),
        pytest.param(answer_with(200, headers=[("Content-Encoding", "gzip")]), id="bad-gzip"),
    ],
)
async def test_no_traceback_local_shows_the_secret(backend: Backend, server: Any) -> None:
    options: dict[str, Any] = {"http_backend": backend, "rate_limit": None, "retry": None}
    options["timeout"] = 0.3
    if server is None:
        url = f"http://127.0.0.1:{closed_port()}"
        async with AsyncSchedulerAPI(SECRET, base_url=url, **options) as api:
            error = await failure_of(api)
    else:
        async with (
            raw_server(server) as url,
            AsyncSchedulerAPI(SECRET, base_url=url, **options) as api,
        ):
            error = await failure_of(api)
    # The server echoes nothing: whatever shows the secret took it from the request.
    assert isinstance(error, APIError)
    text = rendered(error)
    assert SECRET not in text
    assert "Bearer" not in text or "[secret]" in text or "[secure]" in text


@pytest.mark.parametrize(
    "server",
    [
        pytest.param(None, id="connect-refused"),
        pytest.param(never_answer, id="read-timeout"),
        pytest.param(answer_with(401), id="401"),
        pytest.param(answer_with(200, headers=[("Content-Encoding", "gzip")]), id="bad-gzip"),
    ],
)
async def test_no_traceback_local_shows_the_secret_through_a_callers_client(server: Any) -> None:
    import httpx

    options: dict[str, Any] = {"rate_limit": None, "retry": None, "timeout": 0.3}
    async with httpx.AsyncClient() as client:
        if server is None:
            url = f"http://127.0.0.1:{closed_port()}"
            async with AsyncSchedulerAPI(
                SECRET, base_url=url, http_client=client, **options
            ) as api:
                error = await failure_of(api)
        else:
            async with (
                raw_server(server) as url,
                AsyncSchedulerAPI(SECRET, base_url=url, http_client=client, **options) as api,
            ):
                error = await failure_of(api)
    assert isinstance(error, APIError)
    assert SECRET not in rendered(error)


def _forms(token: str) -> list[str]:
    import base64
    from urllib.parse import quote, quote_plus

    raw = token.encode()
    return [
        quote(token, safe=""),
        quote(token, safe="").lower(),
        quote_plus(token),
        base64.b64encode(raw).decode(),
        base64.b64encode(raw).decode().rstrip("="),
        base64.urlsafe_b64encode(raw).decode(),
    ]


ODD_SECRET = "sk_live/do+not=leak~0123456789abcdef"  # percent-encoding and base64 both differ


def echo_encoded(status: int) -> Any:
    async def answer(request: bytes) -> bytes:
        # A proxy or framework that echoes the request's token, as is and encoded.
        token = bearer_of(request)
        body = {"error": " / ".join([token, *_forms(token)])}
        return http_response(status, json.dumps(body).encode())

    return answer


@pytest.mark.parametrize("status", [500, 401, 422, 400, 200])
async def test_an_answer_echoing_the_secret_encoded_is_redacted(
    backend: Backend, status: int
) -> None:
    from cronofy_async import RetryPolicy

    policy = RetryPolicy(attempts=1)
    options: dict[str, Any] = {"http_backend": backend, "rate_limit": None, "retry": policy}
    async with (
        raw_server(echo_encoded(status)) as url,
        AsyncSchedulerAPI(ODD_SECRET, base_url=url, **options) as api,
    ):
        error = await failure_of(api)
    shown = rendered(error) + str(error) + repr(error)
    for form in [ODD_SECRET, *_forms(ODD_SECRET)]:
        assert form not in shown, form


# -- a second review: reason phrases, decoders, the excerpt's cut, other encodings -----------


@pytest.mark.parametrize("status", [200, 401, 500])
async def test_an_echoed_reason_phrase_is_in_no_traceback_local(
    backend: Backend, status: int
) -> None:
    async def answer(request: bytes) -> bytes:
        return http_response(status, b'{"x": 1}', reason=f"Nope {bearer_of(request)}")

    options: dict[str, Any] = {"http_backend": backend, "rate_limit": None, "retry": None}
    async with raw_server(answer) as url, AsyncSchedulerAPI(SECRET, base_url=url, **options) as api:
        error = await failure_of(api)
    assert SECRET not in str(error)
    assert SECRET not in rendered(error)


async def test_an_undecodable_echo_is_in_no_traceback_local(backend: Backend) -> None:
    async def answer(request: bytes) -> bytes:
        body = f'{{"error": "{bearer_of(request)}"}}'.encode()
        return http_response(200, body, headers=[("Content-Encoding", "gzip")])

    options: dict[str, Any] = {"http_backend": backend, "rate_limit": None, "retry": None}
    async with raw_server(answer) as url, AsyncSchedulerAPI(SECRET, base_url=url, **options) as api:
        error = await failure_of(api)
    assert SECRET not in rendered(error)
    assert error.__cause__ is not None  # the decoder's failure is still told, frames aside


async def test_an_excerpt_never_shows_a_secret_cut_short(backend: Backend) -> None:
    async def answer(request: bytes) -> bytes:
        token = bearer_of(request).encode()
        return http_response(500, b"x" + b" " * (800 - len(token)) + token)

    options: dict[str, Any] = {"http_backend": backend, "rate_limit": None, "retry": None}
    async with raw_server(answer) as url, AsyncSchedulerAPI(SECRET, base_url=url, **options) as api:
        error = await failure_of(api)
    assert SECRET[:12] not in str(error)


async def test_a_json_escaped_echo_is_redacted(backend: Backend) -> None:
    async def answer(request: bytes) -> bytes:
        escaped = json.dumps({"error": bearer_of(request)}).replace("/", "\\/")
        return http_response(500, escaped.encode())

    options: dict[str, Any] = {"http_backend": backend, "rate_limit": None, "retry": None}
    async with (
        raw_server(answer) as url,
        AsyncSchedulerAPI(ODD_SECRET, base_url=url, **options) as api,
    ):
        error = await failure_of(api)
    assert "sk_live\\/do+not=leak" not in str(error)
    assert "[secret]" in str(error)


def test_percent_forms_of_a_mixed_case_secret() -> None:
    from urllib.parse import quote

    from cronofy_async._secret import ClientSecret

    value = "sk_LIVE/do+not=leak~0123456789abcdef"
    secret = ClientSecret(value)
    lower_hex = quote(value, safe="")
    for escape in ("%2F", "%2B", "%3D"):
        lower_hex = lower_hex.replace(escape, escape.lower())
    assert secret.redact(lower_hex) == "[secret]"
    assert secret.redact(quote(value)) == "[secret]"
    assert secret.redact(f"a {value} b") == "a [secret] b"


async def test_an_errors_response_shows_no_echoed_reason_phrase(backend: Backend) -> None:
    async def answer(request: bytes) -> bytes:
        return http_response(200, b'{"x": 1}', reason=f"Nope {bearer_of(request)}")

    options: dict[str, Any] = {"http_backend": backend, "rate_limit": None, "retry": None}
    async with raw_server(answer) as url, AsyncSchedulerAPI(SECRET, base_url=url, **options) as api:
        error = await failure_of(api)
    response = getattr(error, "response", None)
    assert response is not None
    assert SECRET not in repr(response)
    assert SECRET not in response.reason_phrase
