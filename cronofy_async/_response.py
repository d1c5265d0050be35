"""
How an outcome is read: responses into models or typed errors.

httpx failures become errors that say whether the request may have been processed.
Pure functions, no I/O.
"""

from __future__ import annotations

import email.utils
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

import httpx

from ._errors import (
    APIConnectionError,
    APIError,
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
from ._secret import ClientSecret

__all__ = [
    "UndecodableBody",
    "bodiless",
    "decode_content",
    "error_from_exception",
    "error_from_response",
    "error_from_undecodable",
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
# What describes a body as it travelled, not the body itself once decoded.
_TRANSFER_HEADERS: Final = frozenset({b"content-encoding", b"content-length", b"transfer-encoding"})


class UndecodableBody(Exception):  # noqa: N818 - an internal signal, never raised to callers
    """An answer whose ``Content-Encoding`` could not be undone; `head` is the rest of it."""

    def __init__(self, head: httpx.Response, encoding: str, cause: httpx.DecodingError) -> None:
        super().__init__(str(cause))
        self.head = head
        self.encoding = encoding
        self.cause = cause


def decode_content(content: bytes, encoding: str) -> bytes:
    """
    Undo ``Content-Encoding: <encoding>`` exactly as httpx does.

    The same decoders on both backends: gzip, deflate, and br or zstd when their packages are
    installed. Raises ``httpx.DecodingError`` for a corrupt body.
    """
    return httpx.Response(200, headers={"content-encoding": encoding}, content=content).content


def bodiless(
    status: int,
    headers: Iterable[tuple[bytes, bytes]],
    reason: bytes,
    request: httpx.Request,
) -> httpx.Response:
    """The head of an answer (status, reason, headers) with an empty body."""
    response = httpx.Response(
        status,
        headers=[(name, value) for name, value in headers if name.lower() not in _TRANSFER_HEADERS],
        content=b"",
        extensions={"reason_phrase": reason, "http_version": b"HTTP/1.1"},
    )
    response.request = request
    return response


def error_from_undecodable(
    error: UndecodableBody, *, mutates: bool, secret: ClientSecret | None = None, now: float = 0.0
) -> APIError:
    """
    The error for an answer whose body could not be decoded.

    A 2xx of an operation that `mutates` was processed: a `ResponseFormatError` that says
    ``outcome_unknown=True``, like any other malformed success. An error status keeps its type.
    """
    head = error.head
    if not head.is_success:
        return error_from_response(head, secret=secret, now=now)
    consequence = "; the request was probably processed" if mutates else ""
    return ResponseFormatError(
        f"Cronofy answered {status_text(head, secret)} but its "
        f"{_redact(error.encoding, secret)}-encoded body could not be decoded "
        f"({_redact(str(error.cause), secret)}){consequence}",
        response=head,
        outcome_unknown=mutates,
    )


def excerpt(content: bytes, secret: ClientSecret | None = None) -> str:
    """A short, single-line, secret-free excerpt of a body for an error message."""
    if not content:
        return "(empty body)"
    text = content.decode("utf-8", "replace")
    if secret is not None:
        # The whole body, before any cut: a secret lying across the cut would show but for
        # its last characters.
        text = secret.redact(text)
    text = _WHITESPACE.sub(" ", text[: EXCERPT_LENGTH * 4]).strip()
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
    except (ValueError, RecursionError):  # too deeply nested to read is unreadable too
        return None


def scrub_reason(response: httpx.Response, secret: ClientSecret) -> None:
    """
    Redact the server's reason phrase in `response` itself, once it arrives.

    httpx's ``Response`` shows it in its repr, so a traceback printed with its locals would
    show a secret echoed there.
    """
    phrase = response.extensions.get("reason_phrase")
    if not phrase:
        return
    text = phrase.decode("ascii", "replace") if isinstance(phrase, bytes) else str(phrase)
    clean = secret.redact(text)
    if clean != text:
        response.extensions["reason_phrase"] = clean.encode()


def bare(error: BaseException) -> BaseException:
    """
    `error` and what it chains with their tracebacks dropped: their types and messages only.

    For a decoder's failure kept as a cause: the decoder's frames hold the body, whose
    echo of the secret a traceback printed with its locals would show.
    """
    seen: set[int] = set()
    link: BaseException | None = error
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        link.__traceback__ = None
        link = link.__cause__ or link.__context__
    return error


def _redact(text: str, secret: ClientSecret | None) -> str:
    return text if secret is None else secret.redact(text)


def _field_errors(body: Any, secret: ClientSecret | None) -> dict[str, tuple[FieldError, ...]]:
    errors = body.get("errors") if isinstance(body, Mapping) else None
    if not isinstance(errors, Mapping):
        return {}
    parsed: dict[str, tuple[FieldError, ...]] = {}
    # Every string here is the server's: a server that echoes the request puts the token in it.
    for field, problems in errors.items():
        items = problems if isinstance(problems, list) else [problems]
        found = []
        for item in items:
            if isinstance(item, Mapping):
                key = _redact(str(item.get("key", "")), secret)
                description = _redact(str(item.get("description") or key or "invalid"), secret)
            else:
                key, description = "", _redact(str(item), secret)
            found.append(FieldError(key=key, description=description))
        parsed[_redact(str(field), secret)] = tuple(found)
    return parsed


def status_text(response: httpx.Response, secret: ClientSecret | None = None) -> str:
    """``422 Unprocessable Entity``: the status line as an error message shows it."""
    # The reason phrase is the server's text too.
    return _redact(f"{response.status_code} {response.reason_phrase}".rstrip(), secret)


def error_from_response(
    response: httpx.Response, *, secret: ClientSecret | None = None, now: float = 0.0
) -> APIStatusError:
    """The typed error for a response with an error status (its body already read)."""
    status = response.status_code
    content = response.content
    head = f"Cronofy answered {status_text(response, secret)}"
    if status == 422:
        errors = _field_errors(_json_or_none(content), secret)
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


def error_from_exception(
    exc: httpx.RequestError, request: httpx.Request, secret: ClientSecret | None = None
) -> APIConnectionError:
    """The error for an httpx failure, `outcome_unknown` set by how far the request got."""
    sent = not isinstance(exc, _NOT_SENT)
    target = f"{request.method} {request.url.copy_with(query=None)}"
    what = type(exc).__name__
    # A protocol error quotes what the server sent.
    detail = _redact(str(exc) or what, secret)
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
