"""Naming re-exported objects after the public module that exports them, as httpx does."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["publish"]


def publish(namespace: Mapping[str, Any], names: Iterable[str], module: str) -> None:
    """Set ``__module__`` of each of `names` defined in a private submodule to `module`."""
    for name in names:
        obj = namespace[name]
        if getattr(obj, "__module__", "").startswith(f"{module}._"):
            obj.__module__ = module
