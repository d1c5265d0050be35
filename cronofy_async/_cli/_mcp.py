"""
``cronofy-async mcp``: the MCP server (`cronofy_async.mcp.build_server`) on stdio or HTTP.

Under stdio, stdout carries protocol messages only: everything this command says goes to
stderr. Over HTTP it listens on loopback unless told otherwise, and an address other
machines can reach is refused without a bearer token.
"""

from __future__ import annotations

import argparse
import contextlib
import hmac
import ipaddress
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO, Any, Final

import attrs

from .._client import SECRET_ENV, AsyncSchedulerAPI
from .._errors import CronofyError
from .._ledger import Ledger, MemoryLedger
from .._ratelimit import RateLimit
from .._sqlite_ledger import SQLiteLedger
from . import _redis_option
from ._args import read_secret_file, scrub
from ._command import EXIT_USAGE, Command, run_async
from ._connect import add_connection_arguments
from ._extras import missing_extra
from ._streams import stderr as _stderr

__all__ = ["COMMAND", "TOKEN_ENV", "HttpAddress", "add_arguments", "bearer_guard", "run_mcp"]

TOKEN_ENV: Final = "CRONOFY_MCP_TOKEN"  # noqa: S105 - the variable's name, not a token
"""Where the HTTP transport's bearer token is read when ``--http-token-file`` is not given."""
EXIT_OK: Final = 0
_LOOPBACK_NAMES: Final = ("127.0.0.1", "localhost", "::1")


@attrs.frozen(kw_only=True)
class HttpAddress:
    """Where ``--http`` listens."""

    host: str
    port: int

    @property
    def loopback(self) -> bool:
        """Whether only this machine can reach it."""
        if self.host in _LOOPBACK_NAMES:
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False  # a name other than localhost may resolve anywhere


def http_address(text: str) -> HttpAddress:
    """
    ``HOST:PORT``, ``[::1]:PORT``, ``:PORT`` or ``PORT`` (loopback, 127.0.0.1).

    >>> http_address("8000"), http_address("0.0.0.0:9000").loopback
    (HttpAddress(host='127.0.0.1', port=8000), False)
    """
    host, _, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    host = host or "127.0.0.1"
    try:
        number = int(port)
    except ValueError:
        number = -1
    if not 0 <= number <= 65535 or any(c.isspace() for c in host):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not HOST:PORT (for example 127.0.0.1:8000, or just a port)"
        )
    return HttpAddress(host=host, port=number)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the mcp command's options to `parser`."""
    parser.add_argument(
        "--http",
        type=http_address,
        metavar="HOST:PORT",
        help="serve streamable HTTP here (a bare PORT listens on 127.0.0.1) instead of stdio; "
        "an address other machines can reach needs --http-token-file or $" + TOKEN_ENV,
    )
    parser.add_argument(
        "--http-allow-host",
        action="append",
        default=[],
        metavar="NAME[:PORT]",
        help="a Host header the HTTP transport accepts besides loopback's (repeat for more); "
        "given, requests naming any other host are refused (DNS-rebinding protection, always "
        "on for a loopback address)",
    )
    parser.add_argument(
        "--http-token-file",
        type=Path,
        metavar="PATH",
        help=f"every HTTP request must carry 'Authorization: Bearer <the token in this file>' "
        f"(default ${TOKEN_ENV})",
    )
    parser.add_argument(
        "--fake",
        action="store_true",
        help="serve against an in-process fake Cronofy (no account, nothing real sent)",
    )
    add_connection_arguments(parser, json=False)
    _redis_option.add_arguments(parser)
    parser.add_argument(
        "--ledger",
        metavar="PATH",
        default=None,
        help="keep create_invite's idempotency keys in this SQLite file (default: "
        "cronofy-async/mcp-ledger.sqlite3 in your state directory; under --redis-url, in "
        "Redis; with --fake, in memory)",
    )


class _UsageError(Exception):
    """The command cannot start; the message says why in one line."""


def _token(args: argparse.Namespace) -> str | None:
    if args.http_token_file is not None:
        path: Path = args.http_token_file
        try:
            token = path.read_text(encoding="utf-8-sig").strip()
        except OSError as exc:
            raise _UsageError(
                f"--http-token-file: cannot read it ({exc.strerror or type(exc).__name__})"
            ) from None
        if not token:
            raise _UsageError("--http-token-file: the file is empty")
        return token
    given: str = os.environ.get(TOKEN_ENV, "").strip()
    return given or None


