"""
The fast path: an httpx transport that sends with aiohttp (``http_backend="aiohttp"``).

httpx's own connection pool costs about 0.6 ms of CPU per request and degrades with many
requests in flight; aiohttp's costs a fraction of that. This transport keeps everything above
it httpx (an ``httpx.AsyncClient``, views, the error tree) and maps every aiohttp failure to the
httpx exception that says the same about the request's fate, because that decides
``outcome_unknown``: a failure to connect proves nothing was sent, anything after may hide a
created invite.

Needs the ``aiohttp`` extra. Users' ``respx.mock`` does not intercept it: keep the default
backend in test suites that rely on respx.
"""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
import httpx

from ._response import UndecodableBody, bodiless, decode_content

__all__ = ["AiohttpTransport"]

RawHeaders = tuple[tuple[bytes, bytes], ...]

# Headers aiohttp writes itself, from the URL and the body.
_SKIP = frozenset({b"host", b"content-length", b"transfer-encoding"})


def _map_error(error: BaseException, request: httpx.Request) -> httpx.TransportError:
    """The httpx exception that says what `error` says about whether `request` was sent."""
    message = str(error) or type(error).__name__
    match error:
        case aiohttp.ConnectionTimeoutError():  # connecting, or waiting for a pooled one
            return httpx.ConnectTimeout(message, request=request)
        case aiohttp.ClientProxyConnectionError():
            return httpx.ProxyError(message, request=request)
        case aiohttp.ClientConnectorError():  # refused, unreachable, DNS, TLS handshake
            return httpx.ConnectError(message, request=request)
        case aiohttp.InvalidURL():
            return httpx.UnsupportedProtocol(message, request=request)
        case aiohttp.SocketTimeoutError() | TimeoutError():
            return httpx.ReadTimeout(message, request=request)
        case aiohttp.ServerDisconnectedError() | aiohttp.ClientResponseError():
            return httpx.RemoteProtocolError(message, request=request)
        case aiohttp.ClientConnectionResetError() | aiohttp.ClientOSError():
            return httpx.ReadError(message, request=request)
        case _:  # ClientPayloadError and anything unforeseen: the request may have gone out
            return httpx.ReadError(message, request=request)


def _reason_bytes(reason: str) -> bytes:
    # aiohttp decodes the status line's reason with surrogateescape: its bytes may be anything.
    return reason.encode("utf-8", "surrogateescape")


class AiohttpTransport(httpx.AsyncBaseTransport):
    """
    Send httpx requests with one ``aiohttp.ClientSession`` of at most `limit` connections.

    The session is made on first use, inside the running loop, and again if a later request
    comes from another loop (as under pytest-asyncio's per-test loops). Cookies are ignored and
    bodies are not decompressed by aiohttp: httpx's decoders undo ``Content-Encoding``, so
    both backends read a compressed answer the same way.
    """

    def __init__(self, *, limit: int) -> None:
        self._limit = limit
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timeouts: dict[tuple[Any, ...], aiohttp.ClientTimeout] = {}

    def _session_here(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        session = self._session
        if session is None or session.closed or self._loop is not loop:
            if session is not None and not session.closed:
                self._abandon(session)
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._limit, limit_per_host=0),
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,
                # Proxies from the environment, as httpx reads them, but only when there are
                # any: trust_env costs two thread-pool hops per request (netrc and proxy).
                trust_env=bool(urllib.request.getproxies()),
            )
            self._session, self._loop = session, loop
        return session

    @staticmethod
    def _abandon(session: aiohttp.ClientSession) -> None:
        """Let go of a session made in a loop that is gone: its sockets close without one."""
        connector = session.connector
        session.detach()
        close = getattr(connector, "_close", None)  # the synchronous half of close()
        if close is not None:
            close()

    def timeout(self, timeouts: Mapping[str, float | None]) -> aiohttp.ClientTimeout:
        """The aiohttp timeout for httpx's per-phase timeouts (cached)."""
        key = tuple(sorted(timeouts.items()))
        cached = self._timeouts.get(key)
        if cached is None:
            # httpx's pool timeout is aiohttp's 'connect' (waiting for a connection, new or
            # pooled); there is no write timeout in aiohttp.
            cached = self._timeouts[key] = aiohttp.ClientTimeout(
                total=None,
                connect=timeouts.get("pool"),
                sock_connect=timeouts.get("connect"),
                sock_read=timeouts.get("read"),
            )
        return cached

    async def send_raw(
        self,
        method: str,
        url: str,
        headers: list[tuple[str, str]],
        body: bytes | None,
        client_timeout: aiohttp.ClientTimeout,
        request: Callable[[], httpx.Request],
        *,
        decode: bool = True,
    ) -> tuple[int, str, RawHeaders, bytes]:
        """
        Send and return ``(status, reason, raw headers, body)``: the fast path's whole need.

        The body comes back decoded (``Content-Encoding`` undone as httpx would, and the header
        dropped) unless `decode` is false; one that cannot be decoded raises `UndecodableBody`.
        `request` makes the ``httpx.Request`` only if a failure must be reported with one.
        """
        session = self._session_here()
        try:
            async with session.request(
                method,
                url,
                headers=headers,
                data=body,
                allow_redirects=False,
                timeout=client_timeout,
            ) as response:
                content = await response.read()
                status, reason = response.status, response.reason or ""
                raw, encoding = response.raw_headers, response.headers.get("Content-Encoding")
        except (aiohttp.ClientError, TimeoutError) as error:
            raise _map_error(error, request()) from error
        if encoding is not None and decode:
            try:
                content = decode_content(content, encoding)
            except httpx.DecodingError as error:
                head = bodiless(status, raw, _reason_bytes(reason), request())
                raise UndecodableBody(head, encoding, error) from None
            raw = tuple(pair for pair in raw if pair[0].lower() != b"content-encoding")
        return status, reason, raw, content

    @staticmethod
    def response(
        status: int, reason: str, raw: RawHeaders, content: bytes, request: httpx.Request
    ) -> httpx.Response:
        """The ``httpx.Response`` for what `send_raw` returned (a decoded body)."""
        response = httpx.Response(
            status,
            headers=[(k, v) for k, v in raw if k.lower() != b"content-length"],
            content=content,
            extensions={"reason_phrase": _reason_bytes(reason), "http_version": b"HTTP/1.1"},
        )
        response.request = request
        return response

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """
        Send `request` and return the whole response (the ``httpx.AsyncClient`` path).

        The body is handed over as it came, for httpx to decode when it is read, as from its
        own transport.
        """
        headers = [
            (name.decode("latin-1"), value.decode("latin-1"))
            for name, value in request.headers.raw
            if name.lower() not in _SKIP
        ]
        status, reason, raw, content = await self.send_raw(
            request.method,
            str(request.url),
            headers,
            request.content or None,
            self.timeout(request.extensions.get("timeout", {})),
            lambda: request,
            decode=False,
        )
        return httpx.Response(
            status,
            headers=[(k, v) for k, v in raw if k.lower() not in _SKIP],
            stream=httpx.ByteStream(content),
            extensions={"reason_phrase": _reason_bytes(reason), "http_version": b"HTTP/1.1"},
            request=request,
        )

    async def aclose(self) -> None:
        """Close the session and its connections."""
        if self._session is not None and not self._session.closed:
            await self._session.close()
