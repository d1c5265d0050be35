"""``cronofy-async cancel ID...``: withdraw scheduling requests; safe to run again."""

from __future__ import annotations

import argparse
import json
from typing import IO

from .._errors import (
    APIError,
    AuthenticationError,
    CronofyError,
    NotFoundError,
    PaymentRequiredError,
    PermissionDeniedError,
)
from .._scheduling_requests import cancel_operation
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

__all__ = ["COMMAND", "add_arguments", "run_cancel"]

# The same credentials will be refused for every id: stop instead of asking again.
_FATAL = (AuthenticationError, PaymentRequiredError, PermissionDeniedError)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the cancel command's options to `parser`."""
    parser.add_argument("ids", nargs="+", metavar="ID", help="scheduling request ids, srq_...")
    parser.add_argument("--impersonate", metavar="SUB", help="cancel as this account")
    add_connection_arguments(parser)
    parser.set_defaults(run=run_cancel)


async def run_cancel(
    args: argparse.Namespace,
    *,
    secret: str | None = None,
    out: IO[str] | None = None,
    err: IO[str] | None = None,
) -> int:
    """
    Cancel every id, one after the other; print one line per id with its outcome.

    Outcomes: ``cancelled``, ``not_found``, ``failed`` (not cancelled), ``unknown`` (may be
    cancelled: run again, cancelling twice is safe) and ``not_sent`` (after a 401, 402 or 403).
    Exit status 0 when every id is cancelled, 1 otherwise, 2 when the command could not start.
    """
    out = out if out is not None else _stdout()
    err = err if err is not None else _stderr()
    try:
        ids = list(dict.fromkeys(args.ids))
        for request_id in ids:
            cancel_operation(request_id)  # refuse a malformed id before sending anything
        api = open_api(args, secret=secret)
        view = api.impersonate(args.impersonate) if args.impersonate else api
    except (CronofyError, ValueError, OSError) as exc:
        err.write(f"cronofy-async cancel: {scrub(str(exc), args)}\n")
        return EXIT_USAGE
    results: list[tuple[str, str, str | None]] = []
    stopped: APIError | None = None
    async with api:
        for request_id in ids:
            if stopped is not None:
                results.append((request_id, "not_sent", describe(stopped)))
                continue
            try:
                await view.cancel_scheduling_request(request_id)
            except NotFoundError as exc:
                results.append((request_id, "not_found", describe(exc)))
            except APIError as exc:
                outcome = "unknown" if exc.outcome_unknown else "failed"
                results.append((request_id, outcome, describe(exc)))
                if isinstance(exc, _FATAL):
                    stopped = exc
            else:
                results.append((request_id, "cancelled", None))
    if args.json:
        for request_id, outcome, error in results:
            record = {"scheduling_request_id": request_id, "outcome": outcome, "error": error}
            out.write(json.dumps(record) + "\n")
    else:
        rows = [[i, outcome, error or ""] for i, outcome, error in results]
        write_table(out, ["ID", "OUTCOME", "ERROR"], rows)
    out.flush()
    if any(outcome in ("unknown", "failed") for _, outcome, _ in results):
        err.write("cronofy-async cancel: some ids are not cancelled; running again is safe\n")
    cancelled = all(outcome == "cancelled" for _, outcome, _ in results)
    return EXIT_OK if cancelled else EXIT_FAILED


COMMAND = Command(
    name="cancel",
    help="cancel scheduling requests (safe to run again)",
    description=(
        "Cancel scheduling requests by id; cancelling twice is not an error. "
        "Exit status: 0 every id cancelled, 1 some id not, 2 could not start."
    ),
    add_arguments=add_arguments,
    run=lambda args: run_async(run_cancel(args)),
)
