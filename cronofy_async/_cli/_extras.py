"""Telling the user, in one line, which optional dependency a command lacks and how to add it."""

from __future__ import annotations

import importlib
import importlib.metadata
import re
import shlex
from typing import Final

__all__ = ["missing_extra"]

# What each extra adds, should the installed metadata be unavailable (a source checkout).
_FALLBACK: Final = {"testing": ("uvicorn>=0.30", "httptools>=0.6"), "mcp": ("mcp>=2",)}
_EXTRA_MARKER: Final = re.compile(r"""extra\s*==\s*['"]([^'"]+)['"]""")


def _requirements(extra: str) -> list[str]:
    """The requirements the extra adds, as pip takes them, from the installed metadata."""
    try:
        declared = importlib.metadata.requires("cronofy-async") or []
    except importlib.metadata.PackageNotFoundError:
        declared = []
    found = []
    for entry in declared:
        requirement, _, marker = entry.partition(";")
        match = _EXTRA_MARKER.search(marker)
        if match and match.group(1) == extra and "cronofy-async" not in requirement:
            found.append(requirement.strip().replace(" ", ""))
    return found or list(_FALLBACK.get(extra, ()))


def missing_extra(command: str, module: str, extra: str) -> str | None:
    """
    Why `command` cannot run without `module`, with the install line; ``None`` if it can.

    The line names the packages themselves, not ``cronofy-async[extra]``: it works however
    cronofy-async itself was installed (from a clone, or from a package index).
    """
    try:
        importlib.import_module(module)
    except ImportError:
        packages = " ".join(shlex.quote(r) for r in _requirements(extra))
        return (
            f"cronofy-async {command} needs {module} (the '{extra}' extra), which is not "
            f"installed: run  python -m pip install {packages}"
        )
    return None
