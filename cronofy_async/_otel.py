"""
OpenTelemetry: the spans and metrics of calls, attempts and batches (the ``otel`` extra).

Imported only once the application may have a provider: the client looks for one at most
once every `GLOBAL_CHECK_INTERVAL` seconds while it has none, and sends exactly as before
without one. What is reported:

- one INTERNAL span per logical call (``cronofy.create_scheduler_request``), with a CLIENT span
  per HTTP attempt under it, named and described as the HTTP client semantic conventions say;
  a retry and a 429 pause are events of the call's span;
- one span per batch, the items' calls under it, with the count of each outcome;
- ``cronofy.client.requests``, ``cronofy.client.request.duration``,
  ``cronofy.client.rate_limit.wait``, ``cronofy.client.retries``, ``cronofy.client.outcomes``.

Never the secret, a header, a body, an idempotency key or a recipient's email (unless the
application asks for the emails with ``record_recipients=True``): an attribute holds names
of operations, data centers, status codes, error types, counts, durations and URLs whose
credentials and query values are redacted.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final, TypeVar

import httpx
from opentelemetry import context, metrics, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from ._batch import Outcome, answered_by_ledger, outcome_of
from ._errors import APIConnectionError, APIStatusError, ConfigurationError
from ._operation import loads
from ._version import __version__

if TYPE_CHECKING:
    from ._operation import Operation

__all__ = [
    "GLOBAL_CHECK_INTERVAL",
    "BatchTrace",
    "CallTrace",
    "Telemetry",
    "attempt_error_type",
    "error_type",
    "from_globals",
    "redact_url",
]

T = TypeVar("T")

GLOBAL_CHECK_INTERVAL: Final[float] = 1.0
"""Seconds between two looks for a global provider, while there is none (a module global)."""

SCOPE: Final = "cronofy_async"

# Where the HTTP instrumentations (httpx's, aiohttp's) look to stay quiet: our CLIENT span
# already describes the request, and a second one would describe it twice. Private in the
# API, and shared by every instrumentation for this purpose; without it, nothing is hidden.
_SUPPRESS_HTTP: Final[str | None] = getattr(context, "_SUPPRESS_HTTP_INSTRUMENTATION_KEY", None)

_IN_BATCH: Final[contextvars.ContextVar[bool]] = contextvars.ContextVar(
    "cronofy_async_in_batch", default=False
)
"""Set in a batch's workers: the batch counts its items' outcomes, not their calls."""

_DURATION_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


def error_type(error: BaseException) -> str:
    """
    What a call's ``error.type`` says of `error`: its package and class, never its message.

    >>> error_type(KeyError("x"))
    'builtins.KeyError'
    """
    kind = type(error)
    return f"{kind.__module__.partition('.')[0]}.{kind.__qualname__}"


def attempt_error_type(error: BaseException) -> str:
    """
    What an HTTP attempt's ``error.type`` says: a status code, or the error under it.

    The status code of an error status, the httpx error under a connection error
    (``httpx.ConnectError``), else as `error_type`.

    >>> attempt_error_type(KeyError("x"))
    'builtins.KeyError'
    """
    if isinstance(error, APIStatusError):
        return str(error.status_code)
    if isinstance(error, APIConnectionError) and error.__cause__ is not None:
        return error_type(error.__cause__)
    return error_type(error)


def redact_url(url: httpx.URL) -> str:
    """
    `url` as ``url.full`` shows it: user, password and query values ``REDACTED``.

    (A page link's token is left out before: the call reports the list's URL instead.)

    >>> redact_url(httpx.URL("https://u:p@api.cronofy.com/v1/x?sig=abc"))
    'https://REDACTED:REDACTED@api.cronofy.com/v1/x?sig=REDACTED'
    """
    if url.userinfo:
        url = url.copy_with(username="REDACTED", password="REDACTED")  # noqa: S106
    if url.query:
        params = [(name, "REDACTED") for name, _ in url.params.multi_items()]
        url = url.copy_with(params=params)
    return str(url)


def _server(url: httpx.URL) -> tuple[str, int]:
    port = url.port
    if port is None:
        port = 443 if url.scheme == "https" else 80
    return url.host, port


def _real_tracer_provider() -> trace.TracerProvider | None:
    provider = trace.get_tracer_provider()
    if isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        return None
    return provider


def _real_meter_provider() -> metrics.MeterProvider | None:
    provider = metrics.get_meter_provider()
    # The proxy handed out before an application sets one has no public class of its own.
    if isinstance(provider, metrics.NoOpMeterProvider) or type(provider).__name__.startswith(
        "_Proxy"
    ):
        return None
    return provider


def from_globals(
    *, record_recipients: bool, current: Telemetry | None = None
) -> tuple[Telemetry | None, bool]:
    """
    Telemetry to the application's global providers, and whether both are set.

    ``None`` while it has set none; once both are set, there is nothing left to look for.
    `current`, the telemetry found by an earlier look, is kept while the globals are the same.
    """
    tracer_provider = _real_tracer_provider()
    meter_provider = _real_meter_provider()
    complete = tracer_provider is not None and meter_provider is not None
    if tracer_provider is None and meter_provider is None:
        return None, False
    if current is not None and current.providers == (tracer_provider, meter_provider):
        return current, complete
    telemetry = Telemetry(
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        record_recipients=record_recipients,
    )
    return telemetry, complete


def check_providers(tracer_provider: object, meter_provider: object) -> None:
    """Refuse what is not a provider, naming the keyword (a `ConfigurationError`)."""
    if tracer_provider is not None and not isinstance(tracer_provider, trace.TracerProvider):
        raise ConfigurationError(
            "tracer_provider must be an opentelemetry.trace.TracerProvider, got "
            f"{type(tracer_provider).__name__}"
        )
    if meter_provider is not None and not isinstance(meter_provider, metrics.MeterProvider):
        raise ConfigurationError(
            "meter_provider must be an opentelemetry.metrics.MeterProvider, got "
            f"{type(meter_provider).__name__}"
        )


class Telemetry:
    """Where one API object (and its views) reports: a tracer, the instruments, the options."""

    __slots__ = (
        "_urls",
        "duration",
        "outcomes",
        "providers",
        "record_recipients",
        "requests",
        "retries",
        "tracer",
        "wait",
    )

    def __init__(
        self,
        *,
        tracer_provider: trace.TracerProvider | None,
        meter_provider: metrics.MeterProvider | None,
        record_recipients: bool = False,
    ) -> None:
        self.record_recipients = record_recipients
        self.providers = (tracer_provider, meter_provider)
        self.tracer = (
            tracer_provider.get_tracer(SCOPE, __version__) if tracer_provider is not None else None
        )
        meter = (meter_provider or metrics.NoOpMeterProvider()).get_meter(SCOPE, __version__)
        self.requests = meter.create_counter(
            "cronofy.client.requests",
            unit="{request}",
            description="HTTP requests sent to Cronofy, by status code or error type",
        )
        self.duration = meter.create_histogram(
            "cronofy.client.request.duration",
            unit="s",
            description="How long each HTTP request to Cronofy took, answer read",
            explicit_bucket_boundaries_advisory=list(_DURATION_BUCKETS),
        )
        self.wait = meter.create_histogram(
            "cronofy.client.rate_limit.wait",
            unit="s",
            description="How long a call was held by pacing and 429 pauses before its sends",
            explicit_bucket_boundaries_advisory=[0, *_DURATION_BUCKETS],
        )
        self.retries = meter.create_counter(
            "cronofy.client.retries",
            unit="{retry}",
            description="Requests sent again after a failed attempt, by error type",
        )
        self.outcomes = meter.create_counter(
            "cronofy.client.outcomes",
            unit="{request}",
            description="What became of each create: created, failed, unknown, not_sent",
        )
        self._urls: dict[str, tuple[str, str, int]] = {}

    def url(self, url: httpx.URL, text: str) -> tuple[str, str, int]:
        """``url.full``, ``server.address`` and ``server.port`` of `url`, kept per API path."""
        known = self._urls.get(text)
        if known is None:
            host, port = _server(url)
            known = (redact_url(url), host, port)
            if not url.query and len(self._urls) < 1024:  # page links are one-off: not kept
                self._urls[text] = known
        return known

    async def call(
        self,
        operation: Operation[Any],
        *,
        data_center: str,
        url: httpx.URL,
        url_text: str,
        clock: Callable[[], float],
        run: Callable[[CallTrace], Awaitable[T]],
        keyed: bool = False,
    ) -> T:
        """Run one logical call (``run(observer)``) under its span, and count it."""
        observer = CallTrace(self, operation, data_center, url, url_text, clock, keyed=keyed)
        token = observer.start()
        try:
            result = await run(observer)
        except BaseException as error:
            observer.finish(error=error)
            raise
        else:
            observer.finish(result=result)
            return result
        finally:
            if token is not None:
                context.detach(token)

    def batch(
        self,
        name: str,
        *,
        operation: str,
        data_center: str,
        current: Callable[[], Telemetry | None] | None = None,
    ) -> BatchTrace:
        """
        The trace of one batch of `operation` calls, started when the batch starts.

        `current` gives the telemetry of the moment, which each item's outcome is counted
        to: a meter provider set while a long batch runs counts the items after it.
        """
        return BatchTrace(self, name, operation, data_center, current)


def _creates(operation: Operation[Any]) -> bool:
    # Only a create changes something and cannot be repeated: what becomes of it is an outcome.
    return operation.mutates and not operation.idempotent


def _recipients(body: bytes | None) -> tuple[str, ...]:
    try:
        recipients = loads(body or b"{}").get("recipients") or ()
        return tuple(str(r["email"]) for r in recipients if isinstance(r, dict) and "email" in r)
    except (ValueError, AttributeError, TypeError):  # pragma: no cover - our own body
        return ()


class CallTrace:
    """
    One logical call as it is reported: the observer `run_with_retries` tells what happens.

    ``sending`` opens the CLIENT span of an attempt at the last moment before its bytes go
    out, ``answered`` gives it a status, ``attempt_done`` closes it; ``waited`` adds time held
    by pacing or a 429 pause; ``retrying`` and ``pausing`` are events.
    """

    __slots__ = (
        "_attempt",
        "_attempt_started",
        "_base",
        "_clock",
        "_keyed",
        "_operation",
        "_status",
        "_suppress",
        "_telemetry",
        "_url",
        "maybe_processed",
        "sent",
        "span",
        "waited",
    )

    def __init__(
        self,
        telemetry: Telemetry,
        operation: Operation[Any],
        data_center: str,
        url: httpx.URL,
        url_text: str,
        clock: Callable[[], float],
        *,
        keyed: bool,
    ) -> None:
        self._telemetry = telemetry
        self._operation = operation
        self._base = {"cronofy.operation": operation.name, "cronofy.data_center": data_center}
        self._url = telemetry.url(url, url_text)
        self._clock = clock
        self._keyed = keyed
        self.span: trace.Span | None = None
        self.sent = 0
        self.waited = 0.0
        self.maybe_processed = False
        self._attempt: trace.Span | None = None
        self._attempt_started = 0.0
        self._status: int | None = None
        self._suppress: Any = None

    def start(self) -> Any:
        """Open the call's span and make it current; the token to detach it with."""
        tracer = self._telemetry.tracer
        if tracer is None:
            return None
        self.span = span = tracer.start_span(
            f"cronofy.{self._operation.name}",
            kind=SpanKind.INTERNAL,
            attributes=self._base,
            record_exception=False,
            set_status_on_exception=False,
        )
        if self._telemetry.record_recipients:
            span.set_attribute("cronofy.recipients", _recipients(self._operation.body))
        return context.attach(trace.set_span_in_context(span))

    # -- told by the pipeline -----------------------------------------------------------------

    def waited_for(self, seconds: float) -> None:
        """Pacing or a 429 pause held this call `seconds` before a send."""
        self.waited += seconds

    def pausing(self, attempt: int, seconds: float) -> None:
        """A 429 pause holds `attempt` back for `seconds`."""
        if self.span is not None:
            self.span.add_event(
                "cronofy.rate_limit_pause", {"cronofy.attempt": attempt, "cronofy.wait_s": seconds}
            )

    def retrying(self, attempt: int, delay: float, reason: str, error: BaseException) -> None:
        """`attempt` failed with `error` and is sent again in `delay` seconds."""
        kind = attempt_error_type(error)
        self._telemetry.retries.add(1, {**self._base, "error.type": kind})
        if self.span is not None:
            self.span.add_event(
                "cronofy.retry",
                {
                    "cronofy.attempt": attempt,
                    "cronofy.retry.delay_s": delay,
                    "cronofy.retry.reason": reason,
                    "error.type": kind,
                },
            )

    def sending(self) -> None:
        """An attempt's bytes go out now: open its CLIENT span."""
        self.sent += 1
        self._status = None
        self._attempt_started = time.perf_counter()
        full, host, port = self._url
        method = self._operation.method
        attributes: dict[str, Any] = {
            "http.request.method": method,
            "server.address": host,
            "server.port": port,
            "url.full": full,
        }
        if self.sent > 1:
            attributes["http.request.resend_count"] = self.sent - 1
        tracer = self._telemetry.tracer
        if tracer is not None:
            parent = trace.set_span_in_context(self.span) if self.span is not None else None
            self._attempt = tracer.start_span(
                method,
                context=parent,
                kind=SpanKind.CLIENT,
                attributes=attributes,
                record_exception=False,
                set_status_on_exception=False,
            )
        if _SUPPRESS_HTTP is not None and self._attempt is not None:
            # Our CLIENT span is this request's: an HTTP instrumentation's would repeat it.
            # Without one of ours (metrics only), the instrumentation's is the only one.
            self._suppress = context.attach(context.set_value(_SUPPRESS_HTTP, True))

    def answered(self, status: int) -> None:
        """The attempt's answer has status `status`."""
        self._status = status

    def attempt_done(self, error: BaseException | None = None) -> None:
        """The attempt ended: answered and read, or failed with `error`."""
        if self._suppress is not None:
            context.detach(self._suppress)
            self._suppress = None
        if self._attempt_started == 0.0:
            return  # no attempt open (it failed before it was sent)
        if getattr(error, "outcome_unknown", False):
            self.maybe_processed = True
        elapsed = time.perf_counter() - self._attempt_started
        self._attempt_started = 0.0
        status = self._status
        attributes: dict[str, Any] = dict(self._base)
        kind: str | None = None
        if status is not None:
            attributes["http.response.status_code"] = status
        if error is not None:
            kind = (
                str(status) if status is not None and status >= 400 else attempt_error_type(error)
            )
            attributes["error.type"] = kind
        self._telemetry.requests.add(1, attributes)
        self._telemetry.duration.record(
            elapsed, {**attributes, "http.request.method": self._operation.method}
        )
        span = self._attempt
        if span is None:
            return
        self._attempt = None
        if status is not None:
            span.set_attribute("http.response.status_code", status)
        if kind is not None:
            span.set_attribute("error.type", kind)
            span.set_status(Status(StatusCode.ERROR, kind))
        span.end()

    # -- the end of the call ------------------------------------------------------------------

    def finish(self, *, result: object = None, error: BaseException | None = None) -> None:
        """The call ended with `result`, or with `error`: close what is open and count it."""
        on_wire = self._attempt_started != 0.0
        if on_wire:
            # Cancelled (or broken by something unforeseen) with its bytes out.
            self.attempt_done(error)
        operation = self._operation
        replayed = self._keyed and error is None and self.sent == 0
        from_ledger = replayed or answered_by_ledger(error, self.sent)
        cancelled = isinstance(error, asyncio.CancelledError)
        unknown = bool(getattr(error, "outcome_unknown", False)) or (
            cancelled and operation.mutates and (on_wire or self.maybe_processed)
        )
        outcome: Outcome | None = None
        if _creates(operation):
            if error is None:
                outcome = Outcome.CREATED
            elif cancelled:
                # As a batch says of its items: only what may have left may exist.
                outcome = Outcome.UNKNOWN if unknown else Outcome.NOT_SENT
            else:
                outcome = outcome_of(error, sent=self.sent)
            unknown = outcome is Outcome.UNKNOWN
            if not _IN_BATCH.get() and not from_ledger:
                self._telemetry.outcomes.add(1, {**self._base, "cronofy.outcome": outcome.value})
        if not from_ledger:  # answered without a send: neither paced nor a new create
            self._telemetry.wait.record(self.waited, self._base)
        span = self.span
        if span is None:
            return
        attributes: dict[str, Any] = {
            "cronofy.attempts": self.sent,
            "cronofy.outcome_unknown": unknown,
            "cronofy.pacing_wait_s": self.waited,
        }
        if outcome is not None:
            attributes["cronofy.outcome"] = outcome.value
        if self._keyed:
            attributes["cronofy.replayed"] = replayed
        if error is None:
            request_id = getattr(result, "scheduler_request_id", None) or getattr(
                result, "scheduling_request_id", None
            )
            if isinstance(request_id, str) and _creates(operation):
                attributes["cronofy.request_id"] = request_id
        else:
            kind = error_type(error)
            attributes["error.type"] = kind
            span.set_status(Status(StatusCode.ERROR, kind))
        span.set_attributes(attributes)
        span.end()


