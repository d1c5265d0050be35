"""``cronofy-async fake-server``: serve a fake Cronofy on loopback for manual tests."""

from __future__ import annotations

import argparse
from typing import Final

from ..testing._cli import add_arguments, run_from_arguments
from ._command import EXIT_USAGE, Command
from ._extras import missing_extra
from ._streams import stderr

__all__ = ["COMMAND"]


def _run(args: argparse.Namespace) -> int:
    missing = missing_extra("fake-server", "uvicorn", "testing")
    if missing is not None:
        stderr().write(f"{missing}\n")
        return EXIT_USAGE
    return run_from_arguments(args)


COMMAND: Final = Command(
    name="fake-server",
    help="serve a fake Cronofy on loopback (needs uvicorn: the 'testing' extra)",
    description="Serve a fake Cronofy for manual tests and demos.",
    add_arguments=add_arguments,
    run=_run,
)
