"""Serving a `FakeCronofy` over TCP with uvicorn (the ``testing`` extra)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from .._errors import ConfigurationError
from ._fake import DropConnection

if TYPE_CHECKING:
    from ._fake import FakeCronofy

try:
    import uvicorn
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ConfigurationError(
        "serving FakeCronofy over TCP needs uvicorn: pip install 'cronofy-async[testing]'"
    ) from exc

__all__ = ["listening_socket", "run", "serving"]


class _HideDrops(logging.Filter):
    """A dropped connection is an injected fault, not a server error worth a traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], DropConnection))


def _quiet_drops() -> None:
    error_log = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _HideDrops) for f in error_log.filters):
        error_log.addFilter(_HideDrops())


def listening_socket(host: str, port: int) -> socket.socket:
    """Bind and listen now, so the port is known and connections queue before serving starts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that say so, and without
    # it every answer (headers and body written apart) waits ~40 ms on a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(2048)
    return sock


def _config(app: FakeCronofy, **options: object) -> uvicorn.Config:
    _quiet_drops()
    return uvicorn.Config(
        app,
        lifespan="off",
        access_log=False,
        log_config=None,  # leave the host application's logging alone
        log_level="warning",
        timeout_graceful_shutdown=2,
        **options,  # type: ignore[arg-type]
    )


def _base_url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


@contextlib.asynccontextmanager
async def serving(app: FakeCronofy, *, host: str, port: int) -> AsyncIterator[str]:
    """Serve `app` in the running loop for the duration of the block; yield its base URL."""
    sock = listening_socket(host, port)
    server = uvicorn.Server(_config(app))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()  # startup failed: raise why
            await asyncio.sleep(0.005)
        yield _base_url(sock)
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
        sock.close()


def run(app: FakeCronofy, *, host: str, port: int) -> None:
    """Serve `app` in the foreground until interrupted (the command line's fake server)."""
    sock = listening_socket(host, port)
    print(f"fake Cronofy listening on {_base_url(sock)}", flush=True)
    uvicorn.Server(_config(app)).run(sockets=[sock])
