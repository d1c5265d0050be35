"""`AsyncSchedulerAPI`: where a request is sent. Building and reading live in pure modules."""

from __future__ import annotations

import asyncio
import functools
import importlib
import math
import os
import random
import re
import time
import urllib.request
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from types import ModuleType, TracebackType
from typing import TYPE_CHECKING, Any, Final, Generic, Literal, Protocol, Self, TypeVar

import attrs
import httpx

from ._clock import Clock, SystemClock
from ._concurrency import InFlightLimit
from ._data_centers import DataCenter, normalize_base_url
from ._errors import APIError, ClientClosedError, ConfigurationError
from ._idempotency import check_key, fingerprint, send_once
from ._ledger import Ledger, MemoryLedger
from ._loops import LoopEnd
from ._members import Members
from ._operation import Operation
from ._payload import check_impersonation_sub
from ._pool import lean_transport
from ._ratelimit import Limiter, PauseGate, RateLimit, SlidingWindowLimiter
from ._request import request_headers
from ._response import (
    UndecodableBody,
    bare,
    bodiless,
    error_from_exception,
    error_from_response,
    error_from_undecodable,
    scrub_reason,
)
from ._retry import NO_RETRY, Attempt, Observer, RetryPolicy, run_with_retries
from ._scheduler_requests import SchedulerRequests
from ._scheduling_requests import SchedulingRequests
from ._secret import ClientSecret
from ._selection_rules import SelectionRules

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider

    from ._otel import BatchTrace, CallTrace, Telemetry

__all__ = ["DEFAULT_TIMEOUT", "AsyncSchedulerAPI"]

T = TypeVar("T")

DEFAULT_TIMEOUT: Final = httpx.Timeout(30.0, connect=5.0)
"""5 s to connect, 30 s for everything else: Cronofy's own SDKs mostly set none at all."""

DEFAULT_MAX_IN_FLIGHT: Final = {"httpx": 25, "aiohttp": 500}
"""
Requests on the wire at once, per API object and its views, by default, per HTTP backend.

httpx's connection pool costs more CPU per request the more requests wait in it, and past
about 25 in flight its throughput falls instead of rising. Capping here, before the pool,
keeps it in the regime where it is fast; more concurrency then waits cheaply in line.
aiohttp's pool keeps scaling, so its cap only bounds the sockets a runaway caller can open.
"""

SECRET_ENV: Final = "CRONOFY_CLIENT_SECRET"  # noqa: S105 (a variable name, not a secret)
DATA_CENTER_ENV: Final = "CRONOFY_DATA_CENTER"

_BAD_SECRET_CHARS = re.compile(r"[\s\x00-\x1f\x7f]")


@functools.cache
def _otel_module() -> ModuleType | None:
    """`cronofy_async._otel`, imported on first need; ``None`` without OpenTelemetry."""
    try:
        return importlib.import_module("cronofy_async._otel")
    except ImportError:
        return None


def _make_telemetry(
    tracer_provider: object, meter_provider: object, record_recipients: object
) -> tuple[Telemetry | None, float]:
    """The telemetry of providers given, and when to look for global ones (``inf``: never)."""
    if not isinstance(record_recipients, bool):
        raise ConfigurationError(
            f"record_recipients must be True or False, got {record_recipients!r}"
        )
    if tracer_provider is None and meter_provider is None:
        return None, 0.0
    otel = _otel_module()
    if otel is None:
        given = "tracer_provider" if tracer_provider is not None else "meter_provider"
        raise ConfigurationError(
            f"{given} needs OpenTelemetry's API, which is not installed: "
            "pip install 'cronofy-async[otel]'"
        )
    otel.check_providers(tracer_provider, meter_provider)
    telemetry = otel.Telemetry(
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        record_recipients=record_recipients,
    )
    return telemetry, math.inf


