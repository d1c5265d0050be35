"""
What became of a row: one vocabulary for the results file, the progress line and the summary.

The same name means the same thing in all three places, so their numbers can be compared.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Final

import attrs

__all__ = [
    "CREATED",
    "CREATED_BEFORE",
    "DONE",
    "DUPLICATE",
    "FAILED",
    "INVALID",
    "NOT_REACHED",
    "NOT_SENT",
    "ROW_OUTCOMES",
    "SENDING",
    "UNKNOWN",
    "UNKNOWN_BEFORE",
    "Tally",
]

CREATED: Final = "created"
FAILED: Final = "failed"
UNKNOWN: Final = "unknown"
NOT_SENT: Final = "not_sent"
INVALID: Final = "invalid"
DUPLICATE: Final = "duplicate"
CREATED_BEFORE: Final = "created_before"
UNKNOWN_BEFORE: Final = "unknown_before"
NOT_REACHED: Final = "not_reached"
SENDING: Final = "sending"
"""The write-ahead record: a row's request is about to leave. Not an outcome of its own."""

# Every way a row of one run can end, in the summary's order, with the summary's words.
ROW_OUTCOMES: Final[Mapping[str, str]] = {
    CREATED: "created now",
    CREATED_BEFORE: "skipped: created in an earlier run",
    DUPLICATE: "skipped: the same invite as an earlier row",
    UNKNOWN_BEFORE: "skipped: may exist from an earlier run",
    FAILED: "failed: not created",
    UNKNOWN: "unknown: may exist, check before re-sending",
    NOT_SENT: "not sent: the batch stopped first",
    INVALID: "invalid: bad row, not sent",
    # The labels fit the summary in 80 columns: 43 characters at most.
    NOT_REACHED: "not reached: never read (run ended first)",
}

DONE: Final = frozenset({CREATED, CREATED_BEFORE, DUPLICATE})
"""Outcomes after which the row's invite exists (a duplicate's is its first row's)."""


@attrs.define
class Tally:
    """One run's numbers, shared by the progress display, the summary and the exit status."""

    total: int
    """Rows in the input."""
    counts: Counter[str] = attrs.field(factory=Counter)
    """Rows ended so far, per outcome (`NOT_REACHED` only once the run is over)."""
    sent: int = 0
    """Rows whose request left in this run: what the rate counts."""

    @property
    def done(self) -> int:
        """Rows accounted for so far, whatever their outcome."""
        return sum(self.counts.values())

    def close(self) -> None:
        """Count the rows never read (the run was interrupted or stopped) as `NOT_REACHED`."""
        self.counts[NOT_REACHED] += max(0, self.total - self.done)

    @property
    def not_done(self) -> int:
        """Rows whose invite does not exist, or may not."""
        return sum(n for outcome, n in self.counts.items() if outcome not in DONE)
