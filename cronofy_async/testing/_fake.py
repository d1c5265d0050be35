"""`FakeCronofy`: an ASGI application that behaves like Cronofy's Scheduler API."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gzip
import hashlib
import itertools
import json
import math
import secrets
import time
import urllib.parse
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Hashable,
    Iterable,
    Mapping,
    MutableMapping,
)
from typing import Any, Final

import attrs
import httpx

from .._client import AsyncSchedulerAPI
from .._errors import ConfigurationError
from .._payload import MAX_SUMMARY_LENGTH
from .._ratelimit import RateLimit
from ._fake_scheduling import (
    DEFAULT_PAGE_LINK_TTL,
    DEFAULT_PAGE_SIZE,
    FakeRequest,
    FakeScheduling,
    _error,
    validate_recipients,
)
from ._faults import Fault, Faults
from ._notify import NotificationFaults

__all__ = ["DEFAULT_SECRET", "CreatedRequest", "FakeCronofy"]

DEFAULT_SECRET: Final = "sk_test_fake_cronofy"  # noqa: S105 - a well-known test value
IN_PROCESS_URL: Final = "http://fake-cronofy.test"

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

_JSON_HEADERS: Final = [(b"content-type", b"application/json; charset=utf-8")]


class DropConnection(Exception):  # noqa: N818 - it is an instruction, not an error
    """
    Raised inside the app to make the server drop the connection.

    `answered` says whether an answer was begun first (processed, then cut off mid-answer) or
    not a byte of one was sent (a server that closes without answering).
    """

    def __init__(self, *, answered: bool) -> None:
        super().__init__("answer begun, then cut off" if answered else "closed without answering")
        self.answered = answered


@attrs.frozen(kw_only=True)
class CreatedRequest:
    """One scheduler request the fake created: an entry of its ledger."""

    sequence: int
    """Its position in the ledger, from 0."""
    scheduler_request_id: str
    """The ``srq_...`` id answered."""
    email: str
    """The recipient's email."""
    display_name: str | None
    """The recipient's name, if one was sent."""
    summary: str
    """``event.summary``."""
    host_sub: str | None
    """``host.sub`` from the body, if any."""
    group_rule_id: str | None
    """``scheduler_group_rule.id`` from the body, if any."""
    impersonated: str | None
    """The ``Cronofy-Impersonate`` sub, if any."""
    client_secret: str = attrs.field(repr=False)
    """The secret the request authenticated with."""
    body: Mapping[str, Any] = attrs.field(repr=False, eq=False)
    """The whole JSON body as received."""

    @property
    def host(self) -> str | None:
        """Who hosts: the host sub, the group rule id or the impersonated account."""
        return self.host_sub or self.group_rule_id or self.impersonated

    @property
    def invite_key(self) -> tuple[str, str | None, str]:
        """What makes two creates the same logical invite: recipient, host and summary."""
        return (self.email.lower(), self.host, self.summary)


class _ArrivalLimit:
    """Cronofy's rate limit as a server sees it: arrivals counted per window, exactly."""

    def __init__(self, limit: RateLimit) -> None:
        pairs = ((limit.per_second, 1.0), (limit.per_minute, 60.0))
        self._windows = [
            (seconds, collections.deque[float](maxlen=count))
            for count, seconds in pairs
            if count is not None
        ]

    def admit(self, now: float) -> float | None:
        """Count an arrival at `now`, or return the seconds to wait if it is over a limit."""
        wait = 0.0
        for seconds, arrivals in self._windows:
            if len(arrivals) == arrivals.maxlen and now - arrivals[0] < seconds:
                wait = max(wait, arrivals[0] + seconds - now)
        if wait > 0:
            return wait
        for _seconds, arrivals in self._windows:
            arrivals.append(now)
        return None


def _clean_set(name: str, values: Iterable[str] | None) -> frozenset[str] | None:
    if values is None:
        return None
    if isinstance(values, str):
        raise ConfigurationError(f"{name} must be a list of strings, not one string")
    return frozenset(values)


