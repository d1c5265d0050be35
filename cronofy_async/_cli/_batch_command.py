"""``cronofy-async batch``: a CSV or JSONL of recipients in, one invite each, resumable."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from .._batch import DEFAULT_CONCURRENCY, BatchResult, BatchStream
from .._client import SECRET_ENV, AsyncSchedulerAPI
from .._errors import BatchInputError, CronofyError
from .._models import SchedulerRequest
from .._ratelimit import RateLimit
from ._progress import Progress, make_progress
from ._results import SENDING, ResultsFile, load_states
from ._rows import Defaults, Row, RowError, check_header, count_rows, read_rows
from ._streams import stderr as _stderr
from ._streams import stdout as _stdout

__all__ = ["EXIT_INCOMPLETE", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "add_arguments"]

EXIT_OK = 0
"""Every row of the input is created (in this run or an earlier one)."""
EXIT_INCOMPLETE = 1
"""Some row is not created: failed, unknown, not sent, bad, or skipped as unknown."""
EXIT_USAGE = 2
"""The command could not start: bad options, no secret, unreadable input."""
EXIT_INTERRUPTED = 130
"""Interrupted (Ctrl-C); everything that completed is in the results file."""


class _RefuseSecretOption(argparse.Action):
    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        parser.error(
            "--client-secret is not accepted: a secret on the command line lands in shell history "
            f"and in ps. Set {SECRET_ENV} or pass --client-secret-file PATH."
        )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the batch command's options to `parser`."""
    parser.add_argument("input", type=Path, help="CSV (with a header row) or JSONL of recipients")
    parser.add_argument(
        "--output", "-o", type=Path, required=True, help="results file (JSONL), appended to"
    )
    parser.add_argument("--data-center", help="us, au, ca, de, sg or uk (default: us)")
    parser.add_argument("--base-url", help="send to this URL instead (a proxy, a fake server)")
    host = parser.add_mutually_exclusive_group()
    host.add_argument("--host", metavar="SUB", help="the account hosting every row's meeting")
    host.add_argument("--group-rule", metavar="ID", help="a group rule that picks each host")
    host.add_argument("--impersonate", metavar="SUB", help="send as this account, which hosts")
    parser.add_argument("--summary", metavar="TEXT", help="event summary for rows without one")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=DEFAULT_CONCURRENCY,
        help=f"requests in flight at once (default {DEFAULT_CONCURRENCY})",
    )
    parser.add_argument("--per-second", type=int, default=50, help="pace: requests per second")
    parser.add_argument("--per-minute", type=int, default=500, help="pace: requests per minute")
    parser.add_argument(
        "--no-pacing",
        action="store_true",
        help="do not pace (a fake server, or a proxy that paces for you); 429s are still retried",
    )
    parser.add_argument(
        "--resend-unknown",
        action="store_true",
        help="send again rows whose outcome is unknown (they may exist: risks a second invite)",
    )
    parser.add_argument(
        "--client-secret-file",
        type=Path,
        metavar="PATH",
        help=f"read the secret here, not {SECRET_ENV}",
    )
    parser.add_argument(
        "--client-secret", nargs=0, action=_RefuseSecretOption, help=argparse.SUPPRESS
    )
    parser.add_argument("--plain", action="store_true", help="periodic lines, no live bar")


def _secret(args: argparse.Namespace) -> str | None:
    if args.client_secret_file is not None:
        return str(args.client_secret_file.read_text(encoding="utf-8")).strip()
    return os.environ.get(SECRET_ENV)


class _Run:
    """One run of the batch command: what it skipped, sent and learned, row by row."""

    def __init__(
        self, args: argparse.Namespace, results: ResultsFile, progress: Progress, err: IO[str]
    ) -> None:
        self.args = args
        self.results = results
        self.progress = progress
        self.err = err
        self.states = load_states(args.output)
        self.counts: Counter[str] = Counter()
        self.interrupted = False

    def rows(self) -> Iterator[Row]:
        """The rows to send, lazily; skipped and bad rows are recorded on the way."""
        defaults = Defaults(
            summary=self.args.summary,
            host=self.args.host,
            group_rule=self.args.group_rule,
            impersonate=self.args.impersonate,
        )
        for item in read_rows(self.args.input, defaults):
            state = self.states.get(item.line)
            if state == "created":
                self._skip("skipped_created")
                continue
            if state in ("unknown", SENDING) and not self.args.resend_unknown:
                self._skip("skipped_unknown")
                continue
            if isinstance(item, RowError):
                self.err.write(f"line {item.line}: {item.message}\n")
                self._record(item.line, item.email, "failed", error=item.message)
                self.counts["bad"] += 1
                continue
            # Recorded before the request can leave: if this process dies mid-flight, a re-run
            # knows the row may exist and does not send it blindly again.
            self.results.write({"line": item.line, "email": item.email, "outcome": SENDING})
            yield item

    def _skip(self, reason: str) -> None:
        self.counts[reason] += 1
        self.progress.advance("skipped")

    def _record(
        self, line: int, email: str | None, outcome: str, *, error: str | None = None, **more: Any
    ) -> None:
        self.results.write(
            {"line": line, "email": email, "outcome": outcome, "error": error, **more}
        )
        self.progress.advance(outcome)

    def record(self, result: BatchResult[Row, SchedulerRequest]) -> None:
        """Write one row's outcome, the moment it is known."""
        row = result.request
        created = result.scheduler_request
        self.counts[str(result.outcome)] += 1
        self._record(
            row.line,
            row.email,
            str(result.outcome),
            error=None if result.error is None else _describe(result.error),
            scheduler_request_id=created.scheduler_request_id if created else None,
            select_url=created.select_url if created else None,
            attempts=result.attempts,
        )


