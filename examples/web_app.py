"""
A web endpoint that creates one invite per request, sharing one AsyncSchedulerAPI.

A plain ASGI app (no framework needed; the same shape works in FastAPI or Starlette): the API
object is created at startup and closed at shutdown, so every request reuses one connection
pool, one pace under Cronofy's limits and one 429 pause.

    POST /invite  {"email": "doc@evenitron.com", "name": "Dr Emmet Brown"}
    -> 201 {"scheduler_request_id": "srq_...", "select_url": "https://..."}

Configuration from the environment: CRONOFY_CLIENT_SECRET, CRONOFY_DATA_CENTER, HOST_SUB, and
CRONOFY_BASE_URL to point it at a fake or a proxy. Run with any ASGI server:
``uvicorn examples.web_app:app``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from cronofy_async import (
    APIError,
    AsyncSchedulerAPI,
    Event,
    Host,
    NewSchedulerRequest,
    PayloadError,
    Recipient,
)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class InviteApp:
    """POST /invite creates a scheduler request for the posted recipient."""

    def __init__(self) -> None:
        self.api: AsyncSchedulerAPI | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI scope: the lifespan, or one HTTP request."""
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.api = AsyncSchedulerAPI(base_url=os.environ.get("CRONOFY_BASE_URL"))
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.api is not None:
                    await self.api.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["method"], scope["path"]) != ("POST", "/invite"):
            await _reply(send, 404, {"error": "not found"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if self.api is None:
            raise RuntimeError("the app was not started: run it under an ASGI lifespan")
        try:
            data = json.loads(body)
            created = await self.api.create_scheduler_request(
                NewSchedulerRequest(
                    host=Host(sub=os.environ["HOST_SUB"]),
                    recipients=[Recipient(email=data.get("email"), display_name=data.get("name"))],
                    event=Event(summary=data.get("summary", "Intro call")),
                )
            )
        except (ValueError, AttributeError) as error:  # PayloadError is a ValueError
            field = error.field if isinstance(error, PayloadError) else "body"
            await _reply(send, 400, {"error": str(error), "field": field})
            return
        except APIError as error:
            # Tell the caller whether retrying could invite the person twice.
            await _reply(send, 502, {"error": str(error), "may_exist": error.outcome_unknown})
            return
        await _reply(
            send,
            201,
            {
                "scheduler_request_id": created.scheduler_request_id,
                "select_url": created.select_url,
            },
        )


async def _reply(send: Send, status: int, payload: dict[str, Any]) -> None:
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


app = InviteApp()
