"""
The batch command's results file: JSON Lines, one line per event, appended and flushed.

A row gets a ``sending`` line the moment it is handed to the batch, before any request, then a
line with its outcome. Reading the file back gives each row's last word, so a re-run resumes:
a row whose last line is ``sending`` was cut off mid-flight (a crash, a kill) and may exist.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Any, Final

__all__ = ["SENDING", "ResultsFile", "load_states"]

SENDING: Final = "sending"


def load_states(path: Path) -> dict[int, str]:
    """Each input line's last recorded state, from a results file (empty if there is none)."""
    states: dict[int, str] = {}
    if not path.exists():
        return states
    with path.open(encoding="utf-8") as stream:
        for text in stream:
            try:
                record = json.loads(text)
                states[int(record["line"])] = str(record["outcome"])
            except (ValueError, KeyError, TypeError):
                continue  # a line torn by a crash mid-write: the row's earlier state stands
    return states


class ResultsFile:
    """Append-only writer; every record reaches the OS before the next request goes out."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stream: IO[str] | None = None

    def __enter__(self) -> ResultsFile:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._stream = self.path.open("a", encoding="utf-8")
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._stream is not None:
            self._stream.close()

    def write(self, record: dict[str, Any]) -> None:
        """Append one record and flush it."""
        assert self._stream is not None  # noqa: S101 - used inside its with block only
        self._stream.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._stream.flush()
