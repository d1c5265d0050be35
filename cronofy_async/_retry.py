"""
Where a request is retried: what is safe to send again, how long to wait, and the loop.

Creating a scheduler request is not idempotent and Cronofy has no idempotency key, so only a
failure that proves the request was never processed is retried by default: could not connect,
connect timeout, no connection free in the pool, and 429. A read timeout, a connection lost after
sending and a 5xx may all hide a created invite; they are retried only if the caller opts in with
``RetryPolicy(retry_unsafe=True)`` and accepts that a recipient may be invited twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any, Final, Protocol, TypeVar

import attrs

from ._clock import Clock
from ._errors import (
    APIConnectionError,
    APIError,
    ConfigurationError,
    CronofyError,
    RateLimitError,
    ResponseFormatError,
    ServerError,
)
from ._ratelimit import Limiter, PauseGate, PausingLimiter

__all__ = ["Attempt", "Observer", "RetryPolicy", "retry_reason", "run_with_retries"]

logger: Final = logging.getLogger("cronofy_async")

T = TypeVar("T")


def _at_least(minimum: float, *, whole: bool = False) -> Any:
    def validate(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
        kinds = int if whole else int | float
        if not isinstance(value, kinds) or isinstance(value, bool) or value < minimum:
            kind = "a whole number" if whole else "a number"
            raise ConfigurationError(
                f"RetryPolicy.{attribute.name} must be {kind} >= {minimum:g}, got {value!r}"
            )

    return validate


def _positive_or_none(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and (
        not isinstance(value, int | float) or isinstance(value, bool) or value <= 0
    ):
        raise ConfigurationError(
            f"RetryPolicy.{attribute.name} must be a positive number of seconds or None, "
            f"got {value!r}"
        )


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """
    When and how an `AsyncSchedulerAPI` retries a failed request.

    The wait before retry *n* is ``min(wait_max, wait_initial * wait_exp_base ** (n - 1))``,
    shortened at random by up to `wait_jitter` of itself so that clients do not retry in
    lockstep: about 0.5 s, 1 s, 2 s... capped at 8 s. A 429 waits what the server asked for
    (``Retry-After`` or ``retry-after-ms``) instead, up to `max_retry_after`.

    >>> RetryPolicy(attempts=5, deadline=30.0).attempts
    5
    """

    attempts: int = attrs.field(default=3, validator=_at_least(1, whole=True))
    """Sends at most, the first one included; 1 means never retry."""
    wait_initial: float = attrs.field(default=0.5, validator=_at_least(0))
    """Seconds before the first retry, before jitter."""
    wait_max: float = attrs.field(default=8.0, validator=_at_least(0))
    """The longest wait between two attempts (backoff only; see `max_retry_after`)."""
    wait_exp_base: float = attrs.field(default=2.0, validator=_at_least(1))
    """How much each wait grows over the previous one."""
    wait_jitter: float = attrs.field(default=0.25, validator=_at_least(0))
    """The fraction of a wait that is taken off at random (0 to turn jitter off)."""
    deadline: float | None = attrs.field(default=None, validator=_positive_or_none)
    """Seconds per call after which no retry starts (an attempt under way is not cut short)."""
    max_retry_after: float = attrs.field(default=60.0, validator=_at_least(0))
    """The longest server-requested wait honoured; a longer one raises `RateLimitError`."""
    retry_unsafe: bool = False
    """
    Also retry failures after which the invite may exist: read/write timeouts, a connection
    lost after sending, and 5xx. Each such retry can invite the same person twice.
    """

    def __attrs_post_init__(self) -> None:
        if self.wait_jitter > 1:
            raise ConfigurationError(
                f"RetryPolicy.wait_jitter must be between 0 and 1, got {self.wait_jitter!r}"
            )

    def backoff(self, retry: int, rng: random.Random) -> float:
        """The wait before retry number `retry` (1 for the first retry)."""
        wait = min(self.wait_max, self.wait_initial * self.wait_exp_base ** (retry - 1))
        return wait * (1 - self.wait_jitter * rng.random())


NO_RETRY: Final = RetryPolicy(attempts=1)


def retry_reason(error: APIError, policy: RetryPolicy, *, idempotent: bool = False) -> str | None:
    """
    Why `error` may be retried under `policy`, or ``None`` if it must not be.

    An `idempotent` operation (query, cancel, list, show, update) may also be retried after a
    failure that hides whether it was processed: doing it twice does what doing it once does.
    """
    if isinstance(error, RateLimitError):
        return "rate limited (429)"
    repeat_ok = idempotent or policy.retry_unsafe
    if isinstance(error, APIConnectionError):
        cause = type(error.__cause__).__name__ if error.__cause__ else type(error).__name__
        if not error.outcome_unknown:
            return f"not sent ({cause})"
        return f"outcome unknown ({cause})" if repeat_ok else None
    # A malformed 2xx means the call was processed: a create sent again is a certain duplicate,
    # and a read would only get the same answer again.
    if isinstance(error, ResponseFormatError):
        return None
    if repeat_ok and isinstance(error, ServerError):
        return f"outcome unknown ({error.status_code})"
    return None


def _paused_error(
    gate: PauseGate, policy: RetryPolicy, attempts: int, *, outcome_unknown: bool
) -> RateLimitError:
    left = gate.remaining()
    cause = gate.cause
    assert cause is not None  # a pause is only ever set by a 429  # noqa: S101
    return RateLimitError(
        f"not sent: a 429 asked every request to wait {left:.0f} s more, longer than "
        f"max_retry_after={policy.max_retry_after:g} s",
        response=cause.response,
        retry_after=left,
        attempts=attempts,
        outcome_unknown=outcome_unknown,
    )


class _Paused(Exception):  # noqa: N818 - a signal inside the loop, never raised out of it
    """A 429 paused every request while this one waited for pacing or a slot: wait it out."""


Attempt = Callable[[Callable[[], Awaitable[None]]], Awaitable[T]]
"""
One send and parse: ``attempt(ready)``.

