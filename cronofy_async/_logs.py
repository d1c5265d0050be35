"""
The ``cronofy_async`` logger, and ``CRONOFY_LOG`` for a console without logging set up.

The library says one line per retry, 429, pause, refused page link and unknown outcome, with
the operation and the attempt, and never the secret, a body or a recipient's email. Like any
library it adds no handler of its own, unless ``CRONOFY_LOG=debug`` (or ``info``) asks for a
console on standard error, as the Stainless SDKs do with theirs.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Mapping
from typing import Final, TextIO

__all__ = ["ENV", "LOGGER", "configure_from_env", "console_handler", "mask_emails"]

ENV: Final = "CRONOFY_LOG"
LOGGER: Final = "cronofy_async"

_LEVELS: Final = {"debug": logging.DEBUG, "info": logging.INFO}
_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_EMAIL: Final = re.compile(r"[^\s@'\"<>()\[\],;:]+@[^\s@'\"<>()\[\],;:]+")


def mask_emails(text: str) -> str:
    """
    `text` with anything shaped like an email address replaced by ``[email]``.

    For values the caller chose and a log line repeats, such as an idempotency key.

    >>> mask_emails("order-42 for doc@evenitron.com")
    'order-42 for [email]'
    """
    return _EMAIL.sub("[email]", text)


class _Console(logging.StreamHandler):  # type: ignore[type-arg]
    """
    The handler ``CRONOFY_LOG`` installs: known by its class, so never installed twice.

    It stands in for logging the application has not set up: once a handler of the root
    logger prints a line too (``logging.basicConfig`` after the import, say), printing it
    here as well would print it twice. A ``NullHandler``, or one above the line's level,
    prints nothing: then this one does.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not _printed_elsewhere(record) and bool(super().filter(record))


def _printed_elsewhere(record: logging.LogRecord) -> bool:
    """Whether a handler of the application's root logger will print `record` too."""
    if not logging.getLogger(LOGGER).propagate:
        return False
    return any(
        not isinstance(handler, logging.NullHandler) and record.levelno >= handler.level
        for handler in logging.getLogger().handlers
    )


def console_handler(stream: TextIO | None = None) -> logging.Handler:
    """
    A handler that prints ``<time> LEVEL cronofy_async: message`` lines to `stream`.

    >>> console_handler().formatter is not None
    True
    """
    handler = _Console(stream if stream is not None else sys.stderr)
    handler.setFormatter(logging.Formatter(_FORMAT))
    return handler


def configure_from_env(environ: Mapping[str, str] = os.environ) -> logging.Handler | None:
    """
    Turn on console logging at the level ``CRONOFY_LOG`` names (``debug`` or ``info``).

    Returns the console handler, the one already installed if called again; ``None`` (and
    nothing changed) when the variable is unset or names another level, which is said on
    standard error.

    >>> configure_from_env({}) is None
    True
    """
    asked = environ.get(ENV, "").strip().lower()
    level = _LEVELS.get(asked)
    logger = logging.getLogger(LOGGER)
    if level is None:
        if asked:  # a typo must not look like a quiet library
            sys.stderr.write(f"cronofy_async: {ENV}={asked!r} is not debug or info; ignored\n")
        return None
    logger.setLevel(level)
    for handler in logger.handlers:
        if isinstance(handler, _Console):
            return handler
    handler = console_handler()
    logger.addHandler(handler)
    return handler
