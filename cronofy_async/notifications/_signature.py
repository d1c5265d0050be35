"""
The ``Cronofy-HMAC-SHA256`` header: checking it, and making one (for tests and the fake).

The header is the base64 HMAC-SHA256 of the raw body keyed with the client secret; during a
secret rotation it is a comma-separated list, one entry per active secret. Secrets are held as
`ClientSecret` from the moment they arrive, and revealed only inside `_digest`, an expression
that cannot raise, so no traceback's locals ever hold one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable
from typing import Final, TypeAlias

from .._errors import ConfigurationError
from .._secret import ClientSecret

__all__ = [
    "HEADER",
    "Secrets",
    "hold_secrets",
    "require_secrets",
    "signature_header",
    "verify_signature",
]

HEADER: Final = "Cronofy-HMAC-SHA256"
"""The name of the header Cronofy signs notifications with."""

Secrets: TypeAlias = str | ClientSecret | Iterable[str | ClientSecret]
"""One client secret, or several while one is being rotated."""

_DIGEST_SIZE: Final = hashlib.sha256().digest_size
# Far more than any rotation needs; a header longer than this is not Cronofy's.
_MAX_HEADER_LENGTH: Final = 4096
_BAD_SECRETS: Final = (
    "secret must be a non-empty client secret (str or ClientSecret) or an iterable of them"
)


def _hold_one(value: object) -> ClientSecret | None:
    if isinstance(value, ClientSecret):
        return value if value.reveal() else None
    if isinstance(value, str):
        # A secret read from a file often ends in a newline, as for the API client.
        return ClientSecret(value.strip()) if value.strip() else None
    return None


def hold_secrets(value: object) -> tuple[ClientSecret, ...] | None:
    """
    `value` as masked `ClientSecret` values, or ``None`` if it is not one or more secrets.

    Never raises, so its frame (which holds the caller's raw value) is never in a traceback.
    The caller drops its own reference, then raises through `require_secrets`::

        held = hold_secrets(secret)
        del secret
        keys = require_secrets(held)
    """
    if isinstance(value, str | ClientSecret):
        one = _hold_one(value)
        return None if one is None else (one,)
    if not isinstance(value, Iterable):
        return None
    held = tuple(_hold_one(item) for item in value)
    if not held or any(item is None for item in held):
        return None
    return tuple(item for item in held if item is not None)


def require_secrets(held: tuple[ClientSecret, ...] | None) -> tuple[ClientSecret, ...]:
    """`held`, or `ConfigurationError` (whose message never shows a secret) if ``None``."""
    if held is None:
        raise ConfigurationError(_BAD_SECRETS)
    return held


def _digest(key: ClientSecret, body: bytes) -> bytes:
    # The one place a secret is revealed: a temporary of this expression, never a local of
    # ours. hmac.digest is Python code whose frame does hold the key, so nothing may make it
    # raise: `body` is exactly bytes (see _body) and "surrogatepass" encodes any str.
    return hmac.digest(key.reveal().encode("utf-8", "surrogatepass"), body, "sha256")


def _body(body: object) -> bytes:
    if isinstance(body, bytes):
        return body
    if isinstance(body, bytearray | memoryview):
        # A copy: a non-contiguous view would make hashing raise with the key in a frame.
        return bytes(body)
    raise TypeError(
        f"body must be the raw request body as bytes, not {type(body).__name__}: the "
        "signature covers the exact bytes received"
    )


def _candidates(header: object) -> list[bytes]:
    """The well-formed entries of a header: 32-byte digests in strict base64."""
    if isinstance(header, bytes):
        try:
            header = header.decode("ascii")
        except UnicodeDecodeError:
            return []
    if not isinstance(header, str) or len(header) > _MAX_HEADER_LENGTH:
        return []
    found = []
    for entry in header.split(","):
        try:
            digest = base64.b64decode(entry.strip(), validate=True)
        except (binascii.Error, ValueError):  # ValueError: non-ASCII text
            continue
        if len(digest) == _DIGEST_SIZE:
            found.append(digest)
    return found


def verify_signature(
    body: bytes | bytearray | memoryview, header: str | bytes | None, secret: Secrets
) -> bool:
    """
    Whether `header` (the ``Cronofy-HMAC-SHA256`` value) is a genuine signature of `body`.

    `body` is the raw request body, exactly as received. `header` may hold several
    comma-separated entries (Cronofy sends one per active secret while a secret is rotated);
    `secret` may be several too (while you rotate yours). Any entry matching any secret is
    valid. ``None``, an empty or a malformed header is simply invalid. Comparisons take
    constant time.

    >>> verify_signature(
    ...     b'{"example":"well-known"}',
    ...     "5DxentQi5YSXODEzTVv06sRwJ3pULIz1KrYv20qxEK0=",
    ...     "CRN_NggYusqPGLxwjw5FHOJYOqSrTPNXy8WQf14OID",
    ... )
    True

    Raises:
        TypeError: `body` is not bytes (a ``str`` would have to be re-encoded, and the
            signature covers the exact bytes received).
        ConfigurationError: `secret` is empty or not a secret; the message never shows it.

    """
    held = hold_secrets(secret)
    del secret  # from here on only masked copies may appear in a traceback's locals
    keys = require_secrets(held)
    data = _body(body)
    candidates = _candidates(header)
    if not candidates:
        return False
    expected = [_digest(key, data) for key in keys]
    # Every pair is compared, match or not, so timing says nothing about which entry matched.
    matches = [hmac.compare_digest(want, got) for want in expected for got in candidates]
    return any(matches)


def signature_header(body: bytes | bytearray | memoryview, secret: Secrets) -> str:
    """
    The ``Cronofy-HMAC-SHA256`` value Cronofy would send with `body`, one entry per secret.

    For tests of your own handlers, and for the fake Cronofy's notifications::

        body = json.dumps({"notification": {...}}).encode()
        headers = {"Cronofy-HMAC-SHA256": signature_header(body, "my_client_secret")}

    >>> signature_header(b'{"example":"well-known"}', "CRN_NggYusqPGLxwjw5FHOJYOqSrTPNXy8WQf14OID")
    '5DxentQi5YSXODEzTVv06sRwJ3pULIz1KrYv20qxEK0='
    """
    held = hold_secrets(secret)
    del secret
    keys = require_secrets(held)
    data = _body(body)
    return ",".join(base64.b64encode(_digest(key, data)).decode("ascii") for key in keys)
