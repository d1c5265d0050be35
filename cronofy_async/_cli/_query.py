"""``cronofy-async query ID...``: what became of scheduling requests."""

from __future__ import annotations

import argparse
import json
from typing import IO, Any

from .._errors import APIError, CronofyError
from .._scheduling_models import SchedulingRequest
from .._scheduling_requests import MAX_QUERY_IDS, check_ids
from ._args import scrub
from ._command import Command, run_async
from ._connect import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    add_connection_arguments,
    describe,
    open_api,
)
from ._streams import stderr as _stderr
from ._streams import stdout as _stdout
from ._table import write_table

__all__ = ["COMMAND", "add_arguments", "run_query"]

NOT_FOUND = "not found"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the query command's options to `parser`."""
    parser.add_argument("ids", nargs="+", metavar="ID", help="scheduling request ids, srq_...")
    add_connection_arguments(parser)
    parser.set_defaults(run=run_query)


def _chunks(ids: list[str]) -> list[list[str]]:
    return [ids[i : i + MAX_QUERY_IDS] for i in range(0, len(ids), MAX_QUERY_IDS)]


def _record(request_id: str, found: SchedulingRequest | None, error: str | None) -> dict[str, Any]:
    if found is None:
        return {"scheduling_request_id": request_id, "error": error or NOT_FOUND}
    return {
        "scheduling_request_id": request_id,
        "slot_selection": found.slot_selection,
        "select_url": found.select_url,
        "dashboard_url": found.dashboard_url,
        "summary": found.summary,
    }


async def run_query(
    args: argparse.Namespace,
    *,
    secret: str | None = None,
    out: IO[str] | None = None,
    err: IO[str] | None = None,
) -> int:
    """
    Query every id (in chunks of `MAX_QUERY_IDS`); print one line per id, in order.

    Exit status 0 when Cronofy answered for every id, 1 when some id was not found or a query
    failed, 2 when the command could not start.
    """
    out = out if out is not None else _stdout()
    err = err if err is not None else _stderr()
    try:
        ids = list(dict.fromkeys(args.ids))
        chunks = _chunks(ids)
        for chunk in chunks:
            check_ids(chunk)
        api = open_api(args, secret=secret)
    except (CronofyError, ValueError, OSError) as exc:
        err.write(f"cronofy-async query: {scrub(str(exc), args)}\n")
        return EXIT_USAGE
    found: dict[str, SchedulingRequest] = {}
    error: str | None = None
    async with api:
        for chunk in chunks:
            try:
                for request in await api.query_scheduling_requests(chunk):
                    found[request.scheduling_request_id] = request
            except APIError as exc:
                # The rest would most likely fail the same way; say so per id, once.
                error = describe(exc)
                err.write(f"cronofy-async query: {error}\n")
                break
    records = [_record(i, found.get(i), None if i in found else error) for i in ids]
    if args.json:
        for record in records:
            out.write(json.dumps(record) + "\n")
    else:
        rows = [
            [
                r["scheduling_request_id"],
                r["error"] if "error" in r else r["slot_selection"] or "-",
                r.get("select_url") or "",
            ]
            for r in records
        ]
        write_table(out, ["ID", "SLOT SELECTION", "SELECT URL"], rows)
    out.flush()
    return EXIT_OK if len(found) == len(ids) else EXIT_FAILED


COMMAND = Command(
    name="query",
    help="what became of scheduling requests (did the recipient pick a time?)",
    description=(
        "Query scheduling requests by id. Exit status: 0 every id found, "
        "1 some id not found or a query failed, 2 could not start."
    ),
    add_arguments=add_arguments,
    run=lambda args: run_async(run_query(args)),
)
