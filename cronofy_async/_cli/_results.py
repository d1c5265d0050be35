"""
The batch command's results file: JSON Lines, one record per event, appended and flushed.

Every record has the same fields (`FIELDS`). A row that is sent gets a ``sending`` record the
moment its request leaves, then a record with its outcome. Rows are matched to earlier records
by their key (what the row asks for, see `invite_key`), never by line number, so a re-run
resumes correctly whatever was edited in the input in between.

One file holds one kind of request: the records of scheduler requests, or those of scheduling
requests (``--scheduling``). A run of the other kind is refused rather than keyed apart, since
everyone the file lists would be invited again, by the other kind, without a word.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Final

import attrs

from ._key import SCHEDULER_REQUEST, SCHEDULING_REQUEST
from ._outcomes import CREATED, FAILED, NOT_SENT, SENDING, UNKNOWN
from ._rows import Invite

__all__ = ["FIELDS", "History", "ResultsError", "ResultsFile", "load_history", "make_record"]

FIELDS: Final = (
    "line",
    "outcome",
    "key",
    "run",
    "email",
    "display_name",
    "summary",
    "host",
    "group_rule",
    "selection_rule",
    "impersonate",
    "data_center",
    "kind",
    "scheduler_request_id",
    "select_url",
    "attempts",
    "error",
    "duplicate_of",
)
"""
Every record's fields, in order; those that do not apply are null.

The key comes early: should a kill cut a record short, what it was about is likely still there.
``scheduler_request_id`` holds the id of the created request of either kind (``kind`` says
which), so that filters written for scheduler requests keep working.
"""
_TORN_KEY: Final = re.compile(rb'"key": "([0-9a-f]{64})"')

# Outcomes that close a request written ahead as `sending`; the others never open one.
_SETTLED: Final = frozenset({CREATED, FAILED, UNKNOWN, NOT_SENT})
# Outcomes that say nothing about whether an invite exists: what this run did with a row.
_NOTES: Final = frozenset({"created_before", "unknown_before", "duplicate", "invalid"})


class ResultsError(ValueError):
    """The results file cannot be used; the message is one line and says what to do."""


def make_record(
    *,
    run: str,
    line: int,
    outcome: str,
    invite: Invite,
    key: str | None,
    **more: Any,
) -> dict[str, Any]:
    """A record with every field of `FIELDS`, in order; `more` fills the last ones."""
    unknown = set(more) - set(FIELDS)
    if unknown:
        raise TypeError(f"not record fields: {', '.join(sorted(unknown))}")
    record: dict[str, Any] = dict.fromkeys(FIELDS)
    record.update(
        run=run,
        line=line,
        outcome=outcome,
        key=key,
        attempts=0,
        **attrs.asdict(invite),
    )
    record.update(more)
    return record


@attrs.define
class _Past:
    """What the records say about one key, folded in file order."""

    created: dict[str, Any] | None = None
    maybe: bool = False
    """Some request for it may have been processed: an unknown outcome or a cut-off send."""
    open: bool = False
    """A ``sending`` record not yet followed by the outcome of that send."""


@attrs.define
class History:
    """Each key's state after every earlier run, read from the results file."""

    _keys: dict[str, _Past] = attrs.field(factory=dict)
    unreadable: list[int] = attrs.field(factory=list)
    """Line numbers of the file that are not JSON records (a write cut off by a kill)."""

    def created(self, key: str) -> dict[str, Any] | None:
        """The record of the earlier run that created this key's invite, if one did."""
        past = self._keys.get(key)
        return past.created if past else None

    def may_exist(self, key: str) -> bool:
        """Whether a request for this key may have been processed, with no proof either way."""
        past = self._keys.get(key)
        return past is not None and past.created is None and (past.maybe or past.open)

    def add(self, record: dict[str, Any]) -> None:
        """Fold one more record into the state of its key."""
        key, outcome = record.get("key"), record.get("outcome")
        if not isinstance(key, str) or outcome in _NOTES:
            return
        past = self._keys.setdefault(key, _Past())
        if outcome == SENDING:
            past.maybe = past.maybe or past.open  # an earlier send that never told its outcome
            past.open = True
            return
        past.open = False
        if outcome == CREATED:
            past.created = past.created or record
        elif outcome not in _SETTLED or outcome == UNKNOWN:
            past.maybe = True  # unknown, or an outcome this version does not know: be careful


def _refuse_old(path: Path, number: int) -> ResultsError:
    return ResultsError(
        f"{path}: line {number} is a record of an earlier cronofy-async, which matched rows by "
        "line number: this version matches them by what they ask for and cannot read it. Give a "
        "new --output file, and first remove from the input the people it lists as created or "
        'possibly created, listed by: jq -r \'select(.outcome == "created" or .outcome == '
        f'"unknown" or .outcome == "sending") | .email\' {path}'
    )