def _describe(error: BaseException) -> str:
    return str(error) or type(error).__name__


def _sender(
    api: AsyncSchedulerAPI,
) -> Callable[[Row, Callable[[], None]], Any]:
    views: dict[str | None, AsyncSchedulerAPI] = {None: api}

    async def send(row: Row, on_send: Callable[[], None]) -> SchedulerRequest:
        view = views.get(row.impersonate)
        if view is None:
            view = views[row.impersonate] = api.impersonate(row.impersonate)  # type: ignore[arg-type]
        return await view._create(row.request, on_send)

    return send


async def run_batch(
    args: argparse.Namespace,
    *,
    secret: str | None = None,
    out: IO[str] | None = None,
    err: IO[str] | None = None,
) -> int:
    """Run the batch command; returns the exit status."""
    out = out if out is not None else _stdout()
    err = err if err is not None else _stderr()
    if not args.input.is_file():
        err.write(f"cronofy-async batch: {args.input}: no such file\n")
        return EXIT_USAGE
    try:
        check_header(args.input)
        secret = secret or _secret(args)
        api = AsyncSchedulerAPI(
            secret,
            data_center=args.data_center,
            base_url=args.base_url,
            rate_limit=None
            if args.no_pacing
            else RateLimit(per_second=args.per_second, per_minute=args.per_minute),
        )
        total = count_rows(args.input)  # reads every line: a file that cannot be read fails here
    except (CronofyError, ValueError, OSError) as exc:
        err.write(f"cronofy-async batch: {exc}\n")
        return EXIT_USAGE
    progress = make_progress(err, plain=args.plain)
    with ResultsFile(args.output) as results:
        run = _Run(args, results, progress, err)
        progress.start(total)
        try:
            rows: Iterator[Any] = run.rows()  # the stream carries our rows, sent by _sender
            stream = BatchStream(api, rows, concurrency=args.concurrency, send=_sender(api))
            with _interrupts(stream, run, err):
                try:
                    async for result in stream:
                        run.record(result)
                finally:
                    for result in stream.unfinished:
                        run.record(result)
        except BatchInputError as exc:  # the rows read before it were sent and recorded
            err.write(f"cronofy-async batch: {exc}\n")
            run.counts["unread"] = max(0, total - sum(run.counts.values()))
            return EXIT_INCOMPLETE
        except CronofyError as exc:  # a bad --concurrency, say: nothing was sent
            err.write(f"cronofy-async batch: {exc}\n")
            return EXIT_USAGE
        finally:
            progress.stop()
            await api.aclose()
            _summary(run, total, args, out)
    if run.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_OK if _all_created(run.counts) else EXIT_INCOMPLETE


@contextlib.contextmanager
def _interrupts(
    stream: BatchStream[Row, SchedulerRequest], run: _Run, err: IO[str]
) -> Iterator[None]:
    """
    Handle Ctrl-C (or SIGTERM): once winds down, twice abandons.

    Once: send nothing new and let what is in flight finish, so every row ends created, failed
    or not sent and a re-run completes the job with no duplicate. Twice: abandon the requests
    in flight, which are then recorded as unknown.
    """
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()

    def interrupt() -> None:
        if not run.interrupted:
            run.interrupted = True
            err.write(
                "\nstopping: no new requests; waiting for those in flight "
                "(interrupt again to abandon them)\n"
            )
            stream.stop()
        elif main is not None:
            main.cancel()

    installed = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, interrupt)
            installed.append(signum)
    try:
        yield
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)


def _all_created(counts: Counter[str]) -> bool:
    return not any(
        counts[k] for k in ("failed", "unknown", "not_sent", "bad", "skipped_unknown", "unread")
    )


def _summary(run: _Run, total: int, args: argparse.Namespace, out: IO[str]) -> None:
    counts = run.counts
    rows = [
        ("rows in input", total),
        ("created now", counts["created"]),
        ("skipped: created before", counts["skipped_created"]),
        ("skipped: unknown before (--resend-unknown to send)", counts["skipped_unknown"]),
        ("failed (not created)", counts["failed"]),
        ("unknown (may exist: check before re-sending)", counts["unknown"]),
        ("not sent", counts["not_sent"]),
        ("bad rows (see the lines above)", counts["bad"]),
    ]
    if counts["unread"]:
        rows.append(("not read: the input failed (see above)", counts["unread"]))
    out.write(f"\nresults: {args.output}\n")
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        out.write(f"  {label:<{width}}  {value:>7}\n")
    verdict = "every row is created" if _all_created(counts) else "some rows are not created"
    out.write(f"  {verdict}\n")
    out.flush()
