"""
How an outcome is read: responses into models or typed errors.

httpx failures become errors that say whether the request may have been processed.
Pure functions, no I/O.
"""

from __future__ import annotations

import email.utils
import json
import re
from collections.abc import Callable, Mapping
from typing import Any, Final

import cattrs
import httpx

from ._converter import structure_scheduler_request
from ._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
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
from ._models import SchedulerRequest
from ._secret import ClientSecret

__all__ = [
    "error_from_exception",
    "error_from_response",
    "excerpt",
    "parse_create_response",
    "parse_created",
    "parse_retry_after",
]

EXCERPT_LENGTH: Final = 200

_STATUS_ERRORS: Final[Mapping[int, type[APIStatusError]]] = {
    401: AuthenticationError,
    402: PaymentRequiredError,
    403: PermissionDeniedError,
    404: NotFoundError,
    423: LockedError,
}

# Failures that prove the request never left (nothing to duplicate), versus failures after it may
# have reached Cronofy. Anything not listed is treated as "may have been processed".
_NOT_SENT: Final = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.ProxyError,
    httpx.UnsupportedProtocol,
    httpx.LocalProtocolError,
)
_WHITESPACE = re.compile(r"\s+")


def excerpt(content: bytes, secret: ClientSecret | None = None) -> str:
    """A short, single-line, secret-free excerpt of a body for an error message."""
    if not content:
        return "(empty body)"
    text = _WHITESPACE.sub(" ", content[: EXCERPT_LENGTH * 4].decode("utf-8", "replace")).strip()
    if secret is not None:
        text = secret.redact(text)
    return text if len(text) <= EXCERPT_LENGTH else text[:EXCERPT_LENGTH] + "..."


def parse_retry_after(headers: httpx.Headers, *, now: float) -> float | None:
    """
    The wait in seconds a response asks for, or ``None``.

    Reads ``retry-after-ms`` first (more precise), then ``Retry-After`` as seconds or as an HTTP
    date (relative to `now`, a Unix time). Garbage is ignored rather than trusted.
    """
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; a naive parse means it said "-0000"
        return None
    return max(0.0, when.timestamp() - now)


def _json_or_none(content: bytes) -> Any:
    try:
        return json.loads(content)
    except ValueError:
        return None


def _field_errors(body: Any) -> dict[str, tuple[FieldError, ...]]:
    errors = body.get("errors") if isinstance(body, Mapping) else None
    if not isinstance(errors, Mapping):
        return {}
    parsed: dict[str, tuple[FieldError, ...]] = {}
    for field, problems in errors.items():
        items = problems if isinstance(problems, list) else [problems]
        found = []
        for item in items:
            if isinstance(item, Mapping):
                key = str(item.get("key", ""))
                description = str(item.get("description") or key or "invalid")
            else:
                key, description = "", str(item)
            found.append(FieldError(key=key, description=description))
        parsed[str(field)] = tuple(found)
    return parsed


def _status_text(response: httpx.Response) -> str:
    return f"{response.status_code} {response.reason_phrase}".rstrip()


def error_from_response(
    response: httpx.Response, *, secret: ClientSecret | None = None, now: float = 0.0
) -> APIStatusError:
    """The typed error for a response with an error status (its body already read)."""
    status = response.status_code
    content = response.content
    head = f"Cronofy answered {_status_text(response)}"
    if status == 422:
        errors = _field_errors(_json_or_none(content))
        if errors:
            detail = "; ".join(
                f"{field}: {', '.join(p.description for p in problems)}"
                for field, problems in errors.items()
            )
            message = f"{detail} ({head})"
        else:
            message = f"{head}: {excerpt(content, secret)}"
        return ValidationError(message, response=response, errors=errors)
    message = f"{head}: {excerpt(content, secret)}"
    if status == 429:
        retry_after = parse_retry_after(response.headers, now=now)
        if retry_after is not None:
            message += f" (retry after {retry_after:g} s)"
        return RateLimitError(message, response=response, retry_after=retry_after)
    if status >= 500:
        return ServerError(
            message + "; the request may have been processed",
            response=response,
            outcome_unknown=True,
        )
    cls = _STATUS_ERRORS.get(status, APIStatusError)
    return cls(message, response=response, outcome_unknown=False)


def parse_create_response(
    response: httpx.Response, *, secret: ClientSecret | None = None, now: float = 0.0
) -> SchedulerRequest:
    """The created request from a create's response, or the typed error it amounts to."""
    if not response.is_success:
        raise error_from_response(response, secret=secret, now=now)
    return parse_created(response.content, lambda: response, secret=secret)


def parse_created(
    content: bytes,
    response: Callable[[], httpx.Response],
    *,
    secret: ClientSecret | None = None,
) -> SchedulerRequest:
    """
    The created request from a 2xx body.

    `response` makes the ``httpx.Response`` only if the body is malformed and an error must
    carry it: the fast path never builds one for a success.
    """
    body = _json_or_none(content)

    def malformed(problem: str) -> ResponseFormatError:
        whole = response()
        return ResponseFormatError(
            f"Cronofy answered {_status_text(whole)} but {problem}; the request was probably "
            f"processed. Body: {excerpt(content, secret)}",
            response=whole,
            outcome_unknown=True,
        )

    if not isinstance(body, Mapping):
        raise malformed("the body is not a JSON object")
    if "scheduler_request" not in body:
        raise malformed("the field scheduler_request is missing")
    try:
        return structure_scheduler_request(body["scheduler_request"])
    except cattrs.ClassValidationError as exc:
        problems = cattrs.transform_error(exc, path="scheduler_request")
        raise malformed("; ".join(problems)) from None
    except TypeError as exc:
        raise malformed(f"scheduler_request is malformed: {exc}") from None


def error_from_exception(exc: httpx.TransportError, request: httpx.Request) -> APIConnectionError:
    """The error for an httpx failure, `outcome_unknown` set by how far the request got."""
    sent = not isinstance(exc, _NOT_SENT)
    target = f"{request.method} {request.url.copy_with(query=None)}"
    what = type(exc).__name__
    detail = str(exc) or what
    if sent:
        consequence = "it may have been processed, so it must not be re-sent blindly"
    else:
        consequence = "it was not sent"
    cls = APITimeoutError if isinstance(exc, httpx.TimeoutException) else APIConnectionError
    return cls(
        f"{target} failed ({what}: {detail}); {consequence}",
        request=request,
        outcome_unknown=sent,
    )