_KIND_NAMES: Final = {
    SCHEDULER_REQUEST: "scheduler requests",
    SCHEDULING_REQUEST: "scheduling requests (--scheduling)",
}


def _refuse_kind(path: Path, number: int, theirs: object, ours: str) -> ResultsError:
    their_name = _KIND_NAMES.get(str(theirs), f"{theirs!r} requests")
    return ResultsError(
        f"{path}: line {number} is a record of {their_name}, and this run creates "
        f"{_KIND_NAMES[ours]}: one results file holds one kind, or everyone it lists would be "
        "invited again by the other kind. Give a new --output file, and first remove from "
        "the input the people it lists as invited, listed by: jq -r 'select(.outcome == "
        f'"created" or .outcome == "unknown" or .outcome == "sending") | .email\' {path}'
    )


def load_history(path: Path, kind: str | None = None) -> History:
    """
    Every earlier run's records in the results file (empty if there is none).

    With `kind`, a record of another kind of request is refused (`ResultsError`): a record
    without one is of the only kind there was, `SCHEDULER_REQUEST`.
    """
    history = History()
    if not path.exists():
        return history
    with path.open("rb") as stream:
        for number, raw in enumerate(stream, start=1):
            try:
                record = json.loads(raw)
            except ValueError:  # UnicodeDecodeError included
                record = None
            if not isinstance(record, dict):
                if raw.strip():
                    history.unreadable.append(number)
                    torn = _TORN_KEY.search(raw)
                    if torn:  # whatever it said, a request for that key may have left
                        history.add({"key": torn.group(1).decode(), "outcome": UNKNOWN})
                continue
            if "outcome" not in record:
                raise ResultsError(
                    f"{path}: line {number} is not a record of cronofy-async batch: is --output "
                    "the right file? Give a new file name, or the results file of earlier runs"
                )
            if "key" not in record:
                raise _refuse_old(path, number)
            theirs = record.get("kind") or SCHEDULER_REQUEST
            if kind is not None and theirs != kind:
                raise _refuse_kind(path, number, theirs, kind)
            history.add(record)
    return history


def _ends_mid_line(path: Path) -> bool:
    with path.open("rb") as stream:
        if stream.seek(0, 2) == 0:
            return False
        stream.seek(-1, 2)
        return stream.read(1) != b"\n"


@contextlib.contextmanager
def _exclusive(stream: IO[str], path: Path) -> Iterator[None]:
    """Hold the file for this run alone: two runs on one file would both send a row."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no advisory locks to take
        yield
        return
    try:
        fcntl.flock(stream.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise ResultsError(
            f"{path}: another cronofy-async batch is using this results file; wait for it to "
            "finish (two runs at once would invite the same people twice)"
        ) from None
    except OSError:  # pragma: no cover - a file system without locks (some network mounts)
        pass
    yield


class ResultsFile:
    """Append-only writer; every record reaches the OS before the next request goes out."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stream: IO[str] | None = None
        self._stack = contextlib.ExitStack()
        self.failed: OSError | None = None
        """The first error writing the file (a full disk): later records may be lost too."""

    def open(self, kind: str | None = None) -> History:
        """
        Open the file for this run alone and read what earlier runs recorded in it.

        With `kind`, refused (`ResultsError`, the file left as it was) if earlier runs
        recorded another kind of request in it.
        """
        if self.path.is_dir():
            raise ResultsError(f"{self.path}: is a directory; give --output a file name")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            stream = self._stack.enter_context(self.path.open("a", encoding="utf-8"))
        except OSError as exc:
            raise ResultsError(f"{self.path}: cannot write it: {exc.strerror or exc}") from None
        try:
            self._stack.enter_context(_exclusive(stream, self.path))
            history = load_history(self.path, kind)
            if _ends_mid_line(self.path):
                stream.write("\n")  # the last record was cut off: ours must start a line
        except BaseException:
            self._stack.close()
            raise
        self._stream = stream
        return history

    def close(self) -> None:
        """Close the file, releasing it for the next run."""
        self._stream = None
        try:
            self._stack.close()
        except OSError:
            # What a failed write left in the buffer fails again as it is flushed on close: it
            # was reported once, with what to do, and the file is closed (and released) anyway.
            if self.failed is None:
                raise

    def write(self, record: dict[str, Any]) -> None:
        """Append one record and flush it."""
        assert self._stream is not None  # noqa: S101 - between open and close only
        try:
            line = json.dumps(record, ensure_ascii=False)
            line.encode("utf-8")
        except UnicodeEncodeError:  # half a surrogate pair from the input: kept, as an escape
            line = json.dumps(record)
        try:
            self._stream.write(line + "\n")
            self._stream.flush()
        except OSError as exc:
            self.failed = self.failed or exc
            raise
