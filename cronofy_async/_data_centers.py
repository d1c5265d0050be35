"""Cronofy's data centers and how a user may name one."""

from __future__ import annotations

import enum

import httpx

from ._errors import ConfigurationError

__all__ = ["DataCenter", "normalize_base_url"]


class DataCenter(enum.StrEnum):
    """
    One of Cronofy's six data centers; an account lives in exactly one.

    Accepts the two-letter id, the host name or the full URL, in any case::

        DataCenter("uk") is DataCenter("api-uk.cronofy.com") is DataCenter.UK
        DataCenter.UK.base_url == "https://api-uk.cronofy.com"
    """

    US = "us"
    AU = "au"
    CA = "ca"
    DE = "de"
    SG = "sg"
    UK = "uk"

    @property
    def host(self) -> str:
        """The API host name, such as ``api-uk.cronofy.com``."""
        return "api.cronofy.com" if self is DataCenter.US else f"api-{self.value}.cronofy.com"

    @property
    def base_url(self) -> str:
        """The API base URL, such as ``https://api-uk.cronofy.com`` (no trailing slash)."""
        return f"https://{self.host}"

    @classmethod
    def _missing_(cls, value: object) -> DataCenter:
        if isinstance(value, str):
            text = value.strip().lower()
            for prefix in ("https://", "http://"):
                text = text.removeprefix(prefix)
            text = text.rstrip("/")
            for member in cls:
                if text in (member.value, member.host):
                    return member
        valid = ", ".join(f"{m.value!r} ({m.host})" for m in cls)
        raise ConfigurationError(f"unknown Cronofy data center {value!r}; valid ones are: {valid}")


def normalize_base_url(value: str) -> str:
    """Check a ``base_url=`` override (absolute, http or https, no query or fragment), unslashed."""
    try:
        url = httpx.URL(value)
    except (httpx.InvalidURL, TypeError) as exc:
        raise ConfigurationError(f"base_url {value!r} is not a valid URL: {exc}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ConfigurationError(
            f"base_url {value!r} must be an absolute http:// or https:// URL, "
            "such as 'http://127.0.0.1:8000'"
        )
    text = str(url)
    # Every path is appended to it: after a ? or # it would be query or fragment, and the
    # whole host "below" a list's path, which a next_page link is allowed to reach. httpx
    # keeps a bare ? or # in its str, so the text is what tells.
    if "?" in text or "#" in text:
        raise ConfigurationError(
            f"base_url {value!r} must not have a query string or fragment: paths are appended "
            "to it, such as 'https://proxy.example/cronofy'"
        )
    return text.rstrip("/")