def _ledger(args: argparse.Namespace) -> Ledger:
    shared = _redis_option.ledger(args)
    if shared is not None:
        return shared
    if args.fake:
        # Never the real ledger: a fake invite's key would answer a real call later.
        return MemoryLedger()
    from ..mcp import default_ledger_path

    path = default_ledger_path()
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise _UsageError(
            f"cannot make {path.parent} for the idempotency ledger "
            f"({exc.strerror or type(exc).__name__}); give --ledger PATH"
        ) from None
    return SQLiteLedger(path)


def _secret(args: argparse.Namespace) -> str | None:
    if args.client_secret_file is not None:
        return read_secret_file(args.client_secret_file)
    return os.environ.get(SECRET_ENV)


@contextlib.asynccontextmanager
async def _api(args: argparse.Namespace) -> AsyncIterator[tuple[AsyncSchedulerAPI, str]]:
    """The one API object for the server's life, and a line saying what it talks to."""
    ledger = _ledger(args)
    limit = _redis_option.rate_limit(args, RateLimit())
    try:
        if args.fake:
            from ..testing import FakeCronofy

            fake = FakeCronofy(members=_FAKE_HOSTS, selection_rules=_FAKE_RULES)
            api = fake.api(ledger=ledger, rate_limit=limit)
            where = "an in-process fake Cronofy (nothing real is sent)"
        else:
            api = AsyncSchedulerAPI(
                _secret(args),
                data_center=args.data_center,
                base_url=args.base_url,
                rate_limit=limit,
                ledger=ledger,
            )
            where = f"Cronofy at {api.base_url}"
        async with api:
            yield api, f"{where}; idempotency keys in {ledger!r}"
    finally:
        await _redis_option.aclose(limit, ledger)


_FAKE_HOSTS: Final = {
    "acc_5ba21743f408617d1269ea1e": "doc@evenitron.com",
    "acc_64b17d868090ea21640c914c": "marty@evenitron.com",
}
_FAKE_RULES: Final = {
    "sel_1": ("Driving instructors", 1, ("doc@evenitron.com", "marty@evenitron.com")),
}


def bearer_guard(app: Any, token: str) -> Any:
    """
    An ASGI app that answers 401 unless ``Authorization: Bearer <token>`` is sent.

    Checked on every HTTP request (and WebSocket), in constant time; lifespan events pass
    through.
    """
    expected = f"Bearer {token}".encode()

    async def guarded(scope: Any, receive: Any, send: Any) -> None:
        kind = scope["type"]
        # Every request is checked, a WebSocket as much as HTTP; only lifespan passes.
        given = dict(scope.get("headers") or ()).get(b"authorization", b"")
        if kind != "lifespan" and not hmac.compare_digest(given, expected):
            if kind == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            await send(
                {
                    "type": "http.response.start",
                    "status": 401,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"www-authenticate", b'Bearer realm="cronofy-async mcp"'),
                    ],
                }
            )
            await send(
                {
                    "type": "http.response.body",
                    "body": b'{"error": "unauthorized: send Authorization: Bearer <token>"}',
                }
            )
            return
        await app(scope, receive, send)

    return guarded


_ANY_ADDRESS: Final = ("0.0.0.0", "::")  # noqa: S104 - to leave them out, not to bind


def _in_host_header(host: str) -> str:
    return f"[{host}]" if ":" in host else host  # an IPv6 address is bracketed there


def _host_forms(name: str) -> list[str]:
    """The Host headers `name` (``NAME``, ``NAME:PORT``, ``[V6]:PORT``, a bare IPv6) stands for."""
    if name.startswith("["):
        return [name] if "]:" in name else [name, f"{name}:*"]
    if name.count(":") > 1:  # a bare IPv6 address: Host headers bracket it
        return [f"[{name}]", f"[{name}]:*"]
    return [name] if ":" in name else [name, f"{name}:*"]


