"""
`NotificationReceiver`: an ASGI application that receives Cronofy's push notifications.

Checks run cheapest first (method, header present, declared size) so that a hostile sender
costs little; the body is read once, under a size cap and a time limit; the handler runs only
for a genuine, parseable notification. Logs name what happened, never the body or a secret.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import traceback
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final

from .._errors import ConfigurationError, NotificationError
from ._notification import Notification, parse_notification
from ._signature import HEADER, Secrets, hold_secrets, require_secrets, verify_signature

__all__ = ["DEFAULT_BODY_TIMEOUT", "DEFAULT_MAX_BODY_SIZE", "Handler", "NotificationReceiver"]

DEFAULT_MAX_BODY_SIZE: Final = 256 * 1024
"""The largest body `NotificationReceiver` reads, in bytes: Cronofy's are a few kilobytes."""
DEFAULT_BODY_TIMEOUT: Final = 10.0
"""Seconds `NotificationReceiver` waits for a whole body before answering 408."""

Handler = Callable[[Notification], Awaitable[object] | object]
"""What `NotificationReceiver` calls: ``async def handler(notification) -> None`` (or sync)."""

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

logger = logging.getLogger("cronofy_async.notifications")

_HEADER_KEY: Final = HEADER.lower().encode("ascii")


class _Disconnected(Exception):  # noqa: N818 - an event, not an error
    """The sender went away before the whole body arrived: nobody to answer."""


class _Answer(Exception):  # noqa: N818 - an instruction, not an error
    """
    Stop handling and answer `status` with `error` (a fixed code, never request data).

    `then`, if given, is raised once the answer is sent: the handler asked the process to stop.
    """

    def __init__(self, status: int, error: str, then: BaseException | None = None) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.then = then


