"""
Concurrent batch creation: every item read lazily, sent once, and accounted for.

The stream reads an item from the input only when a slot is free: at most `concurrency` items are
in flight, and at most `concurrency` and a tenth more (`read_bound`) are read and not yet
yielded, whatever the size of the input, so memory stays flat. Each item's outcome says whether
its invite exists: `CREATED`, `FAILED` (it does not), `UNKNOWN` (it may: do not re-send blindly) or
`NOT_SENT` (it never left, safe to send later).
"""

from __future__ import annotations

import asyncio
import collections
import enum
from collections import Counter
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
    Iterator,
    Mapping,
)
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Generic, Self, TypeVar

import attrs

from ._concurrency import InFlightLimit
from ._errors import (
    APIError,
    AuthenticationError,
    BatchInputError,
    ClientClosedError,
    ConfigurationError,
    OutcomeUnknownError,
    PaymentRequiredError,
    PermissionDeniedError,
)
from ._models import SchedulerRequest

if TYPE_CHECKING:
    from ._client import AsyncSchedulerAPI
    from ._otel import BatchTrace

Q = TypeVar("Q")
"""The kind of item a batch creates from (`NewSchedulerRequest`, `NewSchedulingRequest`)."""
M = TypeVar("M")
"""The kind of model a created item gives (`SchedulerRequest`, `SchedulingRequest`)."""

__all__ = [
    "DEFAULT_CONCURRENCY",
    "BatchReport",
    "BatchResult",
    "BatchStream",
    "KeyOf",
    "Outcome",
    "Send",
    "collect",
    "keyed_send",
    "outcome_of",
]

DEFAULT_CONCURRENCY: Final = 20
"""
Requests in flight at once by default.

Cronofy allows 50 requests per second; at a typical round trip of 0.4 s that is 20 in flight.
More would only queue behind the pacing (and httpx's pool degrades past about 25 in flight).
Raise it when round trips are long and the plan's limits are higher.
"""
MAX_CONCURRENCY: Final = 10_000

# Errors that doom every later item of the batch: same credentials, same plan.
_FATAL: Final = (AuthenticationError, PaymentRequiredError, PermissionDeniedError)


class Outcome(enum.StrEnum):
    """What became of one item of a batch."""

    CREATED = "created"
    """The request was created; `BatchResult.created` has it."""
    FAILED = "failed"
    """It was not created (refused, or it provably never reached Cronofy)."""
    UNKNOWN = "unknown"
    """It may have been created: check before sending it again, or risk a second invite."""
    NOT_SENT = "not_sent"
    """It was never sent (the batch stopped or was cancelled first); safe to send later."""


@attrs.frozen(kw_only=True)
class BatchResult(Generic[Q, M]):
    """
    The outcome of one item of a batch.

    ::

        if result.outcome is Outcome.CREATED:
            print(result.index, result.created.select_url)
    """

    index: int
    """The item's position in the input, from 0."""
    request: Q
    """The item itself."""
    outcome: Outcome
    """What became of it."""
    created: M | None = None
    """The created request (a `SchedulerRequest` or `SchedulingRequest`) when `CREATED`."""
    error: BaseException | None = None
    """Why it was not created, otherwise."""
    attempts: int = 0
    """How many times it was sent."""
    replayed: bool = False
    """
    Whether `created` was answered from the idempotency ledger: its key was created before
    (by an earlier call, batch or process), so nothing was sent for it this time.
    """

    @property
    def scheduler_request(self) -> SchedulerRequest | None:
        """The created `SchedulerRequest`, for a batch of scheduler requests (else ``None``)."""
        return self.created if isinstance(self.created, SchedulerRequest) else None


@attrs.frozen(kw_only=True)
class BatchReport(Generic[Q, M]):
    """Every item's `BatchResult`, in input order, with counts per outcome."""

    results: tuple[BatchResult[Q, M], ...]
    """One result per input item, in input order."""

    @property
    def counts(self) -> Mapping[Outcome, int]:
        """How many items ended with each outcome (every outcome present, 0 included)."""
        found = Counter(result.outcome for result in self.results)
        return {outcome: found[outcome] for outcome in Outcome}

    @property
    def all_created(self) -> bool:
        """Whether every item was created."""
        return all(result.outcome is Outcome.CREATED for result in self.results)

    def with_outcome(self, outcome: Outcome) -> list[BatchResult[Q, M]]:
        """The results with `outcome`, in input order."""
        return [result for result in self.results if result.outcome is outcome]