def _load_secret(client_secret: str | None) -> ClientSecret:
    if client_secret is None:
        client_secret = os.environ.get(SECRET_ENV)
    if not isinstance(client_secret, str) or not client_secret.strip():
        raise ConfigurationError(
            "no Cronofy client secret: pass client_secret=... (the secret of an Internal "
            f"Application linked to your Organizational Unit) or set {SECRET_ENV}"
        )
    # A secret read from a file often ends in a newline; inner whitespace would break the header.
    value = client_secret.strip()
    if not value.isascii():
        # A zero-width or no-break space pasted along with the secret: no header can carry it,
        # and the UnicodeEncodeError httpx would raise holds the whole header, secret included.
        raise ConfigurationError(
            "the client secret contains characters that are not ASCII (an invisible space "
            "copied along with it?); copy it again from the Cronofy developer dashboard"
        )
    if _BAD_SECRET_CHARS.search(value):
        raise ConfigurationError("the client secret contains whitespace or control characters")
    return ClientSecret(value)


def _check_timeout(timeout: float | httpx.Timeout) -> httpx.Timeout:
    if isinstance(timeout, httpx.Timeout):
        return timeout
    if isinstance(timeout, int | float) and not isinstance(timeout, bool) and timeout > 0:
        return httpx.Timeout(float(timeout))
    raise ConfigurationError(
        f"timeout must be a positive number of seconds or an httpx.Timeout, got {timeout!r}"
    )


def _make_limiter(rate_limit: RateLimit | Limiter | None, clock: Clock) -> Limiter | None:
    if rate_limit is None:
        return None
    if isinstance(rate_limit, RateLimit):
        return SlidingWindowLimiter(rate_limit, clock=clock)
    if isinstance(rate_limit, Limiter):
        return rate_limit
    raise ConfigurationError(
        "rate_limit must be a RateLimit, a Limiter (an object with an async acquire()) or None, "
        f"got {type(rate_limit).__name__}"
    )


OwnClient = tuple[httpx.AsyncClient, "httpx.AsyncBaseTransport | None", "_RawSender | None"]
"""The library's own client, the transport to send through directly, and the fast sender."""


def _loop_bound(client: httpx.AsyncClient) -> bool:
    """
    Whether `client` holds a connection pool bound to the loop that used it (httpx's own).

    httpx offers no public way to ask; a client whose transports cannot be seen is assumed
    loop-free (a mock, an ASGI app), as those are.
    """
    transports = [getattr(client, "_transport", None), *getattr(client, "_mounts", {}).values()]
    return any(isinstance(transport, httpx.AsyncHTTPTransport) for transport in transports)


def _own_client(timeout: httpx.Timeout, max_in_flight: int, backend: str) -> OwnClient:
    """
    The library's own client, and how to send past its machinery when that is safe.

    Returns the client, the transport to send through directly, and the aiohttp fast path's
    raw sender (``None`` where they do not apply).

    Auth flow, cookies, redirects and hooks add nothing for this API on a client of ours, and
    cost about a quarter of a create's CPU. But httpx reads proxies from the environment only
    for a client built without an explicit transport: with any proxy configured, the client is
    built the ordinary way and routes every request itself.
    """
    if backend == "aiohttp":
        try:
            from ._aiohttp import AiohttpTransport
        except ImportError:
            raise ConfigurationError(
                "http_backend='aiohttp' needs aiohttp: pip install 'cronofy-async[aiohttp]'"
            ) from None
        fast = AiohttpTransport(limit=max_in_flight)
        return httpx.AsyncClient(timeout=timeout, transport=fast), fast, fast
    pool = httpx.Limits(max_connections=max_in_flight, max_keepalive_connections=max_in_flight)
    if urllib.request.getproxies():
        return httpx.AsyncClient(timeout=timeout, limits=pool), None, None
    transport = lean_transport(pool)
    return httpx.AsyncClient(timeout=timeout, transport=transport), transport, None


async def _read_whole(response: httpx.Response, request: httpx.Request) -> None:
    """
    Read the whole body, as ``client.send`` would.

    A body whose ``Content-Encoding`` cannot be undone raises `UndecodableBody` with the rest
    of the answer, so the error can still say what the status was.
    """
    try:
        await response.aread()
    except httpx.DecodingError as exc:
        head = bodiless(
            response.status_code,
            response.headers.raw,
            response.extensions.get("reason_phrase", b""),
            request,
        )
        raise UndecodableBody(head, response.headers.get("content-encoding", ""), exc) from None
    finally:
        await response.aclose()


