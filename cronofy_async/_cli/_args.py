"""Parsing the command line without ever echoing a secret it was given by mistake."""

from __future__ import annotations

import argparse
import functools
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final, NoReturn

from .._client import SECRET_ENV

__all__ = [
    "Parser",
    "RefuseSecret",
    "SecretFileError",
    "hide_secrets",
    "looks_like_secret",
    "read_secret_file",
    "scrub",
]

_HIDDEN = "[hidden]"
# Cronofy's own ids (acc_..., srq_..., sgr_..., sel_...): long and random, but not secrets, and
# a refusal that names the account at fault must show it.
_CRONOFY_ID: Final = re.compile(r"[a-z]{2,5}_[A-Za-z0-9]+")
_TOKEN: Final = re.compile(r"[A-Za-z0-9_\-]{24,}")


def looks_like_secret(value: str) -> bool:
    """
    Whether a command-line value may be a secret pasted in the wrong place, so never echoed.

    A test secret starts ``sk_``, Cronofy's signing keys ``CRN_``; a real client secret is a
    long random token. So: those prefixes, or 24 or more letters, digits, ``_`` and ``-`` with
    both letters and digits in them, unless it has the shape of a Cronofy id (``acc_...``).
    Paths, URLs, emails and data centers have a ``.``, ``/``, ``:`` or ``@``, or are short.

    >>> looks_like_secret("sk_live_abc"), looks_like_secret("acc_5ba21743f408617d1269ea1e")
    (True, False)
    """
    value = value.strip()
    if value.startswith(("sk_", "CRN_")):
        return True
    if _CRONOFY_ID.fullmatch(value) or not _TOKEN.fullmatch(value):
        return False
    return any(c.isdigit() for c in value) and any(c.isalpha() for c in value)


def _values(arg: str) -> str:
    return arg.partition("=")[2] if arg.startswith("-") else arg


def _secret_values(argv: Sequence[str]) -> list[str]:
    """The values given to any option whose name mentions a secret, however written."""
    found = []
    for position, arg in enumerate(argv):
        if not arg.startswith("-") or "secr" not in arg.lower():  # "secrt" and such too
            continue
        _, equals, value = arg.partition("=")
        if equals:
            found.append(value)
        elif position + 1 < len(argv) and not argv[position + 1].startswith("-"):
            found.append(argv[position + 1])
    found += [_values(arg) for arg in argv if looks_like_secret(_values(arg))]
    return [value for value in found if value]


def hide_secrets(message: str, argv: Sequence[str]) -> str:
    """`message` with every value of a secret-named option in `argv` replaced."""
    for value in sorted(_secret_values(argv), key=len, reverse=True):
        message = message.replace(value, _HIDDEN)
    return message


def _without_values(extras: Sequence[str]) -> list[str]:
    shown = []
    for position, arg in enumerate(extras):
        name, equals, _ = arg.partition("=")
        if arg.startswith("-") and equals:
            shown.append(f"{name}={_HIDDEN}")
        elif (
            not arg.startswith("-") and position and extras[position - 1].startswith("-")
        ) or looks_like_secret(arg):
            shown.append(_HIDDEN)
        else:
            shown.append(arg)
    return shown


class Parser(argparse.ArgumentParser):
    """
    An ``ArgumentParser`` whose errors never repeat a secret from the command line.

    argparse quotes what it could not parse ("unrecognized arguments: --client-secrt=sk_...",
    "ignored explicit argument 'sk_...'"); this one replaces those values first. Options are
    never abbreviated: an abbreviation that matches two options is quoted back too.
    """

    def __init__(self, *args: Any, root: Parser | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        self._argv: list[str] = []
        # A subcommand's parser hides what the whole command line held, not just its part.
        self._root = root

    def add_subparsers(self, **kwargs: Any) -> Any:
        """Subparsers of this class, whose errors hide the secrets of the whole command line."""
        kwargs.setdefault("parser_class", functools.partial(Parser, root=self._root or self))
        return super().add_subparsers(**kwargs)

    def parse_args(  # type: ignore[override] # no namespace: this CLI never passes one
        self, args: Sequence[str] | None = None
    ) -> argparse.Namespace:
        """Parse `args` (or ``sys.argv``); unknown options are quoted without their values."""
        self._argv = list(sys.argv[1:] if args is None else args)
        parsed, extras = super().parse_known_args(args)
        if extras:
            # Whatever an unknown option was given may be a secret under a misspelt name.
            self.error(f"unrecognized arguments: {' '.join(_without_values(extras))}")
        return parsed

    def error(self, message: str) -> NoReturn:
        """Say what is wrong in one line, secrets hidden, and exit with status 2."""
        message = hide_secrets(message, (self._root or self)._argv)
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


class RefuseSecret(argparse.Action):
    """``--client-secret``: refused, its value (if any) never printed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["nargs"] = "?"  # take the value, so argparse has nothing to quote back
        super().__init__(*args, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        parser.error(
            "--client-secret is not accepted: a secret on the command line lands in shell "
            f"history and in ps. Set {SECRET_ENV} or pass --client-secret-file PATH."
        )


def scrub(message: str, args: argparse.Namespace) -> str:
    """`message` with every option value that looks like a secret (`looks_like_secret`) hidden."""
    values = [str(v) for v in vars(args).values() if isinstance(v, str | Path)]
    for value in sorted(filter(looks_like_secret, values), key=len, reverse=True):
        message = message.replace(value, _HIDDEN)
    return message


class SecretFileError(ValueError):
    """``--client-secret-file`` cannot be read; the message never names the file."""


def read_secret_file(path: Path) -> str:
    """
    The secret in the file at `path`, stripped.

    Refused with `SecretFileError`, whose message does not repeat the path: what was given may
    be the secret itself, pasted after the wrong option.
    """
    try:
        # utf-8-sig: Notepad and PowerShell open a UTF-8 file with a BOM, as a CSV may have.
        return path.read_text(encoding="utf-8-sig").strip()
    except FileNotFoundError:
        reason = "does not exist"
    except IsADirectoryError:
        reason = "is a directory"
    except UnicodeDecodeError:
        reason = "is not UTF-8 text"
    except OSError as exc:
        reason = f"cannot be read ({exc.strerror or type(exc).__name__})"
    raise SecretFileError(
        f"--client-secret-file: the file given {reason} (its name is not repeated: it may be "
        "the secret itself)"
    )