def outcome_of(error: BaseException, *, sent: int | bool = True) -> Outcome:
    """
    The outcome an exception raised while creating one item amounts to.

    `sent` is how many times the item went out (counted at the last moment before its bytes
    left); by default it is assumed that it may have. What failed before it ever went out was
    not created: `Outcome.FAILED`, or `Outcome.NOT_SENT` if the batch or the API object
    stopped it. After, an `APIError` says whether the invite may exist, and anything else
    unforeseen is assumed to have created it.
    """
    if isinstance(error, OutcomeUnknownError):
        return Outcome.UNKNOWN  # never sent now, but an earlier send under its key may exist
    if isinstance(error, ClientClosedError | asyncio.CancelledError):
        return Outcome.NOT_SENT if not sent else Outcome.UNKNOWN
    if not sent:
        return Outcome.FAILED
    if isinstance(error, APIError):
        return Outcome.UNKNOWN if error.outcome_unknown else Outcome.FAILED
    return Outcome.UNKNOWN  # something unforeseen mid-flight: assume the worst


def _stops_batch(item: object, error: BaseException) -> bool:
    """The default: a 401, 402 or 403 stops the batch, whatever the item."""
    return isinstance(error, _FATAL)


def check_concurrency(concurrency: object) -> int:
    """Refuse a concurrency that is not a whole number from 1 to 10,000."""
    if (
        not isinstance(concurrency, int)
        or isinstance(concurrency, bool)
        or not 1 <= concurrency <= MAX_CONCURRENCY
    ):
        raise ConfigurationError(
            f"concurrency must be a whole number from 1 to {MAX_CONCURRENCY}, got {concurrency!r}"
        )
    return concurrency


def read_bound(concurrency: int) -> int:
    """
    How many items a batch of `concurrency` reads at most and has not yet yielded.

    The tenth beyond `concurrency` is room for finished results on their way to the reader
    of results: with it a worker whose result is not taken yet goes straight on to its next
    item. Without it that worker waits a round of the loop for the reader, and that split
    (one step frees a request's objects, a later one allocates the next's) looks like growth
    to CPython's garbage collector: with 200 in flight it ran about 250 young collections per
    4,000 items instead of 46, each walking every in-flight request's objects, and the batch
    fell to 0.8x raw aiohttp's throughput (measured on the fast path, 50 ms server delay).

    >>> read_bound(20)
    22
    """
    return concurrency + concurrency // 10


async def _aiter(items: Iterable[Any] | AsyncIterable[Any]) -> AsyncIterator[Any]:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item


@attrs.define
class _Item(Generic[Q, M]):
    index: int
    request: Q
    sent: int = 0
    stopped: bool = False
    """The batch stopped while this item waited to go out: its cancellation is the batch's."""
    on_wire: bool = False
    """An attempt of it went out and has not failed yet."""
    maybe_processed: bool = False
    """A failed attempt of it may have been processed: it may exist."""
    from_ledger: bool = False
    """Its key was created before: the answer came from the idempotency ledger."""

    def __call__(self) -> None:
        """Its bytes go out now (the pipeline's `on_send`)."""
        self.sent += 1
        self.on_wire = True

    def settled(self, maybe_processed: bool) -> None:
        """An attempt failed; waiting for a retry is not being on the wire."""
        self.on_wire = False
        self.maybe_processed = self.maybe_processed or maybe_processed

    def replayed(self) -> None:
        """Its answer came from the idempotency ledger: nothing was sent."""
        self.from_ledger = True

    @property
    def unsent_outcome(self) -> Outcome:
        """What it amounts to if it stops here, before any further send."""
        return Outcome.UNKNOWN if self.on_wire or self.maybe_processed else Outcome.NOT_SENT

    def result(
        self,
        outcome: Outcome,
        *,
        created: M | None = None,
        error: BaseException | None = None,
        attempts: int = 0,
    ) -> BatchResult[Q, M]:
        return BatchResult(
            index=self.index,
            request=self.request,
            outcome=outcome,
            created=created,
            error=error,
            attempts=attempts,
            replayed=self.from_ledger,
        )


