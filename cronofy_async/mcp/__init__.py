"""
An MCP server on this library, whose retried ``create_invite`` never invites twice.

Agents list hosts and create, check and cancel invites.

Needs the ``mcp`` extra (``python -m pip install '.[mcp]'``, the official MCP SDK)::

    from cronofy_async import AsyncSchedulerAPI
    from cronofy_async.mcp import build_server

    server = build_server(AsyncSchedulerAPI())
    server.run()  # stdio

From the command line: ``cronofy-async mcp`` (stdio) or ``cronofy-async mcp --http
127.0.0.1:8000``; ``--fake`` serves against an in-process `FakeCronofy`.
"""

from __future__ import annotations

try:
    import mcp as _sdk  # noqa: F401 - only to say what is missing
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError(
        "cronofy_async.mcp needs the MCP SDK: python -m pip install 'cronofy-async[mcp]'"
    ) from exc

from ._paths import default_ledger_path
from ._server import build_server
from ._tools import KEY_PREFIX, invite_key, invite_request

__all__ = ["KEY_PREFIX", "build_server", "default_ledger_path", "invite_key", "invite_request"]