class FakeCronofy(FakeScheduling):
    """
    A fake Cronofy Scheduler API for tests, demos and benchmarks.

    It answers ``POST /v1/scheduler_requests`` as Cronofy documents it: 401 for an unknown
    secret, 422 in Cronofy's error format for every documented payload rule, 429 over the rate
    limit, and the documented 200 with a fresh ``srq_`` id and a ``select_url`` per recipient.
    Everything it created is in `created`, in order.

    Use it in process (no sockets)::

        fake = FakeCronofy(members=["acc_1"])
        async with fake.api() as api:  # an AsyncSchedulerAPI pointed at the fake
            await api.create_scheduler_request(...)
        assert len(fake.created) == 1

    or over real TCP on 127.0.0.1 (needs ``cronofy-async[testing]``)::

        async with fake.serve() as base_url:
            async with AsyncSchedulerAPI(fake.secret, base_url=base_url) as api: ...

    Args:
        client_secrets: the secrets it accepts; the first is `secret`.
        members: the Organizational Unit's account subs, for ``host.sub`` and impersonation;
            ``None`` accepts any.
        group_rules: the group rule ids it knows; ``None`` accepts any.
        rate_limit: the limit enforced per secret, by arrivals (Cronofy's 50/s and 500/min by
            default; its ``margin`` is ignored); ``None`` for no limit.
        faults: random faults to inject; see also `inject`.
        record: keep every created request in `created`. Off, only counts are kept, so memory
            stays flat in a long benchmark.
        resources: the Organizational Unit's resource subs, or a mapping of sub to name.
        selection_rules: ``{sub: (name, required, member emails)}``, shown and patched by
            the selection-rule calls; ``None`` knows none, but accepts any
            ``host_group=SelectionRule(sub=...)``.
        page_size: members or resources per page.
        page_link_ttl: seconds each ``next_page`` link works (Cronofy's are opaque tokens,
            ``<list path>/pages/<token>``, and short-lived); `expire_page_links` ends them all
            at once. At most 10,000 live links are kept: past that, the oldest stops working.
        compress: gzip every answer whose request accepts it (``Accept-Encoding: gzip``), as
            servers and proxies in front of an API often do.
        retry_after: send ``Retry-After`` with each 429. Cronofy does not document one: turn it
            off to see what a client does without it.
        notification_url: where `select_slot` POSTs a signed push notification (loopback
            only, unless a `notification_transport` is given); ``None`` sends none.
        notification_faults: how notifications are misdelivered (`notification_faults`).
        notification_transport: an httpx transport to deliver through, for example
            ``httpx.ASGITransport(app=receiver)`` in process.

    ``members`` may also map each sub to its email; without one the fake derives
    ``{sub}@example.com``. The other operations (scheduling requests, members, selection
    rules) are served with state: see `FakeScheduling`.

    """

    def __init__(
        self,
        client_secrets: Iterable[str] = (DEFAULT_SECRET,),
        *,
        members: Iterable[str] | Mapping[str, str] | None = None,
        group_rules: Iterable[str] | None = None,
        rate_limit: RateLimit | None = RateLimit(),  # noqa: B008 - frozen
        faults: Faults = Faults(),  # noqa: B008 - frozen
        record: bool = True,
        select_url_base: str = "https://app.cronofy.test",
        resources: Iterable[str] | Mapping[str, str] | None = None,
        selection_rules: Mapping[str, tuple[str, int | str, Iterable[str]]] | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
        page_link_ttl: float = DEFAULT_PAGE_LINK_TTL,
        compress: bool = False,
        retry_after: bool = True,
        notification_url: str | None = None,
        notification_faults: NotificationFaults = NotificationFaults(),  # noqa: B008 - frozen
        notification_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        secrets_ = _clean_set("client_secrets", client_secrets)
        if not secrets_:
            raise ConfigurationError("FakeCronofy needs at least one client secret")
        self.secret: str = next(iter(client_secrets))
        """The first accepted secret, for pointing a client at the fake."""
        self._secrets = secrets_
        self._members = _clean_set("members", members)
        self._group_rules = _clean_set("group_rules", group_rules)
        self._rate_limit = rate_limit
        self._limits: dict[str, _ArrivalLimit] = {}
        self.faults = faults
        """The random faults in force; assign a new `Faults` to change them mid-test."""
        self._scripted: collections.deque[Fault] = collections.deque()
        self._record = record
        self._compress = compress
        self._retry_after = retry_after
        self._select_url_base = select_url_base.rstrip("/")
        self._sequence = itertools.count()
        self._seen: collections.Counter[bytes] = collections.Counter()
        self.created: list[CreatedRequest] = []
        """Every scheduler request created, in order (empty when ``record=False``)."""
        self.created_count = 0
        """How many scheduler requests were created."""
        self.received = 0
        """How many requests arrived, whatever became of them."""
        self.outcomes: collections.Counter[str] = collections.Counter()
        """How many requests ended each way: ``created``, ``401``, ``422``, ``429``, a fault..."""
        self._init_scheduling(
            members=members,
            resources=resources,
            selection_rules=selection_rules,
            page_size=page_size,
            page_link_ttl=page_link_ttl,
        )
        self.compressed = 0
        """How many answers were sent gzip-compressed (with ``compress=True``)."""
        self._init_notifications(
            url=notification_url,
            secrets=[self.secret, *sorted(secrets_ - {self.secret})],
            faults=notification_faults,
            transport=notification_transport,
        )

    def __repr__(self) -> str:
        return (
            f"<FakeCronofy created={self.created_count} received={self.received} "
            f"faults={self.faults!r}>"
        )

    # -- controlling it ----------------------------------------------------------------------

    def inject(self, fault: Fault, *, times: int = 1) -> None:
        """Make the next `times` requests that arrive fail with `fault`, before random ones."""
        if not isinstance(fault, Fault):
            raise ConfigurationError(f"inject() takes a Fault, got {fault!r}")
        self._scripted.extend([fault] * times)

    def duplicates(
        self, key: Callable[[CreatedRequest], Hashable] | None = None
    ) -> dict[Hashable, list[CreatedRequest]]:
        """
        The logical invites created more than once, each with its ledger entries.

        Two creates are the same invite when `key` says so; by default
        `CreatedRequest.invite_key` (recipient, host and summary).
        """
        by_key: dict[Hashable, list[CreatedRequest]] = {}
        for entry in self.created:
            by_key.setdefault((key or _invite_key)(entry), []).append(entry)
        return {k: entries for k, entries in by_key.items() if len(entries) > 1}

    # -- pointing a client at it -----------------------------------------------------------

    def client(self, **options: Any) -> httpx.AsyncClient:
        """
        An ``httpx.AsyncClient`` that sends to this fake in process, no sockets involved.

        Timeouts still apply (a slow answer raises ``httpx.ReadTimeout``) and a dropped
        connection raises ``httpx.RemoteProtocolError``, as over a network.
        """
        return httpx.AsyncClient(
            transport=InProcessTransport(self), base_url=IN_PROCESS_URL, **options
        )

    def api(self, **options: Any) -> AsyncSchedulerAPI:
        """
        An `AsyncSchedulerAPI` wired to this fake in process, with its secret.

        Options are passed on (``retry=``, ``rate_limit=``, ``timeout=``...). The API sends as
        it does by default, through a client of its own (straight to its transport, rebuilt
        in each event loop), only in process: no sockets. The ``aiohttp`` backend needs a
        socket: `serve` the fake for it. Closing the API closes the in-process client too.
        """
        if "http_client" in options or options.get("http_backend", "httpx") != "httpx":
            raise ConfigurationError(
                "fake.api() sends in process, through the library's default (httpx) path; for "
                "http_client= or http_backend='aiohttp', serve the fake: async with "
                "fake.serve() as url: AsyncSchedulerAPI(fake.secret, base_url=url, ...)"
            )
        options.setdefault("client_secret", self.secret)
        api = AsyncSchedulerAPI(base_url=IN_PROCESS_URL, **options)
        api._shared.use(self._own_client)
        return api

    def _own_client(self) -> tuple[httpx.AsyncClient, httpx.AsyncBaseTransport, None]:
        transport = InProcessTransport(self)
        return httpx.AsyncClient(transport=transport, base_url=IN_PROCESS_URL), transport, None

    @contextlib.asynccontextmanager
    async def serve(self, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
        """
        Serve the fake on TCP for the duration of the block; yields its base URL.

        An ephemeral port by default. Needs uvicorn: ``pip install 'cronofy-async[testing]'``.
        """
        from ._server import serving

        async with serving(self, host=host, port=port) as base_url:
            yield base_url

    # -- the ASGI application ------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection scope."""
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":  # pragma: no cover - websockets are not served
            return
        body = await _read_body(receive)
        try:
            status, payload, headers = await self._handle(scope, body)
        except DropConnection as drop:
            transport = _connection_of(send)
            if not drop.answered and transport is not None:
                # Close without a byte of an answer, and wait until the server has noticed, so
                # it does not write a 500 for an app that returned without answering.
                transport.close()
                while (await receive())["type"] != "http.disconnect":
                    pass  # pragma: no cover - nothing else arrives once the body is read
                return
            # A server that raises before answering gets a 500 written for it; start an answer
            # and abandon it instead, so the client sees the connection cut mid-response.
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-length", b"64")],
                }
            )
            raise
        content = b"" if payload is None else json.dumps(payload).encode()
        if self._compress and content and _accepts_gzip(scope):
            content = gzip.compress(content, compresslevel=5)
            headers = [*headers, (b"content-encoding", b"gzip"), (b"vary", b"accept-encoding")]
            self.compressed += 1
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    *(_JSON_HEADERS if payload is not None else ()),
                    (b"content-length", str(len(content)).encode()),
                    *headers,
                ],
            }
        )
        await send({"type": "http.response.body", "body": content})

    async def _handle(
        self, scope: Scope, body: bytes
    ) -> tuple[int, Any, list[tuple[bytes, bytes]]]:
        self.received += 1
        path = scope["path"].rstrip("/")
        handler = None
        if path != "/v1/scheduler_requests":
            route = self._route(scope["method"], path)
            if route is None:
                return self._done("404", 404, {"error": "not_found"})
            if isinstance(route, tuple):
                allow = ", ".join(route).encode()
                return self._done("405", 405, {"error": "method_not_allowed"}, [(b"allow", allow)])
            handler = route
        elif scope["method"] != "POST":
            return self._done("405", 405, {"error": "method_not_allowed"}, [(b"allow", b"POST")])
        headers = _headers(scope)
        if self.faults.latency:
            await asyncio.sleep(self.faults.latency)

        # Random faults are drawn per body; a GET has none, so its method and path stand in.
        fault = self._next_fault(
            body if handler is None else f"{scope['method']} {path}".encode() + body
        )
        if fault is Fault.RATE_LIMITED:
            seconds = f"{self.faults.retry_after:g}".encode()  # as configured, 0 included
            return self._done(
                "fault:rate_limited",
                429,
                {"error": "too_many_requests"},
                [(b"retry-after", seconds)] if self._retry_after else [],
            )
        if fault is Fault.UNAVAILABLE:
            return self._done("fault:unavailable", 503, {"error": "service_unavailable"})
        if fault is Fault.DROP_BEFORE:
            self.outcomes["fault:drop_before"] += 1
            raise DropConnection(answered=False)

        secret = _bearer(headers.get("authorization"))
        if secret is None or secret not in self._secrets:
            # Cronofy answers an unknown token with an empty 401.
            return self._done("401", 401, None, [(b"www-authenticate", b"Bearer")])
        if self._rate_limit is not None:
            limit = self._limits.get(secret)
            if limit is None:
                limit = self._limits[secret] = _ArrivalLimit(self._rate_limit)
            wait = limit.admit(time.monotonic())
            if wait is not None:
                return self._rate_limited(wait)

        impersonated = headers.get("cronofy-impersonate")
        if (
            impersonated is not None
            and self._members is not None
            and (impersonated not in self._members)
        ):
            return self._done(
                "403",
                403,
                {"error": "forbidden", "description": "impersonated account is not a member"},
            )
        if handler is not None:
            request = FakeRequest(
                method=scope["method"],
                path=path,
                body=body,
                query=dict(urllib.parse.parse_qsl(scope["query_string"].decode("latin-1"))),
                impersonated=impersonated,
                origin=_origin(scope, headers),
            )
            return await self._serve(handler(request), fault)
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        errors = self._validate(data, impersonated=impersonated)
        if errors or not isinstance(data, dict):
            return self._done("422", 422, {"errors": errors})

        entry = self._create(data, secret=secret, impersonated=impersonated)
        answer = self._answer(entry, data)
        if fault is Fault.ERROR_AFTER_CREATE:
            return self._done("fault:error_after_create", 500, {"error": "internal"})
        if fault is Fault.DROP_AFTER:
            self.outcomes["fault:drop_after"] += 1
            raise DropConnection(answered=True)
        if fault is Fault.SLOW:
            self.outcomes["fault:slow"] += 1
            await asyncio.sleep(self.faults.slow_seconds)
        return self._done("created", 200, answer)

    async def _serve(
        self, answer: tuple[str, int, Any], fault: Fault | None
    ) -> tuple[int, Any, list[tuple[bytes, bytes]]]:
        """Answer an operation the fake's state handled, unless a fault strikes after it."""
        outcome, status, payload = answer
        if status < 300:  # processed: what a fault after processing hides, it hides here too
            if fault is Fault.ERROR_AFTER_CREATE:
                return self._done("fault:error_after_create", 500, {"error": "internal"})
            if fault is Fault.DROP_AFTER:
                self.outcomes["fault:drop_after"] += 1
                raise DropConnection(answered=True)
            if fault is Fault.SLOW:
                self.outcomes["fault:slow"] += 1
                await asyncio.sleep(self.faults.slow_seconds)
        return self._done(outcome, status, payload)

    def _done(
        self,
        outcome: str,
        status: int,
        payload: Any,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> tuple[int, Any, list[tuple[bytes, bytes]]]:
        self.outcomes[outcome] += 1
        return status, payload, headers or []

    def _rate_limited(self, wait: float) -> tuple[int, Any, list[tuple[bytes, bytes]]]:
        # Whole seconds, as HTTP's Retry-After takes, rounded up so a client that obeys fits.
        seconds = str(max(1, math.ceil(wait))).encode()
        headers = [(b"retry-after", seconds)] if self._retry_after else []
        return self._done("429", 429, {"error": "too_many_requests"}, headers)

    def _next_fault(self, body: bytes) -> Fault | None:
        if self._scripted:
            return self._scripted.popleft()
        if not self.faults.any:
            return None
        digest = hashlib.blake2b(body, digest_size=16).digest()
        occurrence = self._seen[digest]
        self._seen[digest] += 1
        return self.faults.draw(body, occurrence)

    def _validate(self, data: Any, *, impersonated: str | None) -> dict[str, Any]:
        if not isinstance(data, dict):
            return _error("body", "errors.invalid", "must be a JSON object")
        errors, _recipient = validate_recipients(data.get("recipients"))
        event = data.get("event")
        summary = event.get("summary") if isinstance(event, dict) else None
        if not isinstance(event, dict):
            errors |= _error("event", "errors.required", "required")
        elif not summary or not isinstance(summary, str):
            errors |= _error("event.summary", "errors.required", "required")
        elif len(summary) > MAX_SUMMARY_LENGTH:
            errors |= _error(
                "event.summary",
                "errors.too_long",
                f"must be {MAX_SUMMARY_LENGTH} characters or fewer",
            )
        errors |= self._validate_host(data, impersonated=impersonated)
        return errors

    def _validate_host(self, data: dict[str, Any], *, impersonated: str | None) -> dict[str, Any]:
        host, rule = data.get("host"), data.get("scheduler_group_rule")
        if host is not None and rule is not None:
            return _error("host", "errors.invalid", "give host or scheduler_group_rule, not both")
        if host is not None:
            sub = host.get("sub") if isinstance(host, dict) else None
            if not sub:
                return _error("host.sub", "errors.required", "required")
            if self._members is not None and sub not in self._members:
                return _error(
                    "host.sub", "errors.unknown", "not a member of the Organizational Unit"
                )
        elif rule is not None:
            rule_id = rule.get("id") if isinstance(rule, dict) else None
            if not rule_id:
                return _error("scheduler_group_rule.id", "errors.required", "required")
            if self._group_rules is not None and rule_id not in self._group_rules:
                return _error("scheduler_group_rule.id", "errors.unknown", "unknown group rule")
        elif impersonated is None:
            return _error("host", "errors.required", "required")
        return {}

    def _create(
        self, data: dict[str, Any], *, secret: str, impersonated: str | None
    ) -> CreatedRequest:
        recipient = data["recipients"][0]
        host, rule = data.get("host"), data.get("scheduler_group_rule")
        entry = CreatedRequest(
            sequence=next(self._sequence),
            scheduler_request_id=f"srq_{secrets.token_hex(12)}",
            email=recipient["email"],
            display_name=recipient.get("display_name"),
            summary=data["event"]["summary"],
            host_sub=host["sub"] if host else None,
            group_rule_id=rule["id"] if rule else None,
            impersonated=impersonated,
            client_secret=secret,
            body=data,
        )
        self.created_count += 1
        if self._record:
            self.created.append(entry)
        return entry

    def _answer(self, entry: CreatedRequest, data: dict[str, Any]) -> dict[str, Any]:
        recipient: dict[str, Any] = {"email": entry.email}
        if entry.display_name is not None:
            recipient["display_name"] = entry.display_name
        recipient["select_url"] = f"{self._select_url_base}/r/{secrets.token_urlsafe(9)}"
        return {
            "scheduler_request": {
                "scheduler_request_id": entry.scheduler_request_id,
                "recipients": [recipient],
            }
        }


def _invite_key(entry: CreatedRequest) -> Hashable:
    return entry.invite_key


def _bearer(value: str | None) -> str | None:
    if value is None:
        return None
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _origin(scope: Scope, headers: Mapping[str, str]) -> str:
    """``scheme://host[:port]`` as the client addressed the fake."""
    host = headers.get("host")
    if not host:
        server = scope.get("server") or ("127.0.0.1", 80)
        host = f"{server[0]}:{server[1]}"
    return f"{scope.get('scheme', 'http')}://{host}"


def _connection_of(send: Send) -> asyncio.BaseTransport | None:
    """
    The connection an ASGI server answers on, where it can be found (uvicorn's, by its send).

    ASGI has no way to close a connection without answering; the in-process transport has no
    connection at all, and turns `DropConnection` into what a client would see instead.
    """
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    return transport if isinstance(transport, asyncio.BaseTransport) else None


def _accepts_gzip(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name.lower() == b"accept-encoding":
            codings = (part.split(b";")[0].strip().lower() for part in value.split(b","))
            return b"gzip" in codings
    return False


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


class InProcessTransport(httpx.AsyncBaseTransport):
    """
    httpx's ASGI transport, plus what a network would do.

    ``httpx.ASGITransport`` ignores timeouts and surfaces app exceptions as they are; this one
    applies the request's read timeout and turns a dropped connection into the
    ``httpx.RemoteProtocolError`` a real socket would give.
    """

    def __init__(self, app: FakeCronofy) -> None:
        self._asgi = httpx.ASGITransport(app=app)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send `request` to the app."""
        read_timeout = request.extensions.get("timeout", {}).get("read")
        try:
            async with asyncio.timeout(read_timeout):
                return await self._asgi.handle_async_request(request)
        except TimeoutError:
            raise httpx.ReadTimeout(
                "timed out waiting for the fake's answer", request=request
            ) from None
        except DropConnection:
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a response.", request=request
            ) from None
