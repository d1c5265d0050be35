"""
Concurrent batch creation: every item read lazily, sent once, and accounted for.

The stream reads an item from the input only when a slot is free, so at most `concurrency` items
are read ahead or in flight, whatever the size of the input. Each item's outcome says whether its
invite exists: `CREATED`, `FAILED` (it does not), `UNKNOWN` (it may: do not re-send blindly) or
`NOT_SENT` (it never left, safe to send later).
"""

from __future__ import annotations

import asyncio
import enum
from collections import Counter
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Mapping,
)
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Generic, Self, TypeVar

import attrs

from ._errors import (
    APIError,
    AuthenticationError,
    ClientClosedError,
    ConfigurationError,
    CronofyError,
    PaymentRequiredError,
    PermissionDeniedError,
)
from ._models import SchedulerRequest

if TYPE_CHECKING:
    from ._client import AsyncSchedulerAPI

Q = TypeVar("Q")
"""The kind of item a batch creates from (`NewSchedulerRequest`, `NewSchedulingRequest`)."""
M = TypeVar("M")
"""The kind of model a created item gives (`SchedulerRequest`, `SchedulingRequest`)."""

__all__ = [
    "DEFAULT_CONCURRENCY",
    "BatchReport",
    "BatchResult",
    "BatchStream",
    "Outcome",
    "Send",
    "collect",
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


def outcome_of(error: BaseException) -> Outcome:
    """The outcome an exception raised while creating one item amounts to."""
    if isinstance(error, ClientClosedError):
        return Outcome.NOT_SENT
    if isinstance(error, APIError):
        return Outcome.UNKNOWN if error.outcome_unknown else Outcome.FAILED
    if isinstance(error, CronofyError):  # refused before sending: PayloadError and the like
        return Outcome.FAILED
    return Outcome.UNKNOWN  # something unforeseen mid-flight: assume the worst


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

    def on_send(self) -> None:
        self.sent += 1

    def result(self, outcome: Outcome, **fields: Any) -> BatchResult[Q, M]:
        return BatchResult(index=self.index, request=self.request, outcome=outcome, **fields)


Send = Callable[[Q, Callable[[], None]], Awaitable[M]]
"""How a batch sends one item: ``send(item, on_send)``; `on_send` is called as it goes out."""


class BatchStream(Generic[Q, M]):
    """
    The results of a batch, as each item completes (an async iterator).

    Close it early (``break`` inside ``async with``, or `aclose`) or cancel the task reading it,
    and the items still in flight are cancelled cleanly; their outcomes, `Outcome.UNKNOWN` for
    those already sent and `Outcome.NOT_SENT` for the others, are then in `unfinished`.
    """

    def __init__(
        self,
        api: AsyncSchedulerAPI | None,
        requests: Iterable[Q] | AsyncIterable[Q],
        *,
        concurrency: int,
        send: Send[Q, M],
    ) -> None:
        # How one item is sent: the endpoint's create, or the command line's per-row routing.
        self._send = send
        self._source = _aiter(requests)
        self._concurrency = check_concurrency(concurrency)
        self._pending: dict[asyncio.Task[BatchResult[Q, M]], _Item[Q, M]] = {}
        self._stream = self._run()
        self.unfinished: list[BatchResult[Q, M]] = []
        """Items in flight when the stream was closed or cancelled, with their outcomes."""
        self.stopped_by: BaseException | None = None
        """The error (401, 402, 403) that stopped the batch early, if one did."""
        self._stopping = False

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> BatchResult[Q, M]:
        return await self._stream.__anext__()

    def stop(self) -> None:
        """
        Wind the batch down gently: read no more input and send nothing new.

        Requests already sent finish and keep their real outcome (no `Outcome.UNKNOWN` from the
        stop itself); items read but not yet sent come out as `Outcome.NOT_SENT`. Items not
        yet read from the input are left there. The iteration then ends normally.
        """
        if not self._stopping:
            self._stopping = True
            self._cancel_unsent(self._pending)

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

    async def _one(self, item: _Item[Q, M]) -> BatchResult[Q, M]:
        try:
            created = await self._send(item.request, item.on_send)
        except Exception as error:
            return item.result(outcome_of(error), error=error, attempts=item.sent)
        return item.result(Outcome.CREATED, created=created, attempts=item.sent)

    async def _run(self) -> AsyncGenerator[BatchResult[Q, M], None]:
        pending = self._pending
        next_index = 0
        exhausted = False
        source_error: BaseException | None = None
        try:
            while True:
                while self._may_read(exhausted) and len(pending) < self._concurrency:
                    try:
                        request = await anext(self._source)
                    except StopAsyncIteration:
                        exhausted = True
                        break
                    except Exception as error:
                        source_error, exhausted = error, True
                        break
                    item: _Item[Q, M] = _Item(next_index, request)
                    next_index += 1
                    pending[asyncio.ensure_future(self._one(item))] = item
                if not pending:
                    break
                done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in sorted(done, key=lambda t: pending[t].index):
                    item = pending.pop(task)
                    if task.cancelled():  # not yet sent when the batch was stopped
                        yield item.result(Outcome.NOT_SENT, error=self.stopped_by)
                        continue
                    result = task.result()
                    if isinstance(result.error, _FATAL) and self.stopped_by is None:
                        self.stopped_by = result.error
                        self._cancel_unsent(pending)
                    yield result
            if source_error is not None:
                raise source_error
            if self.stopped_by is not None:
                # Account for the rest of the input without sending any of it.
                async for request in self._source:
                    yield BatchResult(
                        index=next_index,
                        request=request,
                        outcome=Outcome.NOT_SENT,
                        error=self.stopped_by,
                    )
                    next_index += 1
        finally:
            await self._abandon(pending)

    def _may_read(self, exhausted: bool) -> bool:
        return not exhausted and self.stopped_by is None and not self._stopping

    def _cancel_unsent(self, pending: dict[asyncio.Task[BatchResult[Q, M]], _Item[Q, M]]) -> None:
        for task, item in pending.items():
            if item.sent == 0:
                task.cancel()

    async def _abandon(self, pending: dict[asyncio.Task[BatchResult[Q, M]], _Item[Q, M]]) -> None:
        if not pending:
            return
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for task, item in sorted(pending.items(), key=lambda pair: pair[1].index):
            if task.cancelled():
                outcome = Outcome.UNKNOWN if item.sent else Outcome.NOT_SENT
                self.unfinished.append(
                    item.result(outcome, error=asyncio.CancelledError(), attempts=item.sent)
                )
            else:  # it finished just as we cancelled
                self.unfinished.append(task.result())


async def collect(stream: BatchStream[Q, M]) -> BatchReport[Q, M]:
    """Run `stream` to the end and report on every item, in input order."""
    async with stream:
        results = [result async for result in stream]
    results.sort(key=lambda result: result.index)
    return BatchReport(results=tuple(results))