def answered_by_ledger(error: BaseException | None, sent: int) -> bool:
    """
    Whether a keyed create that sent nothing was refused by the idempotency ledger.

    An earlier send of its key is unknown, or another call is sending it: its outcome was
    counted with that send. Not when its sender died mid-send: then no call counted it, and
    this one, the first to find it lapsed, does.
    """
    return sent == 0 and isinstance(error, OutcomeUnknownError) and not error.holder_died


def _from_ledger(result: BatchResult[Any, Any]) -> bool:
    """Answered by the idempotency ledger without a send: a replay, or a refused unknown."""
    return result.replayed or answered_by_ledger(result.error, result.attempts)


class _Wake:
    """Tells the reader of results to look again whether everything was accounted for."""


class _Crash:
    """A task of the batch failed unexpectedly: the reader of results raises `error`."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


_WAKE: Final = _Wake()

_Message = Any  # a BatchResult, _WAKE or a _Crash


class _Mailbox:
    """
    What the workers hand to the one reader of results, in order.

    An ``asyncio.Queue`` without what one reader does not need (capacity, ``join``, many
    getters): this runs once per item.
    """

    def __init__(self) -> None:
        self.items: collections.deque[_Message] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None

    @property
    def awaited(self) -> bool:
        """Whether the reader waits for a message now, with none before it: it takes the next."""
        waiter = self._waiter
        return waiter is not None and not waiter.done() and not self.items

    def put_nowait(self, message: _Message) -> None:
        self.items.append(message)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def wait(self) -> asyncio.Future[None]:
        """A future done when a message is put: the reader awaits it when `items` is empty."""
        # Awaited by the reader itself, not through a coroutine of ours: once per result.
        waiter = self._waiter = asyncio.get_running_loop().create_future()
        return waiter


Send = Callable[[Q, Callable[[], None]], Awaitable[M]]
"""How a batch sends one item: ``send(item, on_send)``; `on_send` is called as it goes out."""

KeyOf = Callable[[Q], str]
"""How a batch names each item's idempotency key: ``key(item) -> str``."""


def keyed_send(
    create: Callable[..., Awaitable[M]], key: KeyOf[Q] | None, resend_unknown: bool
) -> Send[Q, M]:
    """
    A batch's `Send` through `create`, under the idempotency key ``key(item)`` if given.

    A `key` that raises, or gives what cannot be a key, fails that item before it is sent.
    """
    if key is None:
        if resend_unknown:
            raise ConfigurationError("resend_unknown applies to idempotency keys: give key=")
        return create
    if not callable(key):
        raise ConfigurationError(
            f"key must be a callable (request -> str), got {type(key).__name__}"
        )

    def send(request: Q, on_send: Callable[[], None]) -> Awaitable[M]:
        return create(request, on_send, idempotency_key=key(request), resend_unknown=resend_unknown)

    return send


