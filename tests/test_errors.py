"""Every way a create can fail maps to the right class, message and `outcome_unknown`."""

from __future__ import annotations

import email.utils

import httpx
import pytest
import respx

import cronofy_async
from cronofy_async import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AsyncSchedulerAPI,
    AuthenticationError,
    CronofyError,
    FieldError,
    LockedError,
    NotFoundError,
    PaymentRequiredError,
    PermissionDeniedError,
    RateLimitError,
    ResponseFormatError,
    ServerError,
    ValidationError,
)
from cronofy_async._response import excerpt, parse_retry_after

from .conftest import CREATE_URL, seed_request


async def fail_with(
    api: AsyncSchedulerAPI, mock: respx.MockRouter, response: httpx.Response
) -> APIError:
    mock.post(CREATE_URL).mock(return_value=response)
    with pytest.raises(APIError) as info:
        await api.create_scheduler_request(seed_request())
    return info.value


@pytest.mark.parametrize(
    ("status", "cls", "unknown"),
    [
        (400, APIStatusError, False),
        (401, AuthenticationError, False),
        (402, PaymentRequiredError, False),
        (403, PermissionDeniedError, False),
        (404, NotFoundError, False),
        (423, LockedError, False),
        (429, RateLimitError, False),
        (500, ServerError, True),
        (502, ServerError, True),
        (503, ServerError, True),
    ],
)
async def test_each_status_has_its_class(
    api: AsyncSchedulerAPI,
    mock: respx.MockRouter,
    status: int,
    cls: type[APIStatusError],
    unknown: bool,
) -> None:
    error = await fail_with(api, mock, httpx.Response(status, json={"error": "nope"}))
    assert type(error) is cls
    assert isinstance(error, APIStatusError)
    assert error.status_code == status
    assert error.response.status_code == status
    assert error.outcome_unknown is unknown
    assert str(status) in str(error)
    assert "nope" in str(error)


async def test_422_exposes_cronofys_field_errors(
    api: AsyncSchedulerAPI, mock: respx.MockRouter
) -> None:
    body = {
        "errors": {
            "recipients.email": [{"key": "errors.required", "description": "required"}],
            "event.summary": [
                {"key": "errors.too_long", "description": "too long"},
                {"key": "errors.blank"},
            ],
        }
    }
    error = await fail_with(api, mock, httpx.Response(422, json=body))
    assert isinstance(error, ValidationError)
    assert error.errors == {
        "recipients.email": (FieldError(key="errors.required", description="required"),),
        "event.summary": (
            FieldError(key="errors.too_long", description="too long"),
            FieldError(key="errors.blank", description="errors.blank"),
        ),
    }
    assert str(error).startswith(
        "recipients.email: required; event.summary: too long, errors.blank"
    )
    assert "422" in str(error)
    assert error.outcome_unknown is False


async def test_422_without_cronofys_format_still_reads(
    api: AsyncSchedulerAPI, mock: respx.MockRouter
) -> None:
    error = await fail_with(api, mock, httpx.Response(422, text="bad things"))
    assert isinstance(error, ValidationError)
    assert error.errors == {}
    assert "bad things" in str(error)


async def test_422_with_odd_items_is_tolerated(
    api: AsyncSchedulerAPI, mock: respx.MockRouter
) -> None:
    error = await fail_with(
        api, mock, httpx.Response(422, json={"errors": {"event": "is missing"}})
    )
    assert isinstance(error, ValidationError)
    assert error.errors == {"event": (FieldError(key="", description="is missing"),)}


async def test_html_502_page(api: AsyncSchedulerAPI, mock: respx.MockRouter) -> None:
    page = "<html>\n<head><title>502 Bad Gateway</title></head>\n<body>" + "x" * 5000 + "</body>"
    error = await fail_with(api, mock, httpx.Response(502, html=page))
    assert isinstance(error, ServerError)
    assert "<html> <head><title>502 Bad Gateway</title>" in str(error)
    assert len(str(error)) < 400  # an excerpt, not the page
    assert "may have been processed" in str(error)


@pytest.mark.parametrize("status", [401, 500, 503])
async def test_empty_body(api: AsyncSchedulerAPI, mock: respx.MockRouter, status: int) -> None:
    error = await fail_with(api, mock, httpx.Response(status))
    assert isinstance(error, APIStatusError)
    assert "(empty body)" in str(error)


async def test_429_retry_after(api: AsyncSchedulerAPI, mock: respx.MockRouter) -> None:
    error = await fail_with(api, mock, httpx.Response(429, headers={"Retry-After": "7"}))
    assert isinstance(error, RateLimitError)
    assert error.retry_after == 7.0
    assert "retry after 7 s" in str(error)
    error = await fail_with(api, mock, httpx.Response(429))
    assert isinstance(error, RateLimitError)
    assert error.retry_after is None


def test_retry_after_forms() -> None:
    now = 1_700_000_000.0
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after(httpx.Headers({"Retry-After": "12"}), now=now) == 12.0
    assert parse_retry_after(httpx.Headers({"Retry-After": "1.5"}), now=now) == 1.5
    assert parse_retry_after(httpx.Headers({"Retry-After": date}), now=now) == 30.0
    past = email.utils.formatdate(now - 30, usegmt=True)
    assert parse_retry_after(httpx.Headers({"Retry-After": past}), now=now) == 0.0
    assert parse_retry_after(httpx.Headers({"retry-after-ms": "250"}), now=now) == 0.25
    both = httpx.Headers({"retry-after-ms": "250", "Retry-After": "1"})
    assert parse_retry_after(both, now=now) == 0.25
    garbage_ms = httpx.Headers({"retry-after-ms": "soon", "Retry-After": "3"})
    assert parse_retry_after(garbage_ms, now=now) == 3.0
    assert parse_retry_after(httpx.Headers({"Retry-After": "-4"}), now=now) == 0.0
    assert parse_retry_after(httpx.Headers({"Retry-After": "tomorrow"}), now=now) is None
    assert parse_retry_after(httpx.Headers(), now=now) is None
    # "-0000" means the zone is unknown (RFC 5322): too vague to wait on.
    vague = httpx.Headers({"Retry-After": "Wed, 21 Oct 2015 07:28:00 -0000"})
    assert parse_retry_after(vague, now=now) is None


