"""Reading the batch command's input: CSV with a header row, or JSON Lines, in UTF-8."""

from __future__ import annotations

import csv
import difflib
import itertools
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Final

import attrs

from .._errors import CronofyError
from .._payload import Event, GroupRule, Host, NewSchedulerRequest, Recipient
from .._scheduling_requests import NewSchedulingRequest
from .._selection_rules import SelectionRule
from ._key import SCHEDULER_REQUEST, SCHEDULING_REQUEST, invite_key

__all__ = [
    "COLUMNS",
    "Defaults",
    "InputError",
    "Invite",
    "Row",
    "RowError",
    "Survey",
    "check_columns",
    "check_kind",
    "column_name",
    "read_rows",
    "survey",
]

# Accepted column names (after `column_name`) and the field each fills in.
COLUMNS: Final[Mapping[str, str]] = {
    "email": "email",
    "display_name": "display_name",
    "name": "display_name",
    "summary": "summary",
    "host": "host",
    "host_sub": "host",
    "group_rule": "group_rule",
    "scheduler_group_rule": "group_rule",
    "selection_rule": "selection_rule",
    "impersonate": "impersonate",
}
_HOST_FIELDS: Final = ("host", "group_rule", "selection_rule", "impersonate")
# The field that names a rule picking each host, per kind, and the option that sets it.
_RULE: Final[Mapping[str, tuple[str, str]]] = {
    SCHEDULER_REQUEST: ("group_rule", "--group-rule ID"),
    SCHEDULING_REQUEST: ("selection_rule", "--selection-rule SUB"),
}
_BOM: Final = b"\xef\xbb\xbf"


class InputError(ValueError):
    """The input cannot be used at all; the message is one line, naming the file."""


def column_name(name: str) -> str:
    """A column name as matched: case, surrounding spaces, inner spaces and hyphens ignored."""
    return "_".join(name.strip().lower().replace("-", " ").split())


@attrs.frozen(kw_only=True)
class Defaults:
    """What applies to every row that does not say otherwise."""

    summary: str | None = None
    host: str | None = None
    group_rule: str | None = None
    selection_rule: str | None = None
    impersonate: str | None = None
    data_center: str = "us"
    """Where every row is sent (part of each row's key)."""
    kind: str = SCHEDULER_REQUEST
    """What every row creates (part of each row's key)."""

    @property
    def has_host(self) -> bool:
        """Whether the command line names a host in one of the three ways."""
        return any((self.host, self.group_rule, self.selection_rule, self.impersonate))


@attrs.frozen(kw_only=True)
class Invite:
    """What one row asks for, defaults applied: the fields its key and its records carry."""

    kind: str
    data_center: str
    email: str | None
    display_name: str | None = None
    summary: str | None = None
    host: str | None = None
    group_rule: str | None = None
    selection_rule: str | None = None
    impersonate: str | None = None

    @property
    def key(self) -> str:
        """The row's resume key (see `invite_key`): the display name is not part of it."""
        return invite_key(
            {
                "kind": self.kind,
                "data_center": self.data_center,
                "email": self.email,
                "host": self.host,
                "group_rule": self.group_rule,
                "selection_rule": self.selection_rule,
                "impersonate": self.impersonate,
                "summary": self.summary,
            }
        )


@attrs.frozen(kw_only=True)
class Row:
    """One good input row: where it is, what it asks for, and the request that does it."""

    line: int
    """Its line number in the input file, from 1 (the header of a CSV is line 1)."""
    invite: Invite
    request: NewSchedulerRequest | NewSchedulingRequest
    """What is sent: a scheduler request, or with ``--scheduling`` a scheduling request."""
    key: str


@attrs.frozen(kw_only=True)
class RowError:
    """One bad input row, with its line number, what it says, and what is wrong."""

    line: int
    invite: Invite
    message: str


@attrs.frozen(kw_only=True)
class Survey:
    """A first read of the whole input, before anything is sent."""

    path: Path
    jsonl: bool
    rows: int
    """Rows to process: CSV records after the header, non-blank JSONL lines."""
    columns: tuple[str, ...]
    """Column names as written: the CSV header, or every key some JSONL object has."""


def _text_lines(path: Path) -> Iterator[str]:
    """The file's lines as text; a byte that is not UTF-8 stops it with the line it is on."""
    try:
        with path.open("rb") as stream:
            for number, raw in enumerate(stream, start=1):
                try:
                    yield (raw.removeprefix(_BOM) if number == 1 else raw).decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise InputError(
                        f"{path}: line {number} is not UTF-8 text (byte "
                        f"0x{raw[exc.start]:02x}); save the file as UTF-8 (in Excel: "
                        "'CSV UTF-8') and run again"
                    ) from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read it: {exc.strerror or exc}") from None