class _RawSender(Protocol):
    """The fast path's transport (the aiohttp one): raw parts in, raw parts out."""

    async def send_raw(
        self,
        method: str,
        url: str,
        headers: list[tuple[str, str]],
        body: bytes | None,
        client_timeout: Any,
        request: Callable[[], httpx.Request],
        *,
        decode: bool = True,
    ) -> tuple[int, str, Any, bytes]: ...

    def response(
        self, status: int, reason: str, raw: Any, content: bytes, request: httpx.Request
    ) -> httpx.Response: ...

    def timeout(self, timeouts: Mapping[str, float | None]) -> Any: ...


@attrs.define(kw_only=True)
class _Shared:
    """
    What a root API object and every view made from it share.

    One pool, one secret, and one pace: Cronofy's limits are per application, so views pace and
    pause together.
    """

    http: httpx.AsyncClient
    owns_http: bool
    remake: Callable[[], OwnClient] | None
    """How to build the library's own client again in another loop (``None``: the caller's)."""
    secret: ClientSecret
    timeout: httpx.Timeout
    retry: RetryPolicy
    limiter: Limiter | None
    in_flight: InFlightLimit
    ledger: Ledger = attrs.field(factory=MemoryLedger)
    """Where idempotency keys are kept: the caller's, or a `MemoryLedger` of this object's."""
    direct: httpx.AsyncBaseTransport | None = None
    """The transport to send through directly, skipping the client's machinery, if safe."""
    fast: _RawSender | None = None
    """The aiohttp transport, when it is the backend: sent to with raw parts."""
    clock: Clock = attrs.field(factory=SystemClock)
    gate: PauseGate = attrs.field(
        default=attrs.Factory(lambda self: PauseGate(self.clock), takes_self=True)
    )
    rng: random.Random = attrs.field(factory=random.Random)
    closed: bool = False
    extensions: dict[str, object] = attrs.field(
        default=attrs.Factory(lambda self: {"timeout": self.timeout.as_dict()}, takes_self=True)
    )
    """What ``build_request`` would attach (the timeouts), computed once for the direct path."""
    fast_timeout: Any = None
    """The fast path's timeouts, made from `extensions` on first use (they never change)."""
    loop: asyncio.AbstractEventLoop | None = None
    """The loop the client's pool belongs to, once one has used it."""
    loop_end: LoopEnd | None = None
    """Closes the library's own client as that loop shuts down."""
    telemetry: Telemetry | None = None
    """Where calls are reported (OpenTelemetry), once there is a provider to report to."""
    next_look: float = 0.0
    """When to look for a global provider again (``inf``: never, the providers were given)."""
    record_recipients: bool = False

    def telemetry_now(self) -> Telemetry | None:
        """
        The telemetry to report this call to, if any.

        Without a provider given, the application's global ones are looked for at most once
        every ``_otel.GLOBAL_CHECK_INTERVAL`` seconds, so one set after the first call is
        picked up; without OpenTelemetry installed, never again.
        """
        telemetry = self.telemetry
        if telemetry is not None and self.next_look == math.inf:
            return telemetry  # providers given, or both global ones found: nothing to look for
        now = time.monotonic()
        if now < self.next_look:
            return telemetry
        otel = _otel_module()
        if otel is None:
            self.next_look = math.inf
            return None
        # Looked for again while either global provider is missing: an application that sets
        # its tracer provider, makes a call, then sets its meter provider gets both.
        self.telemetry, complete = otel.from_globals(
            record_recipients=self.record_recipients, current=telemetry
        )
        self.next_look = math.inf if complete else now + otel.GLOBAL_CHECK_INTERVAL
        return self.telemetry

    def use(self, make: Callable[[], OwnClient]) -> None:
        """Send through a client of the library's own built by `make` (again in each loop)."""
        self.remake = make
        self.http, self.direct, self.fast = make()
        self.owns_http = True

    def enter_loop(self) -> None:
        """
        Bind the client to the running loop before anything is sent in it.

        The library's own client is rebuilt if it belongs to another loop (or was closed as
        its loop ended); a caller's client whose pool belongs to another loop is refused.
        """
        loop = asyncio.get_running_loop()
        if self.loop is loop and not self.http.is_closed:
            return
        if self.remake is None:
            if self.loop is not None and self.loop is not loop and _loop_bound(self.http):
                raise ConfigurationError(
                    "the http_client given to this AsyncSchedulerAPI was used in another event "
                    "loop, and httpx's connection pool cannot move between loops; nothing was "
                    "sent. Build the client (and the API object) in the loop that uses it, or "
                    "let the library build its own."
                )
            self.loop = loop
            return
        if self.loop_end is not None:
            self.loop_end.dismiss()
        if self.loop is not None:  # used by another loop, or closed as its loop ended
            self.http, self.direct, self.fast = self.remake()
        self.loop = loop
        self.loop_end = LoopEnd(self.http.aclose)


