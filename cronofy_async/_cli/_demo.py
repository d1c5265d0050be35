"""``cronofy-async demo``: the real batch command against a fake Cronofy on loopback."""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
from pathlib import Path
from typing import IO

from ._batch_command import run_batch
from ._streams import stdout as _stdout

__all__ = ["add_arguments", "run_demo"]

_FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Tim"]
_LAST = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson"]
DEMO_HOST = "acc_demo_host"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the demo's options to `parser`."""
    parser.add_argument("--rows", type=int, default=300, help="recipients to invite (300)")
    parser.add_argument(
        "--workdir", type=Path, help="keep the sample input and results here (default: a temp dir)"
    )
    parser.add_argument("--plain", action="store_true", help="periodic lines, no live bar")


def write_sample(path: Path, rows: int) -> None:
    """A CSV of `rows` made-up recipients."""
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["email", "display_name"])
        for i in range(rows):
            first, last = _FIRST[i % len(_FIRST)], _LAST[(i // len(_FIRST)) % len(_LAST)]
            writer.writerow([f"{first}.{last}.{i}@example.com".lower(), f"{first} {last}"])


async def run_demo(args: argparse.Namespace, out: IO[str] | None = None) -> int:
    """Serve a fake Cronofy, write a sample input, and run the real batch command on it."""
    from ..testing import FakeCronofy, Faults

    out = out if out is not None else _stdout()
    with tempfile.TemporaryDirectory(prefix="cronofy-demo-") as temporary:
        workdir = args.workdir or Path(temporary)
        workdir.mkdir(parents=True, exist_ok=True)
        sample, results = workdir / "recipients.csv", workdir / "results.jsonl"
        results.unlink(missing_ok=True)
        write_sample(sample, args.rows)
        # Cronofy's own rate limits, and an occasional 429 to show a safe retry.
        fake = FakeCronofy(members=[DEMO_HOST], faults=Faults(seed=7, rate_limited=0.01))
        async with fake.serve() as base_url:
            out.write(
                f"A fake Cronofy is listening on {base_url} (50 requests/s, 500/min, "
                "an occasional 429).\n"
                f"Inviting the {args.rows} recipients of {sample}, one scheduler request each:\n"
                f"  cronofy-async batch {sample} --output {results} --host {DEMO_HOST} "
                f"--summary 'Demo: pick a time' --base-url {base_url}\n\n"
            )
            out.flush()
            batch = argparse.Namespace(
                input=sample,
                output=results,
                data_center=None,
                base_url=base_url,
                host=DEMO_HOST,
                group_rule=None,
                impersonate=None,
                summary="Demo: pick a time",
                concurrency=20,
                per_second=50,
                per_minute=500,
                no_pacing=False,
                resend_unknown=False,
                client_secret_file=None,
                plain=args.plain,
            )
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
