"""
``cronofy-async batch``: a CSV or JSONL of recipients in, one invite each, resumable.

Each invite is a scheduler request (ALPHA), or with ``--scheduling`` a scheduling request
(BETA): the same rows, keys, records and guarantees, another endpoint.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import os
import secrets
import signal
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any, Final

import attrs

from .._batch import DEFAULT_CONCURRENCY, BatchResult, BatchStream, check_concurrency
from .._client import SECRET_ENV, AsyncSchedulerAPI
from .._errors import BatchInputError, CronofyError, PermissionDeniedError
from .._models import SchedulerRequest
from .._ratelimit import RateLimit
from .._scheduling_models import SchedulingRequest
from .._scheduling_requests import NewSchedulingRequest
from . import _redis_option
from ._args import Parser, RefuseSecret, SecretFileError, read_secret_file, scrub
from ._command import EXIT_INTERRUPTED, EXIT_USAGE, Command, run_async
from ._key import SCHEDULER_REQUEST, SCHEDULING_REQUEST
from ._outcomes import (
    CREATED_BEFORE,
    DUPLICATE,
    FAILED,
    INVALID,
    NOT_REACHED,
    NOT_SENT,
    ROW_OUTCOMES,
    SENDING,
    UNKNOWN,
    UNKNOWN_BEFORE,
    Tally,
)
from ._progress import Progress, make_progress
from ._results import History, ResultsError, ResultsFile, make_record
from ._rows import (
    Defaults,
    InputError,
    Invite,
    Row,
    RowError,
    Survey,
    check_columns,
    check_kind,
    read_rows,
    survey,
)
from ._stops import explain_refused, explain_stop, stops_batch
from ._streams import stderr as _stderr
from ._streams import stdout as _stdout

__all__ = [
    "COMMAND",
    "EXIT_INCOMPLETE",
    "EXIT_OK",
    "add_arguments",
    "parse_batch_arguments",
    "run_batch",
]

EXIT_OK: Final = 0
"""Every row's invite exists: created in this run or an earlier one (or by an identical row)."""
EXIT_INCOMPLETE: Final = 1
"""Some row's invite does not exist, or may not: see the summary."""

# Per-row messages shown on the terminal, per outcome; the rest are counted, and in the file.
NOTES_SHOWN: Final = 20

Created = SchedulerRequest | SchedulingRequest
"""What one row's send returns: the request it created, of the run's kind."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the batch command's options to `parser`."""
    parser.add_argument("input", type=Path, help="CSV (with a header row) or JSONL of recipients")
    parser.add_argument(
        "--output",
        "-o",
        type=Path,
        required=True,
        help="results file (JSONL), appended to; earlier runs' records in it are resumed",
    )
    parser.add_argument("--data-center", help="us, au, ca, de, sg or uk (default: us)")
    parser.add_argument("--base-url", help="send to this URL instead (a proxy, a fake server)")
    parser.add_argument(
        "--scheduling",
        action="store_true",
        help="create scheduling requests (BETA) instead of scheduler requests (ALPHA)",
    )
    host = parser.add_mutually_exclusive_group()
    host.add_argument("--host", metavar="SUB", help="the account hosting every row's meeting")
    host.add_argument("--group-rule", metavar="ID", help="a group rule that picks each host")
    host.add_argument(
        "--selection-rule",
        metavar="SUB",
        help="with --scheduling: a selection rule (sel_...) that picks each host",
    )
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
    parser.add_argument("--client-secret", action=RefuseSecret, help=argparse.SUPPRESS)
    parser.add_argument(
        "--plain", action="store_true", help="periodic lines, no live bar (when not a terminal)"
    )
    _redis_option.add_arguments(parser)
    _redis_option.add_ledger_argument(parser)


def _secret(args: argparse.Namespace) -> str:
    if args.client_secret_file is not None:
        try:
            return read_secret_file(args.client_secret_file)
        except SecretFileError as exc:
            raise InputError(str(exc)) from None
    secret = os.environ.get(SECRET_ENV, "").strip()
    if not secret:
        raise InputError(
            f"no client secret: set {SECRET_ENV} or pass --client-secret-file PATH (the secret "
            "of an Internal Application linked to your Organizational Unit)"
        )
    return secret


def _run_id() -> str:
    now = datetime.datetime.now(datetime.UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(2)}"