class AsyncSchedulerAPI(SchedulerRequests, SchedulingRequests, Members, SelectionRules):
    """
    An asyncio client for Cronofy's Scheduler API.

    ::

        async with AsyncSchedulerAPI(client_secret="...", data_center="uk") as api:
            created = await api.create_scheduler_request(
                NewSchedulerRequest(
                    host=Host(sub="acc_61815034636bd5c5ce4edd"),
                    recipients=[Recipient(email="doc@evenitron.com")],
                    event=Event(summary="Driving lessons - Marty & Doc"),
                )
            )
            print(created.recipients[0].select_url)

    Args:
        client_secret: the secret of an Internal Application linked to an Organizational Unit;
            defaults to the ``CRONOFY_CLIENT_SECRET`` environment variable.
        data_center: where the account lives: a `DataCenter`, its two-letter id, host name or
            URL; defaults to ``CRONOFY_DATA_CENTER``, else ``us``.
        base_url: send to this URL instead (a proxy, a test server); overrides `data_center`.
            An absolute http or https URL, with a path or not, but no query or fragment.
        http_client: an ``httpx.AsyncClient`` to send through. The library never closes a client
            it did not open; by default it opens (and closes) its own.
        timeout: applies to every request of this object, whichever client sends it.
        retry: when to send a failed request again; by default only what provably was not
            processed (connect failures, 429), 3 attempts in all. ``None`` turns retries off.
        rate_limit: the pace to keep, by default Cronofy's 50/s and 500/min; a custom
            `Limiter` to share a budget across processes; ``None`` turns pacing off.
        max_in_flight: requests on the wire at once; by default 25 on httpx, where its pool
            is fastest, and 500 on aiohttp. The library's own client gets a pool of that many
            connections.
        http_backend: ``"httpx"`` (the default: plain ``respx.mock`` intercepts it) or
            ``"aiohttp"``, the fast path for high volume (``pip install
            'cronofy-async[aiohttp]'``): still an ``httpx.AsyncClient`` above, aiohttp below.
        ledger: where the ``idempotency_key`` of each create is kept, so that no key is sent
            twice: a `SQLiteLedger` for the processes of one machine, a
            ``cronofy_async.redis.RedisLedger`` for many. By default a `MemoryLedger` of this
            object's own, which protects one process only. The library never closes a ledger
            it did not make.
        tracer_provider: report spans to this OpenTelemetry provider (``pip install
            'cronofy-async[otel]'``). With neither provider given, the application's global
            ones are used once it sets them; with one given, only that one is reported to.
        meter_provider: report metrics to this OpenTelemetry provider.
        record_recipients: also put each create's recipient emails on its span
            (``cronofy.recipients``). Off by default: emails are personal data.

    One connection pool, one pace and one 429 pause serve this object and every view made by
    `impersonate` and `with_data_center`. Use ``async with`` or call `aclose` when done.

    """

    __slots__ = (
        "_base_url",
        "_closed",
        "_data_center",
        "_headers",
        "_impersonate",
        "_is_root",
        "_shared",
        "_urls",
    )

    _shared: _Shared
    _data_center: DataCenter
    _base_url: str
    _impersonate: str | None
    _headers: dict[bool, tuple[httpx.Headers, list[tuple[str, str]]]]
    _urls: dict[str, tuple[httpx.URL, str]]
    _closed: bool
    _is_root: bool

    def __init__(
        self,
        client_secret: str | None = None,
        *,
        data_center: DataCenter | str | None = None,
        base_url: str | None = None,
        http_client: httpx.AsyncClient | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = RetryPolicy(),  # noqa: B008 - frozen, so safe to share
        rate_limit: RateLimit | Limiter | None = RateLimit(),  # noqa: B008 - frozen too
        max_in_flight: int | None = None,
        http_backend: Literal["httpx", "aiohttp"] = "httpx",
        ledger: Ledger | None = None,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        record_recipients: bool = False,
    ) -> None:
        secret = _load_secret(client_secret)
        telemetry, next_look = _make_telemetry(tracer_provider, meter_provider, record_recipients)
        if ledger is not None and not isinstance(ledger, Ledger):
            raise ConfigurationError(
                "ledger must be a Ledger (MemoryLedger, SQLiteLedger, RedisLedger or an object "
                f"with their async methods) or None, got {type(ledger).__name__}"
            )
        if data_center is None:
            data_center = os.environ.get(DATA_CENTER_ENV) or DataCenter.US
        center = DataCenter(data_center)
        url = center.base_url if base_url is None else normalize_base_url(base_url)
        checked_timeout = _check_timeout(timeout)
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise ConfigurationError(
                f"retry must be a RetryPolicy or None, got {type(retry).__name__}"
            )
        clock = SystemClock()
        limiter = _make_limiter(rate_limit, clock)
        if http_backend not in ("httpx", "aiohttp"):
            raise ConfigurationError(
                f"http_backend must be 'httpx' or 'aiohttp', got {http_backend!r}"
            )
        if max_in_flight is None:
            max_in_flight = DEFAULT_MAX_IN_FLIGHT[http_backend]
        if (
            not isinstance(max_in_flight, int)
            or isinstance(max_in_flight, bool)
            or max_in_flight < 1
        ):
            raise ConfigurationError(
                f"max_in_flight must be a positive whole number, got {max_in_flight!r}"
            )
        if http_client is not None and http_backend != "httpx":
            raise ConfigurationError(
                "http_backend applies to the client the library builds; with http_client=, "
                "configure that client's transport yourself"
            )
        remake: Callable[[], OwnClient] | None = None
        if http_client is None:
            remake = functools.partial(_own_client, checked_timeout, max_in_flight, http_backend)
            http, direct, fast = remake()
            owns = True
        elif isinstance(http_client, httpx.AsyncClient):
            http, owns, direct, fast = http_client, False, None, None
        else:
            raise ConfigurationError(
                f"http_client must be an httpx.AsyncClient, got {type(http_client).__name__}"
            )
        shared = _Shared(
            http=http,
            owns_http=owns,
            remake=remake,
            secret=secret,
            timeout=checked_timeout,
            retry=retry or NO_RETRY,
            limiter=limiter,
            in_flight=InFlightLimit(max_in_flight),
            direct=direct,
            fast=fast,
            clock=clock,
            ledger=ledger if ledger is not None else MemoryLedger(),
            telemetry=telemetry,
            next_look=next_look,
            record_recipients=record_recipients,
        )
        self._setup(shared, center, url, impersonate=None, root=True)

    def _setup(
        self,
        shared: _Shared,
        center: DataCenter,
        base_url: str,
        *,
        impersonate: str | None,
        root: bool,
    ) -> None:
        self._shared = shared
        self._data_center = center
        self._base_url = base_url
        self._impersonate = impersonate
        # Built once per view: parsing a URL and normalising headers cost ~100 us a request.
        self._headers = {}
        for with_body in (True, False):
            plain = request_headers(shared.secret, impersonate=impersonate, with_body=with_body)
            # The fast path's list keeps the masked Authorization value (httpx.Headers would
            # turn it into a plain str, which a traceback's locals would show).
            raw = [(name.lower(), value) for name, value in plain.items()]
            self._headers[with_body] = (httpx.Headers(plain), raw)
        self._urls = {}
        self._closed = False
        self._is_root = root

    def _view(self, center: DataCenter, base_url: str, impersonate: str | None) -> Self:
        view = object.__new__(type(self))
        view._setup(self._shared, center, base_url, impersonate=impersonate, root=False)
        return view

    # -- views ------------------------------------------------------------------------------

    def impersonate(self, sub: str) -> Self:
        """
        A view that acts as the account `sub` (``Cronofy-Impersonate``), which then hosts.

        The view shares this object's connection pool; closing it does not close the pool.
        """
        self._check_open()
        return self._view(self._data_center, self._base_url, check_impersonation_sub(sub))

    def with_data_center(self, data_center: DataCenter | str) -> Self:
        """A view that talks to another data center, over the same connection pool."""
        self._check_open()
        center = DataCenter(data_center)
        return self._view(center, center.base_url, self._impersonate)

    # -- properties -------------------------------------------------------------------------

    @property
    def data_center(self) -> DataCenter:
        """The data center this object talks to (unless `base_url` was overridden)."""
        return self._data_center

    @property
    def base_url(self) -> str:
        """The base URL requests go to, without a trailing slash."""
        return self._base_url

    @property
    def impersonating(self) -> str | None:
        """The account sub sent as ``Cronofy-Impersonate``, or ``None``."""
        return self._impersonate

    @property
    def http_client(self) -> httpx.AsyncClient:
        """
        The ``httpx.AsyncClient`` shared by this object and all its views.

        The library's own is bound to one event loop: it closes as that loop ends, and a new
        one is built when the object is used from another loop.
        """
        return self._shared.http

    @property
    def ledger(self) -> Ledger:
        """
        Where this object and its views keep idempotency keys and what became of them.

        The `ledger` given, else a `MemoryLedger` of this object's own::

            entry = await api.ledger.get("order-42")
            print(entry.state if entry else "never sent")
        """
        return self._shared.ledger

    @property
    def closed(self) -> bool:
        """Whether this object (or, for a view, the object it came from) was closed."""
        return self._closed or self._shared.closed

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} data_center={self._data_center.value!r} "
            f"base_url={self._base_url!r} impersonating={self._impersonate!r} "
            f"closed={self.closed}>"
        )

    # -- lifecycle --------------------------------------------------------------------------

    async def aclose(self) -> None:
        """
        Close this object.

        On the object you constructed, this closes the connection pool (unless you passed
        `http_client`, which stays yours to close) and with it every view. On a view, it only
        closes the view. Closing twice is harmless.
        """
        self._closed = True
        if not self._is_root:
            return
        shared = self._shared
        shared.closed = True
        if shared.loop_end is not None:
            shared.loop_end.dismiss()
        if shared.owns_http:
            await shared.http.aclose()

    async def __aenter__(self) -> Self:
        self._check_open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _check_open(self) -> None:
        if self._shared.closed:
            raise ClientClosedError(
                "this AsyncSchedulerAPI was closed (aclose() or the end of its 'async with'); "
                "nothing was sent. Create a new one."
            )
        if self._closed:
            raise ClientClosedError("this view was closed; nothing was sent")
        # The library's own client closes as its loop ends, and is rebuilt in the next one.
        if self._shared.remake is None and self._shared.http.is_closed:
            raise ClientClosedError(
                "the httpx.AsyncClient behind this AsyncSchedulerAPI is closed; nothing was sent"
            )

    # -- the pipeline: every operation of every family is sent here -------------------------

    def _url_for(self, operation: Operation[Any]) -> tuple[httpx.URL, str]:
        if operation.url is not None:
            url = httpx.URL(operation.url)
            return url, str(url)
        cached = self._urls.get(operation.path)
        if cached is None:
            url = httpx.URL(self._base_url + operation.path)
            cached = self._urls[operation.path] = (url, str(url))
        return cached

    def _call(
        self, operation: Operation[T], on_send: Callable[[], None] | None = None
    ) -> Coroutine[Any, Any, T]:
        """
        Pace, wait out a 429 pause, send, retry as the operation allows, and read.

        Returns the pipeline's coroutine for the caller to await at once: a coroutine of its
        own here would be one more frame that every step of every request passes through.
        With telemetry, the call runs under its span.
        """
        telemetry = self._shared.telemetry_now()
        if telemetry is None:
            return self._pipeline(operation, on_send, None)
        return self._traced(
            telemetry,
            operation,
            lambda observer: self._pipeline(operation, on_send, observer),
        )

    def _traced(
        self,
        telemetry: Telemetry,
        operation: Operation[T],
        run: Callable[[CallTrace], Awaitable[T]],
        *,
        keyed: bool = False,
    ) -> Coroutine[Any, Any, T]:
        if operation.url is None:
            url, url_text = self._url_for(operation)
        else:
            # A page link the server gave: whatever lies below the list's own path is its
            # token, which reads the page. Reported as the list's URL and a placeholder.
            url_text = f"{self._base_url}{operation.path.partition('?')[0]}/REDACTED"
            url = httpx.URL(url_text)
        return telemetry.call(
            operation,
            data_center=self._data_center.value,
            url=url,
            url_text=url_text,
            clock=self._shared.clock.monotonic,
            run=run,
            keyed=keyed,
        )

    def _batch_trace(self, name: str, operation: str) -> BatchTrace | None:
        telemetry = self._shared.telemetry_now()
        if telemetry is None:
            return None
        return telemetry.batch(
            name,
            operation=operation,
            data_center=self._data_center.value,
            current=self._shared.telemetry_now,
        )

    def _pipeline(
        self,
        operation: Operation[T],
        on_send: Callable[[], None] | None,
        observer: Observer | None,
    ) -> Coroutine[Any, Any, T]:
        self._check_open()
        shared = self._shared
        shared.enter_loop()
        if shared.fast is not None:
            attempt = self._fast_attempt(shared.fast, operation, observer)
        else:
            attempt = self._httpx_attempt(operation, observer)
        return run_with_retries(
            attempt,
            policy=shared.retry,
            limiter=shared.limiter,
            gate=shared.gate,
            clock=shared.clock,
            rng=shared.rng,
            what=operation.what,
            on_send=on_send,
            idempotent=operation.idempotent,
            mutates=operation.mutates,
            observer=observer,
        )

    async def _send_once(
        self,
        operation: Operation[T],
        on_send: Callable[[], None] | None,
        *,
        key: object,
        resend_unknown: bool,
        request_id: Callable[[T], str],
    ) -> T:
        """`_call` under an idempotency key: at most one send per key in the ledger."""
        shared = self._shared
        checked = check_key(key, shared.secret)
        print_ = fingerprint(operation, base_url=self._base_url, impersonate=self._impersonate)

        def once(observer: Observer | None) -> Coroutine[Any, Any, T]:
            return send_once(
                lambda sent, watch: self._pipeline(sent, watch, observer),
                operation,
                ledger=shared.ledger,
                key=checked,
                print_=print_,
                resend_unknown=resend_unknown,
                on_send=on_send,
                request_id=request_id,
                secret=shared.secret,
            )

        telemetry = shared.telemetry_now()
        if telemetry is None:
            return await once(None)
        return await self._traced(telemetry, operation, once, keyed=True)

    def _httpx_attempt(self, operation: Operation[T], observer: Observer | None) -> Attempt[T]:
        """One send through httpx: straight to the transport on our own client, else routed."""
        shared = self._shared
        direct = shared.direct
        url, _ = self._url_for(operation)
        headers, _ = self._headers[operation.body is not None]
        method, body = operation.method, operation.body
        if direct is not None:
            http_request = httpx.Request(
                method, url, content=body, headers=headers, extensions=shared.extensions
            )
        else:
            http_request = shared.http.build_request(
                method, url, content=body, headers=headers, timeout=shared.timeout
            )
        read, mutates = operation.read, operation.mutates
        in_flight = shared.in_flight

        async def attempt(ready: Callable[[], Awaitable[None]]) -> T:
            if not in_flight.try_take():  # the common case takes its place without awaiting
                await in_flight.take()
            try:
                await ready()  # paced, and counted as sent: nothing awaited before the send
                if direct is not None:
                    response = await direct.handle_async_request(http_request)
                    response.request = http_request
                else:
                    # Streamed, so that a body that cannot be decoded still has a status.
                    response = await shared.http.send(http_request, stream=True)
                if observer is not None:
                    observer.answered(response.status_code)
                await _read_whole(response, http_request)
            except UndecodableBody as exc:
                scrub_reason(exc.head, shared.secret)
                raise error_from_undecodable(
                    exc, mutates=mutates, secret=shared.secret, now=shared.clock.wall()
                ) from bare(exc.cause)
            except httpx.DecodingError as exc:
                # From a caller's transport that decodes as it sends: its frames hold the body.
                raise error_from_exception(exc, http_request, shared.secret) from bare(exc)
            except httpx.TransportError as exc:
                raise error_from_exception(exc, http_request, shared.secret) from exc
            finally:
                in_flight.give()
            try:
                if not response.is_success:
                    raise error_from_response(
                        response, secret=shared.secret, now=shared.clock.wall()
                    )
                return read(response.content, lambda: response, shared.secret)
            except APIError:
                # Only on the way out: this frame's `response` shows its reason phrase in
                # a traceback's locals, and it may echo the secret.
                scrub_reason(response, shared.secret)
                raise

        return attempt

    def _fast_attempt(
        self, fast: _RawSender, operation: Operation[T], observer: Observer | None
    ) -> Attempt[T]:
        """One send on the fast path: no httpx Request or Response unless there is an error."""
        shared = self._shared
        client_timeout = shared.fast_timeout
        if client_timeout is None:
            timeouts = shared.extensions["timeout"]
            client_timeout = shared.fast_timeout = fast.timeout(timeouts)  # type: ignore[arg-type]
        return _FastAttempt(self, fast, operation, client_timeout, observer)


