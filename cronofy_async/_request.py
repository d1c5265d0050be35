"""
How a request is built: headers for every call, and the scheduler-request create.

Pure functions of their inputs.

Nothing here does I/O, so every rule of the wire format is tested without a network.
"""

from __future__ import annotations

import platform
from typing import Any, Final

import httpx

from ._converter import unstructure_payload
from ._errors import PayloadError
from ._models import SchedulerRequest, structure_scheduler_request
from ._operation import Operation, json_body, read_json
from ._payload import NewSchedulerRequest, check_host_mode, check_impersonation_sub
from ._secret import ClientSecret
from ._version import __version__

__all__ = [
    "CONTENT_TYPE",
    "CREATE_PATH",
    "USER_AGENT",
    "create_operation",
    "encode_create_body",
    "request_headers",
]

CREATE_PATH: Final = "/v1/scheduler_requests"
CONTENT_TYPE: Final = "application/json; charset=utf-8"
USER_AGENT: Final = (
    f"cronofy-async/{__version__} "
    f"({platform.python_implementation()} {platform.python_version()}; httpx/{httpx.__version__})"
)


def request_headers(
    secret: ClientSecret, *, impersonate: str | None, with_body: bool = True
) -> dict[str, str]:
    """
    Every header a call sends; ``Cronofy-Impersonate`` only when impersonating.

    The Authorization value is a `MaskedStr`: the secret goes out on the wire but never shows
    in a repr, so not in a traceback's locals either.
    """
    headers: dict[str, str] = {"Authorization": secret.bearer()}
    if with_body:
        headers["Content-Type"] = CONTENT_TYPE
    headers["Accept"] = "application/json"
    # What both backends decode (httpx's decoders, on either): said the same way on both.
    headers["Accept-Encoding"] = "gzip, deflate"
    headers["User-Agent"] = USER_AGENT
    if impersonate is not None:
        headers["Cronofy-Impersonate"] = check_impersonation_sub(impersonate)
    return headers


def create_payload(request: NewSchedulerRequest, *, impersonating: bool) -> dict[str, Any]:
    """Check the host rule for this call; the JSON-ready body."""
    if not isinstance(request, NewSchedulerRequest):
        raise PayloadError(
            "request", f"must be a NewSchedulerRequest, got {type(request).__name__}"
        )
    check_host_mode(request, impersonating=impersonating)
    return unstructure_payload(request)


def encode_create_body(request: NewSchedulerRequest, *, impersonating: bool) -> bytes:
    """Check the host rule for this call and encode the body as compact UTF-8 JSON."""
    return json_body(create_payload(request, impersonating=impersonating))


_READ_CREATED: Final = read_json("scheduler_request", structure_scheduler_request, mutates=True)


def create_operation(
    request: NewSchedulerRequest, *, impersonating: bool
) -> Operation[SchedulerRequest]:
    """``POST /v1/scheduler_requests``: never repeated blindly, since Cronofy cannot dedupe it."""
    payload = create_payload(request, impersonating=impersonating)
    return Operation(
        name="create_scheduler_request",
        method="POST",
        path=CREATE_PATH,
        body=json_body(payload),
        payload=payload,
        read=_READ_CREATED,
        idempotent=False,
        mutates=True,
    )
