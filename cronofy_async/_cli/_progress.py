"""
Showing a batch's progress: a live rich bar on a terminal, plain periodic lines otherwise.

Both read the run's `Tally`, the same numbers the summary and the results file give. The rate
counts only the rows whose request left in this run, not the rows a resumed run skips.
"""

from __future__ import annotations

import time
from typing import IO, Any, Protocol

from ._outcomes import CREATED, FAILED, ROW_OUTCOMES, UNKNOWN, Tally
from ._streams import stderr

__all__ = ["PlainProgress", "Progress", "RichProgress", "make_progress"]


class Progress(Protocol):
    """What the batch command tells whoever watches it."""

    def start(self, tally: Tally) -> None:
        """The batch starts; `tally` is updated in place as rows end."""

    def update(self) -> None:
        """The tally changed."""

    def stop(self) -> None:
        """The batch is over."""

    def note(self, text: str) -> None:
        """Show one line of news (a bad row, a stop) without breaking the display."""


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "-:--:--"
    whole = int(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02}:{whole % 60:02}"


class _Timing:
    def __init__(self) -> None:
        self.tally = Tally(total=0)
        self.started = 0.0

    def begin(self, tally: Tally) -> None:
        self.tally = tally
        self.started = time.monotonic()

    def rate(self, now: float) -> float:
        """Requests sent per second in this run."""
        return self.tally.sent / max(now - self.started, 1e-9)

    def eta(self, now: float) -> float | None:
        rate = self.rate(now)
        return max(0, self.tally.total - self.tally.done) / rate if rate > 0 else None


class PlainProgress:
    """A line every few seconds, for logs and pipes."""

    def __init__(self, stream: IO[str], every: float = 2.0) -> None:
        self._stream = stream
        self._every = every
        self._timing = _Timing()
        self._last = 0.0

    def start(self, tally: Tally) -> None:
        self._timing.begin(tally)
        self._last = self._timing.started

    def update(self) -> None:
        now = time.monotonic()
        if now - self._last >= self._every:
            self._last = now
            self._line(now)

    def stop(self) -> None:
        self._line(time.monotonic())

    def note(self, text: str) -> None:
        self._stream.write(f"{text}\n")
        self._stream.flush()

    def _line(self, now: float) -> None:
        tally = self._timing.tally
        counts = tally.counts
        # created, failed and unknown always; the rest when they happen, by the results' names.
        shown = [CREATED, FAILED, UNKNOWN]
        shown += [o for o in ROW_OUTCOMES if o not in shown and counts[o]]
        parts = ", ".join(f"{outcome} {counts[outcome]}" for outcome in shown)
        self._stream.write(
            f"progress: {tally.done}/{tally.total} rows, {self._timing.rate(now):.1f} sent/s, "
            f"{parts}\n"
        )
        self._stream.flush()


class RichProgress:
    """A live bar that fits 80 columns: rows done/total, bar, rate, created/failed/unknown, ETA."""

    def __init__(self, stream: IO[str]) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, TextColumn
        from rich.progress import Progress as Bar

        self._timing = _Timing()
        self._bar = Bar(
            TextColumn("{task.completed}/{task.total}"),
            BarColumn(bar_width=None),
            TextColumn("{task.fields[rate]:.0f}/s"),
            TextColumn(
                "[green]{task.fields[created]} created[/] [red]{task.fields[failed]} failed[/] "
                "[yellow]{task.fields[unknown]} unknown[/]"
            ),
            TextColumn("eta {task.fields[eta]}"),
            console=Console(file=stream),
            expand=True,
        )
        self._task: Any = None

    @property
    def bar(self) -> Any:
        """The rich ``Progress`` object (tests render it)."""
        return self._bar

    def start(self, tally: Tally) -> None:
        self._timing.begin(tally)
        self._bar.start()
        self._task = self._bar.add_task("batch", total=tally.total, **self._fields())

    def _fields(self) -> dict[str, Any]:
        now = time.monotonic()
        counts = self._timing.tally.counts
        return {
            "rate": self._timing.rate(now),
            "created": counts[CREATED],
            "failed": counts[FAILED],
            "unknown": counts[UNKNOWN],
            "eta": _clock(self._timing.eta(now)),
        }

    def update(self) -> None:
        self._bar.update(self._task, completed=self._timing.tally.done, **self._fields())

    def stop(self) -> None:
        self.update()
        self._bar.stop()

    def note(self, text: str) -> None:
        # Printed above the live bar, which is redrawn below it.
        self._bar.console.print(text, markup=False, highlight=False, soft_wrap=True)


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
        return RichProgress(stream)
    return PlainProgress(stream)
