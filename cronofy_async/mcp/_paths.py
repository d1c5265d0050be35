"""Where the MCP server keeps its idempotency ledger by default: the user's state directory."""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["default_ledger_path"]


def default_ledger_path() -> Path:
    """
    ``cronofy-async/mcp-ledger.sqlite3`` in the user's state directory.

    ``$XDG_STATE_HOME`` (else ``~/.local/state``) on Linux and other Unixes,
    ``~/Library/Application Support`` on macOS, ``%LOCALAPPDATA%`` on Windows: kept across
    restarts, so a retried tool call after a restart still finds the first invite::

        >>> default_ledger_path().name
        'mcp-ledger.sqlite3'
    """
    if sys.platform == "win32":  # pragma: no cover - not run on this project's CI
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":  # pragma: no cover
        base = Path.home() / "Library" / "Application Support"
    else:
        state = os.environ.get("XDG_STATE_HOME", "")
        # The XDG spec: a relative path in it is invalid and is to be ignored.
        base = Path(state) if os.path.isabs(state) else Path.home() / ".local" / "state"
    return base / "cronofy-async" / "mcp-ledger.sqlite3"