class _Notes:
    """Per-row messages on the terminal: the first few of each outcome, then a count."""

    def __init__(self, show: Callable[[str], None], run: str, output: Path) -> None:
        self._show = show
        self._run = run
        self._output = output
        self._counts: Counter[str] = Counter()

    def row(self, outcome: str, line: int, message: str) -> None:
        self._counts[outcome] += 1
        if self._counts[outcome] <= NOTES_SHOWN:
            self._show(f"line {line}: {message}")

    def overflow(self) -> Iterator[str]:
        for outcome, count in self._counts.items():
            if count > NOTES_SHOWN:
                yield (
                    f"... and {count - NOTES_SHOWN} more {outcome} rows; all of them: jq -c "
                    f'\'select(.run == "{self._run}" and .outcome == "{outcome}")\' '
                    f"{self._output}"
                )


@attrs.define
class _Stop:
    """The first 401, 402 or 403, and the row it answered."""

    error: BaseException
    row: Row


class _Run:
    """One run of the batch command: what it skipped, sent and learned, row by row."""

    def __init__(
        self,
        args: argparse.Namespace,
        found: Survey,
        defaults: Defaults,
        history: History,
        results: ResultsFile,
        progress: Progress,
    ) -> None:
        self.id = _run_id()
        self.args = args
        self.found = found
        self.defaults = defaults
        self.history = history
        self.results = results
        self.progress = progress
        self.tally = Tally(total=found.rows)
        self.notes = _Notes(progress.note, self.id, args.output)
        self.first_line: dict[str, int] = {}
        self.interrupted = False
        """Ctrl-C (or SIGTERM) once: nothing new is sent."""
        self.abandoned = False
        """Twice: the requests in flight are abandoned (and recorded as unknown)."""
        self.stop: _Stop | None = None

    def rows(self) -> Iterator[Row]:
        """The rows to send, lazily; every other row is recorded on the way."""
        for item in read_rows(self.found, self.defaults):
            if isinstance(item, RowError):
                self.notes.row(INVALID, item.line, item.message)
                self._record(item.line, INVALID, item.invite, None, error=item.message)
                continue
            first = self.first_line.setdefault(item.key, item.line)
            if first != item.line:
                self.notes.row(
                    DUPLICATE,
                    item.line,
                    f"the same invite as line {first} ({item.invite.email}): sent once, for "
                    f"line {first}",
                )
                self._record(item.line, DUPLICATE, item.invite, item.key, duplicate_of=first)
                continue
            if self._skipped(item):
                continue
            yield item

    def _skipped(self, row: Row) -> bool:
        created = self.history.created(row.key)
        if created is not None:
            earlier, now = created.get("display_name"), row.invite.display_name
            if earlier != now:
                before = f"as {earlier!r}" if earlier else "without a display name"
                change = (
                    f"the new display name {now!r} is not sent"
                    if now
                    else "this row has no display name, and nothing is sent"
                )
                self.notes.row(
                    CREATED_BEFORE,
                    row.line,
                    f"{row.invite.email} was invited before {before} "
                    f"({created.get('scheduler_request_id')}); {change}: one invite per person",
                )
            self._record(
                row.line,
                CREATED_BEFORE,
                row.invite,
                row.key,
                scheduler_request_id=created.get("scheduler_request_id"),
                select_url=created.get("select_url"),
            )
            return True
        if self.history.may_exist(row.key) and not self.args.resend_unknown:
            self._record(row.line, UNKNOWN_BEFORE, row.invite, row.key)
            return True
        return False

    def sending(self, row: Row) -> None:
        """
        Write ahead that the row's request is leaving, before it can leave.

        If this process dies with it in flight (a crash, a kill), a re-run knows the invite may
        exist and does not send it blindly again.
        """
        if self.results.failed is not None:
            raise self.results.failed  # nothing leaves that could not be written ahead
        record = make_record(
            run=self.id, line=row.line, outcome=SENDING, invite=row.invite, key=row.key
        )
        self.results.write(record)
        self.tally.sent += 1

    def _record(
        self, line: int, outcome: str, invite: Invite, key: str | None, **more: Any
    ) -> None:
        # Counted first: a row whose record cannot be written (a full disk) still ended so.
        self.tally.counts[outcome] += 1
        self.results.write(
            make_record(run=self.id, line=line, outcome=outcome, invite=invite, key=key, **more)
        )
        self.progress.update()

    def record(self, result: BatchResult[Row, Created], stopped_by: BaseException | None) -> None:
        """Write one row's outcome, the moment it is known."""
        row = result.request
        outcome = CREATED_BEFORE if result.replayed else str(result.outcome)
        created = result.created
        error = None if result.error is None else _describe(result.error)
        if stopped_by is not None and result.error is stopped_by and self.stop is None:
            self.stop = _Stop(error=stopped_by, row=row)
        elif isinstance(result.error, PermissionDeniedError) and row.invite.impersonate:
            error = explain_refused(row.invite)  # the row's account is not the application's
        elif (failed := self.results.failed) is not None and (
            result.error is failed or isinstance(result.error, asyncio.CancelledError | None)
        ):
            error = _cannot_write(outcome, failed)
        elif outcome == NOT_SENT and self.stop is not None:
            error = f"not sent: the batch stopped at line {self.stop.row.line} ({error})"
        elif outcome == NOT_SENT and error is None:
            error = "not sent: interrupted"
        elif outcome == UNKNOWN and isinstance(result.error, asyncio.CancelledError):
            error = "abandoned in flight by a second interrupt: may exist"
        if outcome in (FAILED, UNKNOWN) and error is not None:
            self.notes.row(outcome, row.line, f"{outcome}: {error}")
        self._record(
            row.line,
            outcome,
            row.invite,
            row.key,
            error=error,
            scheduler_request_id=_created_id(created),
            select_url=created.select_url if created else None,
            attempts=result.attempts,
        )
        if self.results.failed is not None:
            raise self.results.failed  # an earlier write failed: the run cannot go on

    def record_unfinished(
        self, result: BatchResult[Row, Created], stopped_by: BaseException | None
    ) -> None:
        """Record a row left in flight, as far as the results file still can be written."""
        try:
            self.record(result, stopped_by)
        except OSError:
            if self.results.failed is None:
                raise


