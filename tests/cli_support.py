"""Shared by the cronofy-async command's tests: inputs, runs (in process or not), results."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import attrs

from cronofy_async._cli import _parser
from cronofy_async._cli._batch_command import run_batch
from cronofy_async._cli._outcomes import ROW_OUTCOMES, SENDING
from cronofy_async._cli._results import FIELDS

SECRET = "sk_cli_test"
ROOT = Path(__file__).resolve().parent.parent


def write_csv(path: Path, rows: list[str], header: str = "email,display_name") -> Path:
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def people(count: int, start: int = 0) -> list[str]:
    return [f"person{i}@example.com,Person {i}" for i in range(start, start + count)]


def batch_args(*argv: str) -> argparse.Namespace:
    return _parser().parse_args(["batch", *argv])


def common(source: Path, output: Path, base_url: str, *more: str) -> list[str]:
    """The options these tests share: one host, one summary, the fake's URL, plain output."""
    options = ["-o", str(output), "--host", "acc_1", "--summary", "Hi", "--base-url", base_url]
    return [str(source), *options, "--plain", "--no-pacing", *more]


def records(path: Path) -> list[dict[str, Any]]:
    found = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    for record in found:
        assert tuple(record) == FIELDS  # every record has every field, in order
    return found


def final_states(path: Path) -> dict[int, str]:
    """The last word on each input line, write-ahead records included (one input only)."""
    states: dict[int, str] = {}
    for record in records(path):
        states[record["line"]] = record["outcome"]
    return states


def last_run(path: Path) -> list[dict[str, Any]]:
    """The records the last run wrote."""
    found = records(path)
    return [record for record in found if record["run"] == found[-1]["run"]]


def outcomes_of(found: list[dict[str, Any]]) -> dict[str, int]:
    """How many of `found` ended each way (write-ahead records left out)."""
    counts: dict[str, int] = {}
    for record in found:
        if record["outcome"] != SENDING:
            counts[record["outcome"]] = counts.get(record["outcome"], 0) + 1
    return counts


_TABLE_LINE = re.compile(r"^  (\w+)\s+.*?\s(\d+)$")


def summary_counts(out: str) -> dict[str, int]:
    """The summary table's counts, by outcome name; zeros left out."""
    counts = {}
    for line in out.splitlines():
        match = _TABLE_LINE.match(line)
        if match and match.group(1) in ROW_OUTCOMES and int(match.group(2)):
            counts[match.group(1)] = int(match.group(2))
    return counts


async def run(args: argparse.Namespace, *, secret: str = SECRET) -> tuple[int, str, str]:
    """The batch command in process."""
    out, err = io.StringIO(), io.StringIO()
    status = await run_batch(args, secret=secret, out=out, err=err)
    return status, out.getvalue(), err.getvalue()


@attrs.frozen
class Done:
    status: int
    out: str
    err: str


def cli_env(**more: str) -> dict[str, str]:
    """This tree first on the path (not an installed copy), the test secret, no stray config."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRONOFY_")}
    return {**env, "PYTHONPATH": str(ROOT), "CRONOFY_CLIENT_SECRET": SECRET, **more}


async def cli(*argv: str, env: dict[str, str] | None = None) -> Done:
    """``cronofy-async ARGV`` as a real subprocess; the event loop (and a fake on it) runs on."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cronofy_async._cli",
        *argv,
        env=cli_env() if env is None else env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return Done(process.returncode, out.decode(), err.decode())
