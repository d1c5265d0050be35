"""
Link metadata: a ``correlation_id`` and ``utm_*`` values added to a Scheduler link (pure).

Cronofy stores them when the recipient picks a slot and sends them back in the notification's
``event.metadata.scheduler``, so a service can match the notification to its own record.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from typing import Final

from .._errors import PayloadError

__all__ = ["LINK_METADATA_KEYS", "MAX_LINK_METADATA_LENGTH", "add_link_metadata"]

MAX_LINK_METADATA_LENGTH: Final = 128
"""The longest value Cronofy stores for each link metadata key, in characters."""

LINK_METADATA_KEYS: Final = (
    "correlation_id",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
)
"""The query parameters a Scheduler link accepts and a notification reports back."""


def _check(field: str, value: object) -> str:
    if not isinstance(value, str):
        raise PayloadError(field, f"must be a string, got {type(value).__name__}")
    if not value:
        raise PayloadError(field, "must not be empty (leave it out instead)")
    if len(value) > MAX_LINK_METADATA_LENGTH:
        raise PayloadError(
            field,
            f"{len(value)} characters; Cronofy stores at most {MAX_LINK_METADATA_LENGTH}",
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        # A lone surrogate (from a bad decode upstream) cannot go in a URL as UTF-8.
        raise PayloadError(
            field, f"is not valid Unicode text: a lone surrogate at {exc.start}"
        ) from None
    return value


def _check_url(url: object) -> urllib.parse.SplitResult:
    if not isinstance(url, str):
        raise PayloadError("url", f"must be a string, got {type(url).__name__}")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise PayloadError("url", "must be an absolute http(s) URL, such as a select_url")
    return parts


def add_link_metadata(
    url: str,
    *,
    correlation_id: str | None = None,
    utm_source: str | None = None,
    utm_medium: str | None = None,
    utm_campaign: str | None = None,
    utm_term: str | None = None,
    utm_content: str | None = None,
) -> str:
    """
    `url` (a Scheduler select URL) with link metadata added as query parameters.

    Each value is an opaque string of at most 128 characters. A parameter already in `url`
    with the same name is replaced; everything else in `url` is kept as it is.

    >>> add_link_metadata("https://app.cronofy.com/r/abc", correlation_id="order-42")
    'https://app.cronofy.com/r/abc?correlation_id=order-42'

    Raises:
        PayloadError: `url` is not an absolute http(s) URL, or a value is not a string, is
            empty, is over 128 characters or holds a lone surrogate; its `field` names
            which.

    """
    values: Mapping[str, str | None] = {
        "correlation_id": correlation_id,
        "utm_source": utm_source,
        "utm_medium": utm_medium,
        "utm_campaign": utm_campaign,
        "utm_term": utm_term,
        "utm_content": utm_content,
    }
    parts = _check_url(url)
    given = {key: _check(key, value) for key, value in values.items() if value is not None}
    if not given:
        return url
    kept = [
        pair
        for pair in parts.query.split("&")
        if pair and urllib.parse.unquote_plus(pair.partition("=")[0]) not in given
    ]
    added = urllib.parse.urlencode(given, quote_via=urllib.parse.quote)
    return urllib.parse.urlunsplit(parts._replace(query="&".join([*kept, added])))