The attempt awaits ``ready()`` once it holds its in-flight slot, immediately before the bytes
go out, with no ``await`` between its return and the send. ``ready()`` waits for pacing (after
the slot, so that the moment a request is admitted is the moment it leaves: admitted requests
never bunch up behind a slow one), then counts the request as sent; it raises instead if a
429 pause began meanwhile.
"""


class SendWatcher(Protocol):
    """
    What `on_send` may also be: told when each attempt settles.

    ``settled(maybe_processed)`` follows every failed attempt, with whether it may have been
    processed, so that a batch knows an item waiting to be retried after a 429 is not on the
    wire (a stop may cancel it), and whether it may exist.
    """

    def __call__(self) -> None: ...

    def settled(self, maybe_processed: bool) -> None: ...


class Observer(Protocol):
    """What a call's telemetry is told as it runs (`cronofy_async._otel.CallTrace`)."""

    maybe_processed: bool

    def waited_for(self, seconds: float) -> None: ...

    def pausing(self, attempt: int, seconds: float) -> None: ...

    def retrying(self, attempt: int, delay: float, reason: str, error: BaseException) -> None: ...

    def sending(self) -> None: ...

    def answered(self, status: int) -> None: ...

    def attempt_done(self, error: BaseException | None = None) -> None: ...


