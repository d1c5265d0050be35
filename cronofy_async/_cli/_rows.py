"""Reading the batch command's input: CSV with a header row, or JSON Lines."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Final

import attrs

from .._errors import CronofyError
from .._payload import Event, GroupRule, Host, NewSchedulerRequest, Recipient

__all__ = ["COLUMNS", "Defaults", "Row", "RowError", "count_rows", "read_rows"]

# Accepted column names (case-insensitive) and what each fills in.
COLUMNS: Final[Mapping[str, str]] = {
    "email": "email",
    "display_name": "display_name",
    "name": "display_name",
    "summary": "summary",
    "host": "host",
    "host_sub": "host",
    "group_rule": "group_rule",
    "scheduler_group_rule": "group_rule",
    "impersonate": "impersonate",
}


@attrs.frozen(kw_only=True)
class Defaults:
    """What the command line says for every row that does not say otherwise."""

    summary: str | None = None
    host: str | None = None
    group_rule: str | None = None
    impersonate: str | None = None


@attrs.frozen(kw_only=True)
class Row:
    """One good input row: where it is, who it invites and as whom."""

    line: int
    """Its line number in the input file, from 1 (the header of a CSV is line 1)."""
    email: str
    request: NewSchedulerRequest
    impersonate: str | None


@attrs.frozen(kw_only=True)
class RowError:
    """One bad input row, with its line number and what is wrong."""

    line: int
    email: str | None
    message: str


def is_jsonl(path: Path) -> bool:
    """JSON Lines by extension, else by whether the first character opens an object."""
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        return True
    if path.suffix.lower() == ".csv":
        return False
    with path.open(encoding="utf-8-sig") as stream:
        for line in stream:
            if line.strip():
                return line.lstrip().startswith("{")
    return False


def _records(path: Path) -> Iterator[tuple[int, dict[str, str] | str]]:
    """Yield ``(line, fields)``, or ``(line, problem)`` for a line that cannot be read."""
    with path.open(encoding="utf-8-sig", newline="") as stream:
        if is_jsonl(path):
            for number, text in enumerate(stream, start=1):
                if not text.strip():
                    continue
                try:
                    data = json.loads(text)
                except ValueError as exc:
                    yield number, f"not valid JSON: {exc}"
                    continue
                if not isinstance(data, dict):
                    yield number, "each line must be a JSON object"
                    continue
                yield number, {str(k): "" if v is None else str(v) for k, v in data.items()}
            return
        reader = csv.DictReader(stream)
        for fields in reader:
            if not any((value or "").strip() for value in fields.values()):
                continue
            yield reader.line_num, {k or "": v or "" for k, v in fields.items() if k is not None}


def _build(fields: Mapping[str, str], defaults: Defaults) -> tuple[NewSchedulerRequest, str | None]:
    values: dict[str, str] = {}
    for name, value in fields.items():
        target = COLUMNS.get(name.strip().lower())
        if target and value.strip():
            values[target] = value.strip()
    summary = values.get("summary", defaults.summary)
    if summary is None:
        raise ValueError("no summary: give a summary column or --summary")
    host = values.get("host")
    rule = values.get("group_rule")
    impersonate = values.get("impersonate")
    if host is None and rule is None and impersonate is None:
        host, rule, impersonate = defaults.host, defaults.group_rule, defaults.impersonate
    request = NewSchedulerRequest(
        host=Host(sub=host) if host else None,
        scheduler_group_rule=GroupRule(id=rule) if rule else None,
        recipients=[
            Recipient(email=values.get("email", ""), display_name=values.get("display_name"))
        ],
        event=Event(summary=summary),
    )
    if request.host is None and request.scheduler_group_rule is None and impersonate is None:
        raise ValueError(
            "no host: give a host, group_rule or impersonate column, "
            "or --host, --group-rule or --impersonate"
        )
    return request, impersonate


def read_rows(path: Path, defaults: Defaults) -> Iterator[Row | RowError]:
    """Each row of the input as a `Row` to send or a `RowError` to report, lazily."""
    for line, fields in _records(path):
        if isinstance(fields, str):
            yield RowError(line=line, email=None, message=fields)
            continue
        email = fields.get("email") or next(
            (v for k, v in fields.items() if k.strip().lower() == "email"), None
        )
        try:
            request, impersonate = _build(fields, defaults)
        except (CronofyError, ValueError) as exc:
            yield RowError(line=line, email=email, message=str(exc))
            continue
        yield Row(
            line=line,
            email=request.recipients[0].email,
            request=request,
            impersonate=impersonate,
        )


def count_rows(path: Path) -> int:
    """How many rows the input holds (for the progress bar), without building them."""
    return sum(1 for _ in _records(path))


def check_header(path: Path) -> None:
    """Refuse a CSV input without an email column, before anything is sent."""
    if is_jsonl(path):
        return
    with path.open(encoding="utf-8-sig", newline="") as stream:
        header = next(csv.reader(stream), [])
    names = {name.strip().lower() for name in header}
    if "email" not in names:
        raise ValueError(
            f"{path}: the header row has no 'email' column (found: {', '.join(header) or 'none'}); "
            f"known columns: {', '.join(sorted(COLUMNS))}"
        )
