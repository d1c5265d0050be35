"""Showing a batch's progress: a live rich bar on a terminal, plain periodic lines otherwise."""

from __future__ import annotations

import time
from collections import Counter
from typing import IO, Any, Protocol

from ._streams import stderr

__all__ = ["Progress", "make_progress"]


class Progress(Protocol):
    """What the batch command tells whoever watches it."""

    def start(self, total: int) -> None:
        """The batch starts with `total` rows to go."""

    def advance(self, outcome: str) -> None:
        """One more row ended with `outcome`."""

    def stop(self) -> None:
        """The batch is over."""


class PlainProgress:
    """A line every few seconds, for logs and pipes."""

    def __init__(self, stream: IO[str], every: float = 2.0) -> None:
        self._stream = stream
        self._every = every
        self._counts: Counter[str] = Counter()
        self._total = 0
        self._started = self._last = 0.0

    def start(self, total: int) -> None:
        self._total = total
        self._started = self._last = time.monotonic()

    def advance(self, outcome: str) -> None:
        self._counts[outcome] += 1
        now = time.monotonic()
        if now - self._last >= self._every:
            self._last = now
            self._line(now)

    def stop(self) -> None:
        self._line(time.monotonic())

    def _line(self, now: float) -> None:
        done = sum(self._counts.values())
        rate = done / max(now - self._started, 1e-9)
        counts = self._counts
        self._stream.write(
            f"progress: {done}/{self._total} rows, {rate:.1f}/s, created {counts['created']}, "
            f"failed {counts['failed']}, unknown {counts['unknown']}\n"
        )
        self._stream.flush()


class RichProgress:
    """A live bar: done/total, rate, created / failed / unknown, time left."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as Bar

        self._counts: Counter[str] = Counter()
        self._bar = Bar(
            TextColumn("[bold]invites"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:>6.1f}/s"),
            TextColumn(
                "[green]{task.fields[created]} created[/] [red]{task.fields[failed]} failed[/] "
                "[yellow]{task.fields[unknown]} unknown[/]"
            ),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
        )
        self._task: Any = None
        self._started = 0.0

    def start(self, total: int) -> None:
        self._started = time.monotonic()
        self._bar.start()
        self._task = self._bar.add_task(
            "batch", total=total, rate=0.0, created=0, failed=0, unknown=0
        )

    def advance(self, outcome: str) -> None:
        self._counts[outcome] += 1
        done = sum(self._counts.values())
        self._bar.update(
            self._task,
            advance=1,
            rate=done / max(time.monotonic() - self._started, 1e-9),
            created=self._counts["created"],
            failed=self._counts["failed"],
            unknown=self._counts["unknown"],
        )

    def stop(self) -> None:
        self._bar.stop()


def rich_available() -> bool:
    """Whether the 'cli' extra (rich) is installed."""
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    return True


def make_progress(stream: IO[str] | None = None, *, plain: bool = False) -> Progress:
    """A live bar on a terminal with rich installed, plain lines on `stream` otherwise."""
    stream = stream if stream is not None else stderr()
    if not plain and stream.isatty() and rich_available():
        return RichProgress()
    return PlainProgress(stream)