class BatchTrace:
    """One batch as it is reported: its span, the context its workers run in, its counts."""

    __slots__ = (
        "_base",
        "_current",
        "_name",
        "_telemetry",
        "counts",
        "from_ledger",
        "span",
        "worker_context",
    )

    def __init__(
        self,
        telemetry: Telemetry,
        name: str,
        operation: str,
        data_center: str,
        current: Callable[[], Telemetry | None] | None = None,
    ) -> None:
        self._telemetry = telemetry
        self._current = current
        self._name = name
        # Items are counted as the creates they are, whichever batch sent them.
        self._base = {"cronofy.operation": operation, "cronofy.data_center": data_center}
        self.counts: dict[str, int] = {}
        self.from_ledger = 0
        self.span: trace.Span | None = None
        self.worker_context: contextvars.Context | None = None

    def start(self, concurrency: int) -> None:
        """Open the batch's span under the caller's, and the context its workers run in."""
        tracer = self._telemetry.tracer
        if tracer is not None:
            self.span = tracer.start_span(
                f"cronofy.{self._name}",
                kind=SpanKind.INTERNAL,
                attributes={**self._base, "cronofy.batch.concurrency": concurrency},
                record_exception=False,
                set_status_on_exception=False,
            )
        worker_context = contextvars.copy_context()
        worker_context.run(self._enter)
        self.worker_context = worker_context

    def _enter(self) -> None:
        _IN_BATCH.set(True)
        if self.span is not None:
            context.attach(trace.set_span_in_context(self.span))

    def context(self) -> contextvars.Context | None:
        """A context of its own for one worker: the batch's span current, counted as such."""
        return self.worker_context.copy() if self.worker_context is not None else None

    def count(self, outcome: Outcome, *, from_ledger: bool = False) -> None:
        """
        One item ended with `outcome`.

        `from_ledger`: answered by the idempotency ledger without a send (a replay, or an
        earlier unknown refused again), so not a new create: on the span, not in the metric.
        """
        value = outcome.value
        self.counts[value] = self.counts.get(value, 0) + 1
        if from_ledger:
            self.from_ledger += 1
        else:
            telemetry = (self._current() if self._current is not None else None) or self._telemetry
            telemetry.outcomes.add(1, {**self._base, "cronofy.outcome": value})

    def finish(self, error: BaseException | None = None) -> None:
        """The batch ended, with `error` if it failed or was cancelled."""
        span = self.span
        if span is None:
            return
        self.span = None
        attributes: dict[str, Any] = {"cronofy.batch.items": sum(self.counts.values())}
        for outcome in Outcome:
            attributes[f"cronofy.batch.{outcome.value}"] = self.counts.get(outcome.value, 0)
        attributes["cronofy.batch.from_ledger"] = self.from_ledger
        if error is not None:
            kind = error_type(error)
            attributes["error.type"] = kind
            span.set_status(Status(StatusCode.ERROR, kind))
        span.set_attributes(attributes)
        span.end()