def _is_jsonl(path: Path) -> bool:
    """JSON Lines by extension, else by whether the first character opens an object."""
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return True
    if suffix == ".csv":
        return False
    for line in _text_lines(path):
        if line.strip():
            return line.lstrip().startswith("{")
    return False


def _records(path: Path, jsonl: bool) -> Iterator[tuple[int, dict[str, str] | str]]:
    """Yield ``(line, fields)``, or ``(line, problem)`` for a line that cannot be read."""
    lines = _text_lines(path)
    if jsonl:
        for number, text in enumerate(lines, start=1):
            if not text.strip():
                continue
            try:
                data = json.loads(text.rstrip("\r\n"))  # so the column is the line's own
            except json.JSONDecodeError as exc:
                # Named by its input line once; the decoder's own "line 1 column 5" is noise.
                yield number, f"not valid JSON ({exc.msg} at column {exc.colno})"
                continue
            if not isinstance(data, dict):
                yield number, "not a JSON object: each line must be one {...}"
                continue
            yield number, {str(k): "" if v is None else str(v) for k, v in data.items()}
        return
    skipped, lines = _after_blank_lines(lines)
    reader = csv.reader(lines)
    try:
        header = next(reader, [])
        while True:
            # A record is named by the line it starts on: a quoted value may span lines.
            line = reader.line_num + skipped + 1
            values = next(reader, None)
            if values is None:
                break
            if not any(value.strip() for value in values):
                continue  # a blank line, or a row of nothing but commas
            if any(value.strip() for value in values[len(header) :]):
                # DictReader would file the overflow under None, and a name like Smith, John
                # would lose " John": the row is refused instead, and nothing is guessed.
                yield (
                    line,
                    (
                        f"{len(values)} fields, but the header has {len(header)} columns: put a "
                        'value that holds a comma in double quotes ("Smith, John")'
                    ),
                )
                continue
            yield line, dict(zip(header, values, strict=False))
    except csv.Error as exc:
        raise InputError(
            f"{path}: line {reader.line_num + skipped}: not valid CSV: {exc}"
        ) from None


def _after_blank_lines(lines: Iterator[str]) -> tuple[int, Iterator[str]]:
    """The number of blank lines before the header (its first line with text), and the rest."""
    skipped = 0
    for line in lines:
        if line.strip():
            return skipped, itertools.chain([line], lines)
        skipped += 1
    return skipped, iter(())


def survey(path: Path) -> Survey:
    """Read the whole input once: refuse one that cannot be used, count its rows."""
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not an input file")
    if not path.exists():
        raise InputError(f"{path}: no such file")
    jsonl = _is_jsonl(path)
    rows = 0
    columns: dict[str, None] = {}
    if not jsonl:
        header = next(csv.reader(_after_blank_lines(_text_lines(path))[1]), [])
        columns = dict.fromkeys(name for name in header if name.strip())
    for _, fields in _records(path, jsonl):
        rows += 1
        if jsonl and not isinstance(fields, str):
            columns.update(dict.fromkeys(name for name in fields if name.strip()))
    return Survey(path=path, jsonl=jsonl, rows=rows, columns=tuple(columns))


def check_kind(defaults: Defaults) -> None:
    """
    Refuse options that name a host the way the other kind of request does.

    A scheduler group rule (``--group-rule``) means nothing to a scheduling request, and a
    selection rule (``--selection-rule``) nothing to a scheduler request.
    """
    if defaults.kind == SCHEDULING_REQUEST and defaults.group_rule:
        raise InputError(
            "--group-rule names a scheduler group rule, which scheduling requests "
            "(--scheduling) do not take: give --selection-rule SUB, --host SUB or "
            "--impersonate SUB"
        )
    if defaults.kind != SCHEDULING_REQUEST and defaults.selection_rule:
        raise InputError(
            "--selection-rule is for scheduling requests: add --scheduling "
            "(scheduler requests take --group-rule ID)"
        )


def _other_kinds_column(found: Survey, names: Mapping[str, str], kind: str) -> None:
    """Refuse a column that names a host the way the other kind of request does."""
    column = "key" if found.jsonl else "column"
    for name, written in names.items():
        field = COLUMNS.get(name)
        if kind == SCHEDULING_REQUEST and field == "group_rule":
            raise InputError(
                f"{found.path}: the '{written}' {column} names scheduler group rules, which "
                "scheduling requests (--scheduling) do not take: name a selection rule "
                f"(sel_...) in a 'selection_rule' {column} instead, or remove the {column}"
            )
        if kind != SCHEDULING_REQUEST and field == "selection_rule":
            raise InputError(
                f"{found.path}: the '{written}' {column} is for scheduling requests: add "
                f"--scheduling, or remove the {column}"
            )