class BatchStream(Generic[Q, M]):
    """
    The results of a batch, as each item completes (an async iterator).

    A result is yielded as soon as it is known, whatever the input is doing: `concurrency`
    workers send (reading a plain iterable themselves; an async one has a reader task of its
    own), and the results come through a queue. At most `concurrency` items are in flight,
    and at most `concurrency` and a tenth more (22 for 20) are read and not yet yielded at
    any time, a result counting as yielded once it is handed to you while you wait for it (its
    worker may then read the next item before your loop body runs; should the task reading the
    stream be cancelled in that very step, that result is in `unfinished`). The tenth is room
    for finished results on their way to you, so that a worker need not wait for your loop.

    Close it early (``break`` inside ``async with``, or `aclose`) or cancel the task reading it,
    and the items still in flight are cancelled cleanly; their outcomes, `Outcome.UNKNOWN` for
    those already sent and `Outcome.NOT_SENT` for the others, are then in `unfinished`.

    If the input raises, every item read before it is still sent and yielded, then
    `BatchInputError` is raised, with the input's exception as its ``__cause__``.

    A 401, 402 or 403 stops the batch (`stopped_by`): nothing more is sent. To decide otherwise,
    give ``stops_batch(item, error)``, called with each failed item and its error.
    """

    def __init__(
        self,
        api: AsyncSchedulerAPI | None,
        requests: Iterable[Q] | AsyncIterable[Q],
        *,
        concurrency: int,
        send: Send[Q, M],
        stops_batch: Callable[[Q, BaseException], bool] | None = None,
        trace: BatchTrace | None = None,
    ) -> None:
        # How one item is sent: the endpoint's create, or the command line's per-row routing.
        self._send = send
        # Which failure stops the batch: by default a 401, 402 or 403, which every later item
        # would get too. The command line knows more (a 403 to one row's impersonated account
        # is that row's problem) and says so.
        self._stops_batch = stops_batch or _stops_batch
        self._requests = requests
        self._concurrency = check_concurrency(concurrency)
        # Its span and outcome counts, when the API object reports to OpenTelemetry.
        self._trace = trace
        self._stream = self._run() if trace is None else self._traced_run(trace)
        self.unfinished: list[BatchResult[Q, M]] = []
        """Items in flight when the stream was closed or cancelled, with their outcomes."""
        self.stopped_by: BaseException | None = None
        """The error (401, 402, 403, or as `stops_batch` chose) that stopped the batch early."""
        self._stopping = False
        self._reader: asyncio.Task[None] | None = None
        self._workers: list[asyncio.Task[None]] = []
        self._idle = 0
        self._busy: dict[asyncio.Task[None], _Item[Q, M]] = {}
        self._todo: asyncio.Queue[_Item[Q, M]] = asyncio.Queue()
        self._done = _Mailbox()
        # Taken for each item read, given back as its result is yielded.
        self._slots = InFlightLimit(read_bound(self._concurrency))
        self._read = 0
        self._yielded = 0
        self._delivered = 0
        self._reading = True
        self._source_error: BaseException | None = None
        # A plain iterable is read by the workers themselves, each when it takes a slot: no
        # reader task and no queue between them. An async one has a reader task of its own,
        # so that a slow input never holds back a worker or a result.
        self._plain = not isinstance(requests, AsyncIterable)
        self._iterator: Iterator[Q] | None = None
        """The plain input's iterator, made when the stream starts: the input's to raise."""

    def __aiter__(self) -> AsyncIterator[BatchResult[Q, M]]:
        # The generator itself: ``async for`` then steps it with no call of ours per result.
        return self._stream

    def __anext__(self) -> Awaitable[BatchResult[Q, M]]:
        # The generator's own awaitable: no coroutine of ours wrapped around it, per item.
        return self._stream.__anext__()

    def stop(self) -> None:
        """
        Wind the batch down gently: read no more input and send nothing new.

        Requests already sent finish and keep their real outcome (no `Outcome.UNKNOWN` from the
        stop itself). Items read but not yet sent, including those waiting for pacing, for a
        429 pause or for an in-flight slot, come out as `Outcome.NOT_SENT` and are never sent.
        Items not yet read from the input are left there. The iteration then ends normally.
        """
        if not self._stopping:
            self._stopping = True
            self._cancel_unsent()
            if self._reader is not None:
                self._reader.cancel()  # even mid-read: a slow input must not hold the end back
            # Said here, not left to the reader's clean-up: a task cancelled before its first
            # step never runs its coroutine, so that clean-up may never come.
            self._end_of_input()

    async def aclose(self) -> None:
        """Stop the batch: cancel what is in flight and record it in `unfinished`."""
        await self._stream.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- the reader of the input -------------------------------------------------------------

    async def _read_input(self) -> None:
        source = _aiter(self._requests)
        try:
            while not self._stopping:
                await self._slots.take()
                try:
                    request = await anext(source)
                except StopAsyncIteration:
                    return
                except Exception as error:  # the input's own failure, raised at the end
                    self._source_error = error
                    return
                except asyncio.CancelledError as error:
                    task = asyncio.current_task()
                    if task is not None and task.cancelling():
                        raise  # the batch is cancelling its reader
                    # The input's own: it awaited something cancelled. Not an end of input.
                    self._source_error = error
                    return
                item: _Item[Q, M] = _Item(self._read, request)
                self._read += 1
                if self.stopped_by is not None:
                    # Account for the rest of the input without sending any of it.
                    self._done.put_nowait(item.result(Outcome.NOT_SENT, error=self.stopped_by))
                    continue
                self._todo.put_nowait(item)
                if self._idle == 0 and len(self._workers) < self._concurrency:
                    self._workers.append(self._start(self._work()))
        finally:
            self._reading = False
            self._done.put_nowait(_WAKE)

    # -- the workers -------------------------------------------------------------------------

    def _end_of_input(self) -> None:
        if self._reading:
            self._reading = False
            self._done.put_nowait(_WAKE)

    async def _take(self) -> _Item[Q, M] | None:
        """The next item to send, or ``None`` once there is none for this worker."""
        iterator = self._iterator
        if iterator is None:  # an async input: its reader hands items over
            return await self._todo.get()
        slots = self._slots
        while True:
            if not slots.try_take():  # a free slot is taken without a round of the loop
                await slots.take()
            if not self._reading:
                slots.give()  # another worker's: it may be waiting for this one
                return None
            try:
                request = next(iterator)
            except StopIteration:
                slots.give()
                self._end_of_input()
                return None
            except (Exception, asyncio.CancelledError) as error:
                # The input's own failure, raised at the end. A CancelledError out of a
                # synchronous next() is the input's too: a task's own arrives only at an await.
                self._source_error = error
                slots.give()
                self._end_of_input()
                return None
            item: _Item[Q, M] = _Item(self._read, request)
            self._read += 1
            if self.stopped_by is None:
                return item
            # Account for the rest of the input without sending any of it.
            self._done.put_nowait(item.result(Outcome.NOT_SENT, error=self.stopped_by))

    async def _work(self) -> None:
        me = asyncio.current_task()
        assert me is not None  # noqa: S101 - always run as a task
        while True:
            self._idle += 1
            try:
                item = await self._take()
            finally:
                self._idle -= 1
            if item is None:
                return
            if self.stopped_by is not None or self._stopping:
                self._done.put_nowait(item.result(Outcome.NOT_SENT, error=self.stopped_by))
                continue
            if self._plain and self._idle == 0 and len(self._workers) < self._concurrency:
                self._workers.append(self._start(self._work()))
            self._busy[me] = item
            try:
                created = await self._send(item.request, item)
            except asyncio.CancelledError:
                if not item.stopped or me.uncancel() > 0:
                    raise  # the batch itself is cancelled: the item is left for _abandon
                result = item.result(item.unsent_outcome, error=self.stopped_by, attempts=item.sent)
            except Exception as error:
                outcome = outcome_of(error, sent=item.sent)
                result = item.result(outcome, error=error, attempts=item.sent)
            else:
                del self._busy[me]
                result = item.result(Outcome.CREATED, created=created, attempts=item.sent)
                if self._plain and self._done.awaited:
                    # Handed straight to the reader of results, who is waiting for it and takes
                    # nothing else first: it is delivered, and its slot is free now rather than
                    # a round of the loop later. This worker goes on to its next item in the
                    # same step, which keeps the garbage collector from running ten times as
                    # often under many requests in flight (a step that only frees, then one
                    # that only allocates, looks like growth to it).
                    self._delivered += 1
                    self._slots.give()
                self._done.put_nowait(result)
                continue
            del self._busy[me]
            failure = result.error
            if (
                failure is not None
                and self.stopped_by is None
                and self._stops_batch(item.request, failure)
            ):
                self.stopped_by = failure
                self._cancel_unsent()
                if self._reader is not None and isinstance(self._requests, AsyncIterable):
                    # An async input may be slow or endless: the stop does not wait for it, and
                    # what it has not given yet stays there. A plain iterable is still read to
                    # its end, every item reported NOT_SENT, which costs no waiting.
                    self._reader.cancel()
            self._done.put_nowait(result)

    def _cancel_unsent(self) -> None:
        """Cancel every item whose bytes have not gone out: it waits for pacing or a slot."""
        for worker, item in self._busy.items():
            if not item.on_wire and not item.stopped:  # waiting for pacing, a slot or a retry
                item.stopped = True
                worker.cancel()

    def _start(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        trace = self._trace
        if trace is None:
            task = asyncio.ensure_future(coroutine)
        else:  # each worker in a context of its own, the batch's span current in it
            task = asyncio.get_running_loop().create_task(coroutine, context=trace.context())
        task.add_done_callback(self._check_task)
        return task

    def _check_task(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self._done.put_nowait(_Crash(task.exception() or RuntimeError()))

    # -- the results, in the consumer's task --------------------------------------------------

    async def _traced_run(self, trace: BatchTrace) -> AsyncGenerator[BatchResult[Q, M], None]:
        """`_run` under the batch's span, each item's outcome counted as it is accounted for."""
        trace.start(self._concurrency)
        results = self._run()
        failure: BaseException | None = None
        try:
            async for result in results:
                trace.count(result.outcome, from_ledger=_from_ledger(result))
                yield result
        except GeneratorExit:
            raise  # closed early: not a failure of the batch
        except BaseException as error:
            failure = error
            raise
        finally:
            await results.aclose()  # now, so that `unfinished` is complete before it is counted
            for result in self.unfinished:
                trace.count(result.outcome, from_ledger=_from_ledger(result))
            trace.finish(failure)

    async def _run(self) -> AsyncGenerator[BatchResult[Q, M], None]:
        if not self._plain:
            self._reader = self._start(self._read_input())
        elif self._reading:  # not stopped before it started
            try:
                # Here, not when the stream is made: what iter() does or raises is the input's,
                # and comes when the stream is read, as every other item does.
                self._iterator = iter(self._requests)  # type: ignore[arg-type]
            except (Exception, asyncio.CancelledError) as error:
                self._source_error = error
                self._end_of_input()
            else:
                self._workers.append(self._start(self._work()))
        try:
            while self._reading or self._yielded < self._read:
                waiting = self._done.items
                while not waiting:
                    await self._done.wait()
                message = waiting.popleft()
                if type(message) is not BatchResult:
                    if isinstance(message, _Crash):
                        raise message.error
                    continue  # _WAKE
                self._yielded += 1
                if self._delivered:  # handed over while waiting: the first message taken since
                    self._delivered -= 1
                else:
                    self._slots.give()
                yield message
            # A task that read the input may have died of it (not an Exception of the input's:
            # a BaseException) after the end was seen, its crash not yet in the mailbox.
            for task in (self._reader, *self._workers):
                if task is not None and task.done() and not task.cancelled():
                    crash = task.exception()
                    if crash is not None:
                        raise crash
            if self._source_error is not None:
                raise _input_failed(self._source_error, self._read, None) from (self._source_error)
        finally:
            await self._abandon()

    async def _abandon(self) -> None:
        tasks = [task for task in (self._reader, *self._workers) if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        left: list[BatchResult[Q, M]] = []
        while self._done.items:
            message = self._done.items.popleft()
            if isinstance(message, BatchResult):
                left.append(message)
        while not self._todo.empty():
            item = self._todo.get_nowait()
            left.append(item.result(Outcome.NOT_SENT, error=asyncio.CancelledError()))
        for item in self._busy.values():  # cancelled on their way out, or already out
            left.append(
                item.result(item.unsent_outcome, error=asyncio.CancelledError(), attempts=item.sent)
            )
        self._busy.clear()
        self.unfinished.extend(sorted(left, key=lambda result: result.index))


def _input_failed(
    cause: BaseException, read: int, report: BatchReport[Q, M] | None
) -> BatchInputError:
    where = "are in its report" if report is not None else "were yielded before this error"
    return BatchInputError(
        f"the batch's input raised {type(cause).__name__} after {read} items ({cause}); "
        f"those {read} were sent as usual and their results {where}",
        report=report if report is not None else BatchReport(results=()),
        read=read,
    )


async def collect(stream: BatchStream[Q, M]) -> BatchReport[Q, M]:
    """
    Run `stream` to the end and report on every item, in input order.

    If the input raises, `BatchInputError` is raised with the report of every item read
    before the failure in its ``report``.
    """
    results: list[BatchResult[Q, M]] = []
    try:
        async with stream:
            async for result in stream:
                results.append(result)
    except BatchInputError as error:
        results.sort(key=lambda result: result.index)
        cause = error.__cause__
        assert cause is not None  # noqa: S101 - the stream always chains it
        raise _input_failed(cause, error.read, BatchReport(results=tuple(results))) from cause
    results.sort(key=lambda result: result.index)
    return BatchReport(results=tuple(results))
