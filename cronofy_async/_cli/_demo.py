"""``cronofy-async demo``: the real batch command against a fake Cronofy on loopback."""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import tempfile
from pathlib import Path
from typing import IO

from ._batch_command import parse_batch_arguments, run_batch
from ._command import EXIT_USAGE, Command, run_async
from ._extras import missing_extra
from ._streams import stderr as _stderr
from ._streams import stdout as _stdout

__all__ = ["COMMAND", "add_arguments", "run_demo"]

_FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Tim"]
_LAST = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson"]
DEMO_HOST = "acc_demo_host"
SAMPLE_NAME, RESULTS_NAME = "demo-recipients.csv", "demo-results.jsonl"


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1, not {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the demo's options to `parser`."""
    parser.add_argument("--rows", type=_positive, default=300, help="recipients to invite (300)")
    parser.add_argument(
        "--workdir", type=Path, help="keep the sample input and results here (default: a temp dir)"
    )
    parser.add_argument("--plain", action="store_true", help="periodic lines, no live bar")


def write_sample(path: Path, rows: int) -> None:
    """A CSV of `rows` made-up recipients, in a new file (never over an existing one)."""
    with path.open("x", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["email", "display_name"])
        for i in range(rows):
            first, last = _FIRST[i % len(_FIRST)], _LAST[(i // len(_FIRST)) % len(_LAST)]
            writer.writerow([f"{first}.{last}.{i}@example.com".lower(), f"{first} {last}"])


async def run_demo(args: argparse.Namespace, out: IO[str] | None = None) -> int:
    """Serve a fake Cronofy, write a sample input, and run the real batch command on it."""
    from ..testing import FakeCronofy, Faults

    out = out if out is not None else _stdout()
    missing = missing_extra("demo", "uvicorn", "testing")
    if missing is not None:
        _stderr().write(f"{missing}\n")
        return EXIT_USAGE
    with tempfile.TemporaryDirectory(prefix="cronofy-demo-") as temporary:
        workdir = args.workdir or Path(temporary)
        workdir.mkdir(parents=True, exist_ok=True)
        sample, results = workdir / SAMPLE_NAME, workdir / RESULTS_NAME
        # Names of its own, and nothing overwritten or deleted: a --workdir may hold a user's
        # real input and results, and an earlier demo's results would make this one resume.
        present = [path.name for path in (sample, results) if path.exists()]
        if present:
            _stderr().write(
                f"--workdir {workdir}: {present[0]} already exists (an earlier demo?); "
                "give another directory, or remove the demo's files from it\n"
            )
            return EXIT_USAGE
        write_sample(sample, args.rows)
        # Cronofy's own rate limits, and an occasional 429 to show a safe retry.
        fake = FakeCronofy(members=[DEMO_HOST], faults=Faults(seed=7, rate_limited=0.01))
        async with fake.serve() as base_url:
            argv = [str(sample), "--output", str(results), "--host", DEMO_HOST]
            argv += ["--summary", "Demo: pick a time", "--base-url", base_url]
            out.write(
                f"A fake Cronofy is listening on {base_url} (50 requests/s, 500/min, "
                "an occasional 429).\n"
                f"Inviting the {args.rows} recipients of {sample}, one scheduler request each:\n"
                f"  cronofy-async batch {shlex.join(argv)}\n\n"
            )
            out.flush()
            batch = parse_batch_arguments([*argv, "--plain"] if args.plain else argv)
            status = await run_batch(batch, secret=fake.secret, out=out)
        with results.open(encoding="utf-8") as stream:
            example = next(
                (line for line in stream if json.loads(line)["outcome"] == "created"), ""
            )
        out.write(
            f"\nThe fake created {fake.created_count} scheduler requests for {args.rows} rows; "
            f"invites created twice: {len(fake.duplicates())}; 429s answered: "
            f"{fake.outcomes['fault:rate_limited'] + fake.outcomes['429']}.\n"
            f"A line of the results file:\n  {example.strip()}\n"
        )
    return status


COMMAND = Command(
    name="demo",
    help="run a batch against a fake Cronofy on loopback (needs uvicorn: the 'testing' extra)",
    description="Start a fake Cronofy, write a sample input and run the batch command on it.",
    add_arguments=add_arguments,
    run=lambda args: run_async(run_demo(args)),
)
