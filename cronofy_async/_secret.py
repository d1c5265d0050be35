"""A wrapper that keeps the client secret out of reprs, tracebacks and messages."""

from __future__ import annotations

import base64
import json
import re
from typing import Final
from urllib.parse import quote, quote_plus

__all__ = ["ClientSecret", "MaskedStr"]

_MASK: Final = "[secret]"


class MaskedStr(str):
    """
    A header value that carries the secret: a plain ``str`` on the wire, masked in any repr.

    A traceback printed with its frames' locals (``capture_locals=True``, pytest's
    ``--showlocals``) shows each local's repr, and so does the repr of any list, tuple or
    multidict holding one: the headers on their way down through aiohttp show as
    ``'Bearer [secret]'`` in every frame, the library's own and aiohttp's.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return repr(self.split(" ", 1)[0] + " " + _MASK) if " " in self else repr(_MASK)

    def __reduce__(self) -> str:
        raise TypeError("a header carrying the client secret cannot be pickled")


class ClientSecret:
    """
    A client secret that never shows itself by accident.

    Its repr and str are masked, so a traceback that prints locals, a debugger or an f-string
    never leak it; only `reveal` gives the value, at the one place the header is built.
    """

    __slots__ = ("_byte_forms", "_forms", "_value")

    def __init__(self, value: str) -> None:
        self._value = value
        self._forms: tuple[str, ...] | None = None
        self._byte_forms: tuple[bytes, ...] | None = None

    def reveal(self) -> str:
        """The secret itself, for the ``Authorization`` header and nothing else."""
        return self._value

    def bearer(self) -> MaskedStr:
        """``Bearer <secret>``, the ``Authorization`` header's value, masked in any repr."""
        return MaskedStr(f"Bearer {self._value}")

    def redact(self, text: str) -> str:
        """
        Mask the secret wherever it occurs in `text` (for example an echoed error body).

        Also its percent-encoded and base64 forms, which a proxy or framework may echo.
        """
        forms = self._forms
        if forms is None:
            forms = self._forms = _encoded_forms(self._value)
        for form in forms:
            if form in text:
                text = text.replace(form, _MASK)
        return text

    def redact_bytes(self, content: bytes) -> bytes:
        """
        `content` with the secret masked as `redact` does; `content` itself if it holds none.

        For a body kept as it came (a created request's answer in a ledger): one that never
        held the secret, the common case, is neither decoded nor copied.
        """
        forms = self._byte_forms
        if forms is None:
            if self._forms is None:
                self._forms = _encoded_forms(self._value)
            forms = self._byte_forms = tuple(
                form.encode(errors="surrogatepass") for form in self._forms
            )
        for form in forms:
            if form in content:
                return self.redact(content.decode(errors="replace")).encode()
        return content

    def __repr__(self) -> str:
        return f"ClientSecret({_MASK!r})"

    __str__ = __repr__

    def __reduce__(self) -> str:
        raise TypeError("a ClientSecret cannot be pickled")


def _lower_hex(quoted: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda escape: escape[0].lower(), quoted)


def _encoded_forms(value: str) -> tuple[str, ...]:
    """`value` and the forms it takes percent-, base64- or JSON-encoded, longest first."""
    if not value:
        return ()
    raw = value.encode(errors="surrogatepass")
    standard = base64.b64encode(raw).decode()
    urlsafe = base64.urlsafe_b64encode(raw).decode()
    escaped = json.dumps(value)[1:-1]
    forms = {value, standard, standard.rstrip("="), urlsafe, urlsafe.rstrip("=")}
    for quoted in (
        quote(value, safe="", errors="surrogatepass"),
        quote(value, errors="surrogatepass"),  # "/" left as it is, quote()'s default
        quote_plus(value, safe="", errors="surrogatepass"),
    ):
        forms.update((quoted, _lower_hex(quoted)))
    # JSON as encoders write it: "\/" for "/" (PHP, some Java), \uXXXX for what needs it.
    forms.update((escaped, escaped.replace("/", "\\/")))
    # Longest first, so that a form holding another (base64 with its padding) goes whole.
    return tuple(sorted(forms, key=len, reverse=True))
