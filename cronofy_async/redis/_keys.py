"""Where a namespace's state lives in Redis: key names, built from the namespace alone."""

from __future__ import annotations

import urllib.parse
from typing import Final

import attrs

from .._errors import ConfigurationError

__all__ = ["MAX_NAMESPACE_LENGTH", "Keys", "keys_for", "ledger_prefix"]

MAX_NAMESPACE_LENGTH: Final = 200
_PREFIX: Final = "cronofy-async"


@attrs.frozen(kw_only=True)
class Keys:
    """The two keys a namespace uses: its admission log and its pause."""

    log: str
    """A sorted set: one member per admitted (or booked) request, scored by its admission."""
    pause: str
    """A string: the instant (microseconds on Redis's clock) until which nothing is admitted."""


def keys_for(namespace: object) -> Keys:
    """
    The keys of `namespace`, which any non-empty string may be.

    The namespace is percent-encoded, so no character of it (``:``, ``{``, a space, a
    newline...) can make two namespaces share a key or break the key's layout; it is wrapped
    in a hash tag (``{...}``) so that a cluster keeps a namespace's keys on one node.

    >>> keys_for("invites").log
    'cronofy-async:{invites}:log'
    >>> keys_for("a b:{c}").pause
    'cronofy-async:{a%20b%3A%7Bc%7D}:pause'
    """
    tag = _tag(namespace)
    return Keys(log=f"{_PREFIX}:{{{tag}}}:log", pause=f"{_PREFIX}:{{{tag}}}:pause")


def _tag(namespace: object) -> str:
    if not isinstance(namespace, str) or not namespace:
        raise ConfigurationError(f"namespace must be a non-empty string, got {namespace!r}")
    if len(namespace) > MAX_NAMESPACE_LENGTH:
        raise ConfigurationError(
            f"namespace must be at most {MAX_NAMESPACE_LENGTH} characters, got {len(namespace)}"
        )
    return urllib.parse.quote(namespace, safe="-._~/@")


def ledger_prefix(namespace: object) -> str:
    """
    The start of every idempotency key's Redis key in `namespace`; the key, quoted, follows.

    >>> ledger_prefix("invites") + "order-42"
    'cronofy-async:{invites}:ledger:order-42'
    """
    return f"{_PREFIX}:{{{_tag(namespace)}}}:ledger:"