# -- tolerant parsing of a success ------------------------------------------------------------


async def test_unknown_response_fields_are_kept(
    api: AsyncSchedulerAPI, mock: respx.MockRouter
) -> None:
    body = {
        "scheduler_request": {
            "scheduler_request_id": "srq_1",
            "primary_select_url": "https://app.cronofy.com/r/primary",
            "brand_new_field": {"nested": True},
            "recipients": [
                {"email": "doc@evenitron.com", "select_url": "https://x/r/1", "locale": "en"}
            ],
        },
        "something_else": 1,
    }
    mock.post(CREATE_URL).mock(return_value=httpx.Response(200, json=body))
    created = await api.create_scheduler_request(seed_request())
    assert created.raw["brand_new_field"] == {"nested": True}
    assert created.recipients[0].raw["locale"] == "en"
    assert created.recipients[0].display_name is None
    assert created.primary_select_url == "https://app.cronofy.com/r/primary"
    assert created.select_url == "https://app.cronofy.com/r/primary"


async def test_a_success_without_recipients_still_parses(
    api: AsyncSchedulerAPI, mock: respx.MockRouter
) -> None:
    body = {"scheduler_request": {"scheduler_request_id": "srq_1"}}
    mock.post(CREATE_URL).mock(return_value=httpx.Response(200, json=body))
    created = await api.create_scheduler_request(seed_request())
    assert created.recipients == ()
    assert created.select_url is None


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"scheduler_request": {"recipients": []}}, "scheduler_request.scheduler_request_id"),
        ({"scheduler_request": {"scheduler_request_id": None}}, "scheduler_request_id"),
        (
            {"scheduler_request": {"scheduler_request_id": "srq_1", "recipients": [{}]}},
            "scheduler_request.recipients[0].email",
        ),
        ({"scheduler_request": ["srq_1"]}, "scheduler_request is malformed"),
        ({"other": 1}, "scheduler_request is missing"),
        ([1, 2], "not a JSON object"),
    ],
)
async def test_malformed_success(
    api: AsyncSchedulerAPI, mock: respx.MockRouter, body: object, fragment: str
) -> None:
    error = await fail_with(api, mock, httpx.Response(200, json=body))
    assert isinstance(error, ResponseFormatError)
    assert fragment in str(error)
    assert "200 OK" in str(error)
    assert "Body: " in str(error)
    assert error.status_code == 200
    assert error.outcome_unknown is True


async def test_non_json_success(api: AsyncSchedulerAPI, mock: respx.MockRouter) -> None:
    error = await fail_with(api, mock, httpx.Response(200, text="<html>maintenance</html>"))
    assert isinstance(error, ResponseFormatError)
    assert "<html>maintenance</html>" in str(error)


# -- failures with no response ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "cls", "unknown"),
    [
        (httpx.ConnectError("refused"), APIConnectionError, False),
        (httpx.ConnectTimeout("slow connect"), APITimeoutError, False),
        (httpx.PoolTimeout("pool full"), APITimeoutError, False),
        (httpx.ReadTimeout("slow answer"), APITimeoutError, True),
        (httpx.WriteTimeout("slow send"), APITimeoutError, True),
        (httpx.ReadError("reset"), APIConnectionError, True),
        (httpx.WriteError("broken pipe"), APIConnectionError, True),
        (httpx.RemoteProtocolError("Server disconnected"), APIConnectionError, True),
    ],
)
async def test_transport_failures(
    api: AsyncSchedulerAPI,
    mock: respx.MockRouter,
    exc: httpx.TransportError,
    cls: type[APIConnectionError],
    unknown: bool,
) -> None:
    mock.post(CREATE_URL).mock(side_effect=exc)
    with pytest.raises(APIConnectionError) as info:
        await api.create_scheduler_request(seed_request())
    error = info.value
    assert type(error) is cls
    assert error.outcome_unknown is unknown
    assert error.__cause__ is exc
    assert error.request.url == CREATE_URL
    assert type(exc).__name__ in str(error)
    assert ("may have been processed" in str(error)) is unknown
    assert ("was not sent" in str(error)) is not unknown


def test_excerpt() -> None:
    assert excerpt(b"") == "(empty body)"
    assert excerpt(b"a\n\n  b") == "a b"
    assert excerpt(b"\xff\xfe ok") == "\ufffd\ufffd ok"
    assert excerpt(b"x" * 1000) == "x" * 200 + "..."


def test_every_error_is_a_cronofy_error_and_exported() -> None:
    for name in cronofy_async.__all__:
        obj = getattr(cronofy_async, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, CronofyError), name
            assert obj.__module__ == "cronofy_async", name


def test_attempts_show_in_the_message() -> None:
    error = APIError("boom", outcome_unknown=False, attempts=3)
    assert str(error) == "boom (after 3 attempts)"
    assert str(APIError("boom", outcome_unknown=False)) == "boom"