class NotificationReceiver:
    """
    An ASGI application that verifies, parses and hands over Cronofy's push notifications.

    Mount it wherever Cronofy should POST (it answers on any path), or serve it alone::

        async def on_notification(notification: Notification) -> None:
            if notification.type == TIME_CHOSEN:
                await mark_booked(notification.correlation_id)

        app = NotificationReceiver(os.environ["CRONOFY_CLIENT_SECRET"], on_notification)
        # uvicorn module:app, or Starlette: Route("/cronofy/notifications", app)

    Every request gets one of: 405 (not a POST, with ``Allow: POST``), 401 (missing or bad
    signature: the handler is never called), 413 (body over `max_body_size`; reading stops
    there), 408 (body slower than `body_timeout`), 400 (not a notification), 500 (the handler
    raised: logged, no details answered) or 200 (the handler returned).

    A handler raising any exception gets a 500, a log line naming only the exception's class
    and where it was raised, never its message. Even a ``BaseException``: a
    ``KeyboardInterrupt`` or ``SystemExit`` is raised again once answered (without its
    message, which the server would log), so the process still stops; a ``CancelledError``
    propagates only when the server itself cancels the request.

    Args:
        secret: your client secret, or several while you rotate it. Held masked.
        handler: called with each `Notification`; may be ``async`` or not. An ``async``
            one runs on the event loop; a plain function runs in a worker thread
            (``asyncio.to_thread``, as Starlette does), so it may block without holding other
            requests, but must then be thread-safe. Cronofy may deliver a notification more
            than once: make it idempotent.
        max_body_size: the largest body read, in bytes.
        body_timeout: seconds to wait for the whole body, or ``None`` for no limit.

    """

    def __init__(
        self,
        secret: Secrets,
        handler: Handler,
        *,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
        body_timeout: float | None = DEFAULT_BODY_TIMEOUT,
    ) -> None:
        held = hold_secrets(secret)
        del secret  # only masked copies from here, whatever raises
        self._keys = require_secrets(held)
        if not callable(handler):
            raise ConfigurationError(f"handler must be callable, got {type(handler).__name__}")
        if isinstance(max_body_size, bool) or not isinstance(max_body_size, int):
            raise ConfigurationError("max_body_size must be an int (bytes)")
        if max_body_size < 1:
            raise ConfigurationError("max_body_size must be at least 1 byte")
        if body_timeout is not None and not body_timeout > 0:
            raise ConfigurationError("body_timeout must be a positive number of seconds or None")
        self.handler = handler
        """The callable each notification is handed to."""
        self._on_loop = _is_async(handler)
        self.max_body_size = max_body_size
        """The largest body read, in bytes."""
        self.body_timeout = body_timeout
        """Seconds to wait for the whole body, or ``None``."""

    def __repr__(self) -> str:
        return (
            f"<NotificationReceiver handler={_name(self.handler)} secrets={len(self._keys)} "
            f"max_body_size={self.max_body_size}>"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI scope: the lifespan (so it runs alone under a server), or a request."""
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return  # a websocket: the server refuses it
        try:
            await self._handle(scope, receive)
        except _Answer as answer:
            await _reply(send, answer.status, answer.error)
            if answer.then is not None:
                raise answer.then from None
        except _Disconnected:
            logger.info("notification sender disconnected before the body was complete")
        else:
            await _reply(send, 200, None)

    async def _handle(self, scope: Scope, receive: Receive) -> None:
        if scope["method"] != "POST":
            raise _Answer(405, "method_not_allowed")
        signature = _signature(scope)
        if not signature:
            logger.warning("rejected a notification: no %s header", HEADER)
            raise _Answer(401, "invalid_signature")
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_size:
            logger.warning(
                "rejected a notification: Content-Length %d over the %d byte limit",
                declared,
                self.max_body_size,
            )
            raise _Answer(413, "body_too_large")
        body = await self._read(receive)
        if not verify_signature(body, signature, self._keys):
            logger.warning("rejected a notification: %s does not match the body", HEADER)
            raise _Answer(401, "invalid_signature")
        try:
            notification = parse_notification(body)
        except NotificationError as error:
            # The message names a path and a problem, never a value: safe to log.
            logger.warning("rejected a signed notification: %s", error)
            raise _Answer(400, "invalid_notification") from None
        try:
            if self._on_loop:
                await self.handler(notification)  # type: ignore[misc]
            else:
                # As Starlette runs a plain function: in a thread, so a blocking handler
                # (a database driver, an HTTP call) never holds the other requests.
                result = await asyncio.to_thread(self.handler, notification)
                if inspect.isawaitable(result):
                    await result
        except BaseException as error:
            if isinstance(error, asyncio.CancelledError) and _being_cancelled():
                raise  # the server cancels this request (shutdown, client gone): not a failure
            # No message and no traceback text: either may quote the body's personal data.
            logger.error(  # noqa: TRY400 - see above: the exception text is withheld on purpose
                "notification handler failed on %r for %s: %s raised at %s",
                notification.type,
                _request_id(notification),
                type(error).__qualname__,
                _where(error),
            )
            # A handler stopping the process still stops it, once answered, but without its
            # message, which the server would log.
            raise _Answer(500, "handler_failed", _bare(error)) from None

    async def _read(self, receive: Receive) -> bytes:
        try:
            async with asyncio.timeout(self.body_timeout):
                return await _read_capped(receive, self.max_body_size)
        except TimeoutError:
            logger.warning(
                "rejected a notification: body not complete within %g s", self.body_timeout
            )
            raise _Answer(408, "body_timeout") from None


async def _read_capped(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            # Stop reading here: the server stops pulling from the socket and closes it.
            logger.warning("rejected a notification: body over the %d byte limit", limit)
            raise _Answer(413, "body_too_large")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _signature(scope: Scope) -> str:
    # Repeated header lines are one comma-separated list, as HTTP defines for list headers.
    values = [value for key, value in scope["headers"] if key.lower() == _HEADER_KEY]
    return b",".join(values).decode("latin-1").strip(", \t")


def _content_length(scope: Scope) -> int | None:
    values = {value.strip() for key, value in scope["headers"] if key.lower() == b"content-length"}
    if not values:
        return None
    if len(values) > 1 or not all(value.isdigit() for value in values):
        raise _Answer(400, "invalid_content_length")
    return int(values.pop())


def _request_id(notification: Notification) -> str:
    request = notification.scheduling_request
    return "no scheduling request" if request is None else request.scheduling_request_id


def _is_async(handler: object) -> bool:
    """
    Whether calling `handler` makes a coroutine, so it runs on the event loop.

    An ``async def``, a partial of one, or an object with an ``async def __call__``.
    """
    return inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
        getattr(handler, "__call__", None)  # noqa: B004 - the method, not callability
    )


def _being_cancelled() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _bare(error: BaseException) -> BaseException | None:
    """What to raise after answering a handler's `error`: only a request to stop, bare."""
    if isinstance(error, KeyboardInterrupt):
        return KeyboardInterrupt()
    if isinstance(error, SystemExit):
        return SystemExit(error.code if error.code is None or isinstance(error.code, int) else 1)
    return None


def _where(error: BaseException) -> str:
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:  # pragma: no cover - a raised exception always has a frame
        return "an unknown place"
    last = frames[-1]
    return f"{last.filename}:{last.lineno} in {last.name}"


def _name(handler: object) -> str:
    return getattr(handler, "__qualname__", None) or type(handler).__qualname__


async def _reply(send: Send, status: int, error: str | None) -> None:
    body = b"" if error is None else json.dumps({"error": error}).encode()
    headers = [(b"content-length", str(len(body)).encode())]
    if error is not None:
        headers.append((b"content-type", b"application/json"))
        # The body may be unread (413, 408, an early 401): without this, servers such as
        # uvicorn keep the connection and read the rest, however much the sender pushes.
        headers.append((b"connection", b"close"))
    if status == 405:
        headers.append((b"allow", b"POST"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
