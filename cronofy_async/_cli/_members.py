"""``cronofy-async members``: who can host (the Organizational Unit's members or resources)."""

from __future__ import annotations

import argparse
import json
from typing import IO, Any

from .._errors import APIError, CronofyError
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

__all__ = ["COMMAND", "add_arguments", "run_members"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the members command's options to `parser`."""
    parser.add_argument(
        "--resources", action="store_true", help="list the resources (rooms...) instead"
    )
    add_connection_arguments(parser)
    parser.set_defaults(run=run_members)


def _enabled(value: bool | None) -> str:
    return "-" if value is None else "enabled" if value else "disabled"


async def run_members(
    args: argparse.Namespace,
    *,
    secret: str | None = None,
    out: IO[str] | None = None,
    err: IO[str] | None = None,
) -> int:
    """
    List every member (or resource) over every page: a table, or JSON Lines with ``--json``.

    Exit status 0 when the whole list was read, 1 when a page could not be (what came before
    is printed), 2 when the command could not start.
    """
    out = out if out is not None else _stdout()
    err = err if err is not None else _stderr()
    try:
        api = open_api(args, secret=secret)
    except (CronofyError, ValueError, OSError) as exc:
        err.write(f"cronofy-async members: {scrub(str(exc), args)}\n")
        return EXIT_USAGE
    records: list[dict[str, Any]] = []
    status = EXIT_OK
    async with api:
        try:
            if args.resources:
                async for resource in api.iter_organizational_unit_resources():
                    records.append(
                        {
                            "sub": resource.sub,
                            "email": resource.email,
                            "name": resource.name,
                            "scheduler_enabled": resource.scheduler_enabled,
                        }
                    )
            else:
                async for member in api.iter_organizational_unit_members():
                    records.append(
                        {
                            "sub": member.sub,
                            "email": member.email,
                            "roles": list(member.roles),
                            "scheduler_enabled": member.scheduler_enabled,
                            "public_url": member.public_url,
                        }
                    )
        except APIError as exc:
            err.write(f"cronofy-async members: {describe(exc)}\n")
            status = EXIT_FAILED
    if args.json:
        for record in records:
            out.write(json.dumps(record) + "\n")
    elif args.resources:
        rows = [
            [r["sub"], r["email"] or "", r["name"] or "", _enabled(r["scheduler_enabled"])]
            for r in records
        ]
        write_table(out, ["SUB", "EMAIL", "NAME", "SCHEDULER"], rows)
    else:
        rows = [
            [
                r["sub"],
                r["email"] or "",
                ",".join(r["roles"]),
                _enabled(r["scheduler_enabled"]),
                r["public_url"] or "",
            ]
            for r in records
        ]
        write_table(out, ["SUB", "EMAIL", "ROLES", "SCHEDULER", "PUBLIC URL"], rows)
    out.flush()
    return status


COMMAND = Command(
    name="members",
    help="list the Organizational Unit's members (or --resources)",
    description=("List who can host, over every page: a table, or --json lines."),
    add_arguments=add_arguments,
    run=lambda args: run_async(run_members(args)),
)