class _FastAttempt(Generic[T]):
    """
    One send on the fast path, and its reading: an `Attempt` for `run_with_retries`.

    An object rather than closures: a request's state is then one object the garbage collector
    walks, not two functions and a dozen cells, which under many requests in flight is what
    sets how often it runs.
    """

    __slots__ = (
        "_body",
        "_fast",
        "_headers",
        "_method",
        "_mutates",
        "_observer",
        "_raw_headers",
        "_read",
        "_shared",
        "_timeout",
        "_url",
        "_url_text",
    )

    def __init__(
        self,
        api: AsyncSchedulerAPI,
        fast: _RawSender,
        operation: Operation[T],
        timeout: Any,
        observer: Observer | None,
    ) -> None:
        self._shared = api._shared
        self._fast = fast
        self._url, self._url_text = api._url_for(operation)
        self._headers, self._raw_headers = api._headers[operation.body is not None]
        self._method, self._body, self._read = operation.method, operation.body, operation.read
        self._mutates = operation.mutates
        self._timeout = timeout
        self._observer = observer

    def request(self) -> httpx.Request:
        """The httpx Request this send stands for, made only when an error needs one."""
        return httpx.Request(
            self._method,
            self._url,
            content=self._body,
            headers=self._headers,
            extensions=self._shared.extensions,
        )

    def response(self, status: int, reason: str, raw: Any, content: bytes) -> httpx.Response:
        """The httpx Response of an answer, made only when reading it needs one."""
        # Its reason phrase redacted: the Response's repr shows it, and an error keeps it.
        reason = self._shared.secret.redact(reason)
        return self._fast.response(status, reason, raw, content, self.request())

    async def __call__(self, ready: Callable[[], Awaitable[None]]) -> T:
        shared = self._shared
        in_flight = shared.in_flight
        if not in_flight.try_take():  # the common case takes its place without awaiting
            await in_flight.take()
        try:
            await ready()  # paced, and counted as sent: nothing awaited before the send
            status, reason, raw, content = await self._fast.send_raw(
                self._method,
                self._url_text,
                self._raw_headers,
                self._body,
                self._timeout,
                self.request,
            )
        except UndecodableBody as exc:
            scrub_reason(exc.head, shared.secret)
            if self._observer is not None:
                self._observer.answered(exc.head.status_code)  # answered, then unreadable
            raise error_from_undecodable(
                exc, mutates=self._mutates, secret=shared.secret, now=shared.clock.wall()
            ) from bare(exc.cause)
        except httpx.TransportError as exc:
            raise error_from_exception(exc, exc.request, shared.secret) from exc
        finally:
            in_flight.give()
        if self._observer is not None:
            self._observer.answered(status)
        if 200 <= status < 300:
            try:
                return self._read(
                    content,
                    functools.partial(self.response, status, reason, raw, content),
                    shared.secret,
                )
            except APIError:
                del content, raw, reason  # as below: they may echo the secret
                raise
        response = self.response(status, reason, raw, content)
        # The body and reason may echo the secret: a traceback printed with its locals must
        # not show them.
        del content, raw, reason
        raise error_from_response(response, secret=shared.secret, now=shared.clock.wall())