def _cannot_write(outcome: str, error: OSError) -> str:
    """Why a row ended so when the results file could not be written (a full disk)."""
    why = f"the results file cannot be written ({error.strerror or error})"
    if outcome == UNKNOWN:
        return f"abandoned in flight: {why}: may exist"
    return f"not sent: {why}"


def _created_id(created: Created | None) -> str | None:
    """The created request's id, whichever its kind: the records keep it in one field."""
    if isinstance(created, SchedulingRequest):
        return created.scheduling_request_id
    return created.scheduler_request_id if created else None


def _describe(error: BaseException) -> str:
    return str(error) or type(error).__name__


def _sender(
    api: AsyncSchedulerAPI, run: _Run, *, keyed: bool
) -> Callable[[Row, Callable[[], None]], Any]:
    """
    How the batch sends a row: as its account, and with a shared ledger under the row's key.

    The key is the row's resume key (what it asks for, not its line or display name), so two
    batch processes given overlapping inputs send each row once between them.
    """
    views: dict[str | None, AsyncSchedulerAPI] = {None: api}
    resend = bool(run.args.resend_unknown)

    async def send(row: Row, on_send: Callable[[], None]) -> Created:
        impersonate = row.invite.impersonate
        view = views.get(impersonate)
        if view is None:
            view = views[impersonate] = api.impersonate(impersonate)  # type: ignore[arg-type]
        leaving = _Leaving(run, row, on_send)
        key = row.key if keyed else None
        if isinstance(row.request, NewSchedulingRequest):
            return await view._create_scheduling(
                row.request, leaving, idempotency_key=key, resend_unknown=resend
            )
        return await view._create(row.request, leaving, idempotency_key=key, resend_unknown=resend)

    return send


class _Leaving:
    """
    A row's send counter: records the row as it first leaves, then counts as the batch's does.

    It passes `settled` on as well: the batch learns from it that a failed attempt (a 429
    waiting to be retried) is off the wire, so a stop holds that row back and a cancel calls
    it not sent rather than unknown.
    """

    __slots__ = ("_first", "_on_send", "_row", "_run")

    def __init__(self, run: _Run, row: Row, on_send: Callable[[], None]) -> None:
        self._run, self._row, self._on_send = run, row, on_send
        self._first = True

    def __call__(self) -> None:  # just before each attempt goes out
        if self._first:
            self._first = False
            self._run.sending(self._row)
        self._on_send()

    def settled(self, maybe_processed: bool) -> None:
        settled = getattr(self._on_send, "settled", None)
        if settled is not None:
            settled(maybe_processed)

    def replayed(self) -> None:  # another process created it: the ledger answered
        replayed = getattr(self._on_send, "replayed", None)
        if replayed is not None:
            replayed()