def check_columns(found: Survey, defaults: Defaults) -> list[str]:
    """
    Refuse an input no row of which could be sent; return notes on columns it ignores.

    Refused: no email column; a column that is a near miss of a known one (``sumary``); a
    column that names a host the way the other kind of request does (``group_rule`` with
    ``--scheduling``, ``selection_rule`` without); no summary and no host anywhere (neither a
    column nor an option).
    """

    def lacks(what: str, article: str = "a") -> str:
        if found.jsonl:
            return f"{found.path}: no line has {article} {what} key"
        return f"{found.path}: the header row has no {what} column"

    names = {column_name(name): name for name in found.columns}
    given = {COLUMNS[name] for name in names if name in COLUMNS}
    unknown = [name for name in names if name not in COLUMNS]
    # A near miss only of a field nothing else fills: "email2" beside "email" is just ignored.
    missing = [name for name, field in COLUMNS.items() if field not in given]
    near = {
        names[name]: match[0]
        for name in unknown
        if (match := difflib.get_close_matches(name, missing, n=1, cutoff=0.8))
    }
    if near:
        guesses = "; ".join(f"'{wrong}' (did you mean '{right}'?)" for wrong, right in near.items())
        raise InputError(f"{found.path}: unknown column {guesses}: rename it and run again")
    if "email" not in names:
        written = ", ".join(found.columns) or "none"
        hint = "" if found.jsonl else "; the first line must name the columns, as in email,name"
        raise InputError(lacks("'email'", "an") + f" (found: {written}){hint}")
    _other_kinds_column(found, names, defaults.kind)
    if "summary" not in given and defaults.summary is None:
        raise InputError(lacks("'summary'") + ", and no --summary TEXT was given")
    if not defaults.has_host and not given & set(_HOST_FIELDS):
        rule, option = _RULE[defaults.kind]
        raise InputError(
            f"{lacks(f'host, {rule} or impersonate')}, and none of --host SUB, "
            f"{option} or --impersonate SUB was given: say who hosts the meetings"
        )
    if unknown:
        ignored = ", ".join(names[name] for name in unknown)
        return [f"{found.path}: ignoring columns this command does not use: {ignored}"]
    return []


def _values(fields: Mapping[str, str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for name, value in fields.items():
        target = COLUMNS.get(column_name(name))
        if target and value.strip():
            values[target] = value.strip()
    return values


def _invite(values: Mapping[str, str], defaults: Defaults) -> Invite:
    hosts = {name: values.get(name) for name in _HOST_FIELDS}
    if not any(hosts.values()):
        hosts = {name: getattr(defaults, name) for name in _HOST_FIELDS}
    return Invite(
        kind=defaults.kind,
        data_center=defaults.data_center,
        email=values.get("email"),
        display_name=values.get("display_name"),
        summary=values.get("summary", defaults.summary),
        **hosts,
    )


def _request(invite: Invite) -> NewSchedulerRequest | NewSchedulingRequest:
    if invite.summary is None:
        raise ValueError("no summary: give a summary column or --summary")
    rule, option = _RULE[invite.kind]
    if not any((invite.host, getattr(invite, rule), invite.impersonate)):
        raise ValueError(
            f"no host: give a host, {rule} or impersonate column, "
            f"or --host, {option.split()[0]} or --impersonate"
        )
    if invite.kind == SCHEDULING_REQUEST:
        return _scheduling_request(invite, invite.summary)
    return NewSchedulerRequest(
        host=Host(sub=invite.host) if invite.host else None,
        scheduler_group_rule=GroupRule(id=invite.group_rule) if invite.group_rule else None,
        recipients=[Recipient(email=invite.email or "", display_name=invite.display_name)],
        event=Event(summary=invite.summary),
    )


def _scheduling_request(invite: Invite, summary: str) -> NewSchedulingRequest:
    if invite.host and invite.selection_rule:
        raise ValueError("give a host or a selection_rule, not both: they both pick who hosts")
    return NewSchedulingRequest(
        host=Host(sub=invite.host) if invite.host else None,
        host_group=SelectionRule(sub=invite.selection_rule) if invite.selection_rule else None,
        # The recipient picks the time, as in Cronofy's documented example.
        recipients=[
            Recipient(
                email=invite.email or "", display_name=invite.display_name, slot_selector=True
            )
        ],
        event=Event(summary=summary),
    )


def read_rows(found: Survey, defaults: Defaults) -> Iterator[Row | RowError]:
    """Each row of the input as a `Row` to send or a `RowError` to report, lazily."""
    for line, fields in _records(found.path, found.jsonl):
        if isinstance(fields, str):
            blank = Invite(kind=defaults.kind, data_center=defaults.data_center, email=None)
            yield RowError(line=line, invite=blank, message=fields)
            continue
        invite = _invite(_values(fields), defaults)
        try:
            request = _request(invite)
        except (CronofyError, ValueError) as exc:
            yield RowError(line=line, invite=invite, message=str(exc))
            continue
        yield Row(line=line, invite=invite, request=request, key=invite.key)
