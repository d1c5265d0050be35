"""A wrapper that keeps the client secret out of reprs, tracebacks and messages."""

from __future__ import annotations

from typing import Final

__all__ = ["ClientSecret"]

_MASK: Final = "[secret]"


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

    def redact(self, text: str) -> str:
        """Mask the secret wherever it occurs in `text` (for example an echoed error body)."""
        return text.replace(self._value, _MASK) if self._value in text else text

    def __repr__(self) -> str:
        return f"ClientSecret({_MASK!r})"

    __str__ = __repr__

    def __reduce__(self) -> str:
        raise TypeError("a ClientSecret cannot be pickled")