def transport_security(address: HttpAddress, allow_hosts: list[str]) -> Any:
    """
    The SDK's DNS-rebinding protection for `address`: which Host and Origin headers pass.

    On loopback, where no token is asked for, it is always on: a web page the user opens
    cannot reach the server through a name of its own. Elsewhere every request carries the
    bearer token, which a web page does not have, so the Host header is checked only when
    ``--http-allow-host`` names the hosts (loopback's always pass)::

        >>> settings = transport_security(http_address("8000"), [])
        >>> settings.enable_dns_rebinding_protection, settings.allowed_hosts[:2]
        (True, ['127.0.0.1:*', 'localhost:*'])
    """
    from mcp.server.transport_security import TransportSecuritySettings

    if not address.loopback and not allow_hosts:
        return TransportSecuritySettings(enable_dns_rebinding_protection=False)
    hosts = [f"{_in_host_header(name)}:*" for name in _LOOPBACK_NAMES]
    if address.host not in _LOOPBACK_NAMES and address.host not in _ANY_ADDRESS:
        hosts.append(f"{_in_host_header(address.host)}:*")
    for name in allow_hosts:
        hosts.extend(_host_forms(name.strip()))
    origins = [f"{scheme}://{host}" for host in hosts for scheme in ("http", "https")]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=list(dict.fromkeys(hosts)),
        allowed_origins=list(dict.fromkeys(origins)),
    )


async def _serve_http(
    server: Any,
    address: HttpAddress,
    token: str | None,
    err: IO[str],
    allow_hosts: list[str] | None = None,
) -> None:
    import uvicorn

    app = server.streamable_http_app(
        host=address.host, transport_security=transport_security(address, allow_hosts or [])
    )
    if token is not None:
        app = bearer_guard(app, token)
    config = uvicorn.Config(
        app, host=address.host, port=address.port, log_level="warning", lifespan="on"
    )
    served = uvicorn.Server(config)
    await served.serve()


def _http_token(args: argparse.Namespace, address: HttpAddress | None) -> str | None:
    token = _token(args) if address is not None else None
    if address is not None and not address.loopback and token is None:
        raise _UsageError(
            f"--http {address.host}:{address.port} is not a loopback address (such as "
            "127.0.0.1, localhost or [::1]), so other machines may reach it: it needs a "
            f"bearer token (--http-token-file PATH or ${TOKEN_ENV})"
        )
    return token


async def run_mcp(args: argparse.Namespace, *, err: IO[str] | None = None) -> int:
    """Serve the MCP tools until stdin closes (stdio) or the process is stopped (HTTP)."""
    err = err if err is not None else _stderr()
    missing = missing_extra("mcp", "mcp", "mcp")
    if missing is not None:
        err.write(f"{missing}\n")
        return EXIT_USAGE
    if args.fake and (args.base_url or args.data_center):
        err.write("cronofy-async mcp: --fake serves in process: drop --base-url/--data-center\n")
        return EXIT_USAGE
    from ..mcp import build_server

    try:
        address: HttpAddress | None = args.http
        token = _http_token(args, address)
        if address is not None and not address.loopback:
            err.write(
                f"cronofy-async mcp: warning: {address.host}:{address.port} is reachable from "
                "other machines; every request must carry the bearer token, and plain HTTP "
                "shows it to the network: put TLS in front\n"
            )
        async with _api(args) as (api, where):
            server = build_server(api)
            if address is None:
                err.write(f"cronofy-async mcp: serving on stdio, sending to {where}\n")
                err.flush()
                await server.run_stdio_async()
            else:
                guard = "bearer token required" if token else "no token"
                err.write(
                    f"cronofy-async mcp: serving http://{address.host}:{address.port}/mcp "
                    f"({guard}), sending to {where}\n"
                )
                err.flush()
                await _serve_http(server, address, token, err, args.http_allow_host)
    except (_UsageError, CronofyError, ValueError, OSError) as exc:
        err.write(f"cronofy-async mcp: {scrub(str(exc), args)}\n")
        return EXIT_USAGE
    return EXIT_OK


COMMAND = Command(
    name="mcp",
    help="serve the Scheduler API to AI agents over MCP (stdio, or --http); needs the mcp extra",
    description=(
        "An MCP server: list_hosts, create_invite (a retried call never invites twice), "
        "get_invites, cancel_invite and show_selection_rule. stdio by default; --http "
        "HOST:PORT serves streamable HTTP. --fake tries it against an in-process fake."
    ),
    add_arguments=add_arguments,
    run=lambda args: run_async(run_mcp(args)),
)
