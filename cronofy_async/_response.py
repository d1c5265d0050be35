"""
How an outcome is read: responses into models or typed errors.

httpx failures become errors that say whether the request may have been processed.
Pure functions, no I/O.
"""

from __future__ import annotations

import email.utils
import json
import re
from collections.abc import Mapping
from typing import Any, Final

import httpx

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
    ServerError,
    ValidationError,
)
from ._secret import ClientSecret

__all__ = [
    "error_from_exception",
    "error_from_response",
    "excerpt",
    "parse_retry_after",
    "status_text",
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


def status_text(response: httpx.Response) -> str:
    """``422 Unprocessable Entity``: the status line as an error message shows it."""
    return f"{response.status_code} {response.reason_phrase}".rstrip()


def error_from_response(
    response: httpx.Response, *, secret: ClientSecret | None = None, now: float = 0.0
) -> APIStatusError:
    """The typed error for a response with an error status (its body already read)."""
    status = response.status_code
    content = response.content
    head = f"Cronofy answered {status_text(response)}"
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