def _refuse(err: IO[str], message: str) -> int:
    err.write(f"cronofy-async batch: {' '.join(message.split())}\n")
    err.flush()
    return EXIT_USAGE


def _check_output(source: Path, output: Path) -> None:
    if output.exists() and source.samefile(output):
        raise InputError(f"{output}: is the input file; give --output another file")


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
    defaults = Defaults(
        summary=args.summary,
        host=args.host,
        group_rule=args.group_rule,
        selection_rule=args.selection_rule,
        impersonate=args.impersonate,
        kind=SCHEDULING_REQUEST if args.scheduling else SCHEDULER_REQUEST,
    )
    # Everything that can be refused is refused here, before a request or a record is made.
    try:
        check_kind(defaults)
        found = survey(args.input)
        notes = check_columns(found, defaults)
        check_concurrency(args.concurrency)
        _check_output(args.input, args.output)
        client_secret = secret or _secret(args)
        limiter = _redis_option.rate_limit(
            args,
            None
            if args.no_pacing
            else RateLimit(per_second=args.per_second, per_minute=args.per_minute),
        )
        try:
            ledger = _redis_option.ledger(args)
            api = AsyncSchedulerAPI(
                client_secret,
                data_center=args.data_center,
                base_url=args.base_url,
                rate_limit=limiter,
                ledger=ledger,
            )
        except CronofyError:
            await _redis_option.aclose(limiter)
            raise
    except (InputError, CronofyError) as exc:
        return _refuse(err, scrub(str(exc), args))
    defaults = attrs.evolve(defaults, data_center=api.data_center.value)
    results = ResultsFile(args.output)
    try:
        history = results.open(defaults.kind)
    except ResultsError as exc:
        await api.aclose()
        await _redis_option.aclose(limiter, ledger)
        return _refuse(err, scrub(str(exc), args))
    try:
        return await _go(args, api, found, defaults, history, results, notes, out, err)
    except OSError as exc:  # the results file could not be written any more (a full disk)
        err.write(
            f"cronofy-async batch: stopped: cannot write {args.output}: "
            f"{exc.strerror or exc}. The rows whose outcome it lacks may exist: free the space, "
            "then run the same command again (--resend-unknown only once they are checked)\n"
        )
        return EXIT_INCOMPLETE
    finally:
        results.close()
        await api.aclose()
        await _redis_option.aclose(limiter, ledger)


async def _go(
    args: argparse.Namespace,
    api: AsyncSchedulerAPI,
    found: Survey,
    defaults: Defaults,
    history: History,
    results: ResultsFile,
    notes: list[str],
    out: IO[str],
    err: IO[str],
) -> int:
    if history.unreadable:
        lines = ", ".join(map(str, history.unreadable[:5]))
        notes.append(
            f"{args.output}: ignoring {len(history.unreadable)} line(s) that are not records "
            f"(line {lines}): a write cut off by a crash or a kill; rows they were about are "
            "treated as possibly sent"
        )
    for note in notes:
        err.write(f"cronofy-async batch: {note}\n")
    progress = make_progress(err, plain=args.plain)
    run = _Run(args, found, defaults, history, results, progress)
    rows: Iterator[Any] = run.rows()  # the stream carries our rows, sent by _sender
    stream = BatchStream(
        api,
        rows,
        concurrency=args.concurrency,
        send=_sender(api, run, keyed=_redis_option.ledger_given(args)),
        stops_batch=stops_batch(defaults),
    )
    progress.start(run.tally)
    try:
        with _interrupts(stream, run):
            try:
                async for result in stream:
                    run.record(result, stream.stopped_by)
            except OSError:
                # The results file cannot be written (a full disk): nothing more may be sent,
                # and what is in flight is cancelled, to be recorded as far as possible.
                await stream.aclose()
                raise
            finally:
                for result in stream.unfinished:
                    run.record_unfinished(result, stream.stopped_by)
    except BatchInputError as exc:  # the rows read before it were sent and recorded
        if run.results.failed is not None:
            raise run.results.failed from None  # it was recording a skipped row that failed
        err.write(f"cronofy-async batch: stopped: {exc}\n")
    except asyncio.CancelledError:
        if not run.abandoned:
            raise
        # Our own second Ctrl-C cancelled this task to abandon the requests in flight; that
        # is done and recorded, so the run ends normally, with its summary.
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
    finally:
        run.tally.close()
        progress.stop()
        _report(run, out, err)
    if run.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_INCOMPLETE if run.tally.not_done else EXIT_OK


