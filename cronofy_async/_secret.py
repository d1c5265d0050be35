"""A wrapper that keeps the client secret out of reprs, tracebacks and messages."""

from __future__ import annotations

from typing import Final

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

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself, for the ``Authorization`` header and nothing else."""
        return self._value

    def bearer(self) -> MaskedStr:
        """``Bearer <secret>``, the ``Authorization`` header's value, masked in any repr."""
        return MaskedStr(f"Bearer {self._value}")

    def redact(self, text: str) -> str:
        """Mask the secret wherever it occurs in `text` (for example an echoed error body)."""
        return text.replace(self._value, _MASK) if self._value in text else text

    def __repr__(self) -> str:
        return f"ClientSecret({_MASK!r})"

    __str__ = __repr__

    def __reduce__(self) -> str:
        raise TypeError("a ClientSecret cannot be pickled")