class _Ready:
    """
    What an attempt awaits right before its bytes go out, counting the sends.

    An object rather than a closure: one per call, walked by the garbage collector as one.
    """

    __slots__ = ("_clock", "_gate", "_limiter", "_observer", "_on_send", "on_wire", "sent")

    def __init__(
        self,
        limiter: Limiter | None,
        gate: PauseGate,
        on_send: Callable[[], None] | None,
        observer: Observer | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._limiter = limiter
        self._gate = gate
        self._on_send = on_send
        self._observer = observer
        self._clock = clock
        self.sent = 0
        self.on_wire = False
        """Whether an attempt's bytes may be out now (counted, not yet settled)."""

    async def __call__(self) -> None:
        observer = self._observer
        if self._limiter is not None:
            if observer is None:
                await self._limiter.acquire()
            else:
                clock = self._clock
                assert clock is not None  # given with every observer  # noqa: S101
                began = clock.monotonic()
                await self._limiter.acquire()
                observer.waited_for(clock.monotonic() - began)
        # A 429 that arrived while this request waited for pacing or a slot holds it too.
        if self._gate.remaining() > 0:
            raise _Paused
        self.sent += 1
        self.on_wire = True
        if self._on_send is not None:
            self._on_send()  # no await between this and the send: the caller's count stays exact
        if observer is not None:
            observer.sending()


def _attempts(count: int) -> str:
    return f"{count} attempt" if count == 1 else f"{count} attempts"


async def run_with_retries(
    attempt: Attempt[T],
    *,
    policy: RetryPolicy,
    limiter: Limiter | None,
    gate: PauseGate,
    clock: Clock,
    rng: random.Random,
    what: str,
    on_send: Callable[[], None] | None = None,
    idempotent: bool = False,
    mutates: bool = True,
    observer: Observer | None = None,
) -> T:
    """
    Run `attempt` (one send and parse) until it succeeds or must not be retried.

    Before every send: wait out any 429 pause, then whatever the attempt waits for (an
    in-flight slot), then a slot from the limiter; then the pause is checked once more, and
    `on_send` called, right before the bytes go out. A request cancelled at any earlier
    point was never sent. The error raised at the end records how many sends were made in
    its ``attempts``, and says ``outcome_unknown=True`` if *any* attempt may have been
    processed (for an operation that `mutates`; for one that does not, never).
    """
    deadline = policy.deadline
    start = clock.monotonic() if deadline is not None else 0.0  # read only with a deadline
    maybe_processed = False

    ready = _Ready(limiter, gate, on_send, observer, clock)
    # Set when this call's own 429 asked for the pause: its wait is told even when it is 0 s.
    held = False

    try:
        while True:
            paused = gate.remaining()
            if paused > 0 or held:
                held = False
                if paused > policy.max_retry_after:
                    raise _paused_error(
                        gate, policy, ready.sent, outcome_unknown=mutates and maybe_processed
                    )
                logger.info(
                    "%s: waiting %.2f s for a 429 pause before attempt %d",
                    what,
                    paused,
                    ready.sent + 1,
                )
                if observer is None:
                    await gate.wait()
                else:
                    observer.pausing(ready.sent + 1, paused)
                    began = clock.monotonic()
                    await gate.wait()
                    observer.waited_for(clock.monotonic() - began)
            try:
                result = await attempt(ready)
            except _Paused:
                continue  # wait the pause out (and for pacing again), as if it had come first
            except APIError as error:
                ready.on_wire = False
                if observer is not None:
                    observer.attempt_done(error)
                # Looked up on a failure only: a bound method per call is garbage on the usual
                # path.
                settled = getattr(on_send, "settled", None)
                if settled is not None:
                    settled(error.outcome_unknown)
                error.attempts = ready.sent
                reason = retry_reason(error, policy, idempotent=idempotent)
                maybe_processed = maybe_processed or error.outcome_unknown
                # What the caller must know is whether the call as a whole may have taken
                # effect, not what this attempt alone says.
                error.outcome_unknown = mutates and maybe_processed
                if observer is not None:
                    observer.maybe_processed = error.outcome_unknown
                pause = None
                if isinstance(error, RateLimitError):
                    # Every request of this API object waits this out, not just this one.
                    pause = error.retry_after
                    if pause is None:
                        pause = policy.backoff(ready.sent, rng)
                    logger.warning(
                        "%s: attempt %d answered 429; every request of this API object "
                        "pauses %.2f s",
                        what,
                        ready.sent,
                        pause,
                    )
                    gate.pause(pause, cause=error)
                    if isinstance(limiter, PausingLimiter):  # shared: pause every process
                        with contextlib.suppress(CronofyError):
                            # A limiter that cannot record the pause fails the next acquire
                            # anyway, before anything is sent; this call's error stays the
                            # 429's.
                            await limiter.pause(pause)
                if reason is None or ready.sent >= policy.attempts:
                    raise
                if pause is not None and pause > policy.max_retry_after:
                    raise
                delay = pause if pause is not None else policy.backoff(ready.sent, rng)
                if deadline is not None and clock.monotonic() + delay - start > deadline:
                    raise
                logger.info(
                    "retrying %s in %.2f s: attempt %d of %d failed, %s",
                    what,
                    delay,
                    ready.sent,
                    policy.attempts,
                    reason,
                )
                if observer is not None:
                    observer.retrying(ready.sent, delay, reason, error)
                if pause is None:
                    await clock.sleep(delay)
                else:
                    held = True
            else:
                if observer is not None:
                    observer.attempt_done()
                return result
    except APIError as error:
        if error.outcome_unknown:
            logger.warning(
                "%s: outcome unknown after %s (%s): it may have been processed; check before "
                "sending it again",
                what,
                _attempts(ready.sent),
                type(error).__name__,
            )
        raise
    except asyncio.CancelledError:
        if mutates and ready.on_wire:
            logger.warning(
                "%s: cancelled while attempt %d was on the wire: outcome unknown, it may have "
                "been processed",
                what,
                ready.sent,
            )
        elif mutates and maybe_processed:
            logger.warning(
                "%s: cancelled after %s, the outcome unknown: it may have been processed",
                what,
                _attempts(ready.sent),
            )
        raise