@contextlib.contextmanager
def _interrupts(stream: BatchStream[Row, Created], run: _Run) -> Iterator[None]:
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
            run.progress.note(
                "stopping: no new requests; waiting for those in flight "
                "(interrupt again to abandon them)"
            )
            stream.stop()
        elif main is not None and not run.abandoned:
            run.abandoned = True
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


def _report(run: _Run, out: IO[str], err: IO[str]) -> None:
    """The per-row overflow and any stop on the terminal, then the summary."""
    for line in run.notes.overflow():
        err.write(f"{line}\n")
    if run.stop is not None:
        message = explain_stop(run.stop.error, line=run.stop.row.line, invite=run.stop.row.invite)
        err.write(f"cronofy-async batch: {message}\n")
    err.flush()
    _summary(run, out)


def _summary(run: _Run, out: IO[str]) -> None:
    tally = run.tally
    counts = tally.counts
    width = max(len(outcome) for outcome in ROW_OUTCOMES)
    label_width = max(len(label) for label in ROW_OUTCOMES.values())
    out.write(f"\nresults: {run.args.output} (run {run.id})\n")
    out.write(f"  {'rows in input':<{width + label_width + 2}}  {tally.total:>7}\n")
    for outcome, label in ROW_OUTCOMES.items():
        out.write(f"  {outcome:<{width}}  {label:<{label_width}}  {counts[outcome]:>7}\n")
    out.write(f"  requests sent in this run: {tally.sent}\n")
    if not tally.not_done:
        out.write("  done: every row's invite exists, created in this run or an earlier one\n")
    else:
        rows = "1 row has" if tally.not_done == 1 else f"{tally.not_done} rows have"
        out.write(f"  not done: {rows} no invite, or may not\n")
        for hint in _hints(counts, run.id, run.args.output):
            out.write(f"  - {hint}\n")
    out.flush()


def _hints(counts: Counter[str], run: str, output: Path) -> Iterator[str]:
    if counts[INVALID]:
        yield "fix the invalid rows (the lines above say what is wrong), then run again"
    if counts[FAILED] or counts[NOT_SENT] or counts[NOT_REACHED]:
        yield "run the same command again: failed, not sent and not reached rows are sent"
    if counts[UNKNOWN] or counts[UNKNOWN_BEFORE]:
        which = '(.outcome == "unknown" or .outcome == "unknown_before")'
        yield (
            "unknown rows may exist: check them in Cronofy before --resend-unknown sends them "
            f"again; list them: jq -c 'select(.run == \"{run}\" and {which})' {output}"
        )


def parse_batch_arguments(argv: Sequence[str]) -> argparse.Namespace:
    """The batch command's options from `argv` (what follows ``cronofy-async batch``)."""
    parser = Parser(prog="cronofy-async batch")
    add_arguments(parser)
    return parser.parse_args(argv)


def _run(args: argparse.Namespace) -> int:
    return run_async(run_batch(args))


COMMAND: Final = Command(
    name="batch",
    help="invite every recipient of a CSV or JSONL file, resumably",
    description=(
        "Create one scheduler request per input row (with --scheduling, one scheduling request "
        "instead; a results file holds one kind). Results are appended to --output as they "
        "come. Re-running resumes by what each row asks for (its key), not its line: a row "
        "whose invite was created is skipped, one whose outcome is unknown is not re-sent "
        "without --resend-unknown, and identical rows are sent once. The secret comes from "
        f"{SECRET_ENV} or --client-secret-file. Exit status: 0 every row's invite exists, "
        "1 some row's does not or may not, 2 could not start (nothing sent), 130 interrupted."
    ),
    add_arguments=add_arguments,
    run=_run,
)
