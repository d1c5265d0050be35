"""
How a create is built: URL, headers and JSON body, as pure functions of their inputs.

Nothing here does I/O, so every rule of the wire format is tested without a network.
"""

from __future__ import annotations

import json
import platform
from typing import Final

import httpx

from ._converter import unstructure_payload
from ._errors import PayloadError
from ._payload import NewSchedulerRequest, check_host_mode, check_impersonation_sub
from ._secret import ClientSecret
from ._version import __version__

__all__ = [
    "CONTENT_TYPE",
    "CREATE_PATH",
    "USER_AGENT",
    "create_headers",
    "create_url",
    "encode_create_body",
]

CREATE_PATH: Final = "/v1/scheduler_requests"
CONTENT_TYPE: Final = "application/json; charset=utf-8"
USER_AGENT: Final = (
    f"cronofy-async/{__version__} "
    f"({platform.python_implementation()} {platform.python_version()}; httpx/{httpx.__version__})"
)


def create_url(base_url: str) -> str:
    """The create endpoint under a data center's base URL (which has no trailing slash)."""
    return base_url + CREATE_PATH


def create_headers(secret: ClientSecret, *, impersonate: str | None) -> dict[str, str]:
    """Every header a create sends; ``Cronofy-Impersonate`` only when impersonating."""
    headers = {
        "Authorization": f"Bearer {secret.reveal()}",
        "Content-Type": CONTENT_TYPE,
        "Accept": "application/json",
        "User-Agent": USER_AGENT,
    }
    if impersonate is not None:
        headers["Cronofy-Impersonate"] = check_impersonation_sub(impersonate)
    return headers


def encode_create_body(request: NewSchedulerRequest, *, impersonating: bool) -> bytes:
    """Check the host rule for this call and encode the body as compact UTF-8 JSON."""
    if not isinstance(request, NewSchedulerRequest):
        raise PayloadError(
            "request", f"must be a NewSchedulerRequest, got {type(request).__name__}"
        )
    check_host_mode(request, impersonating=impersonating)
    return json.dumps(
        unstructure_payload(request), ensure_ascii=False, separators=(",", ":")
    ).encode()
