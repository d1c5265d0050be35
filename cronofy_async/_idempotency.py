"""
Creates under an idempotency key: sent at most once per key, across calls and processes.

`send_once` wraps the one pipeline (`AsyncSchedulerAPI._call`) for a create that carries a
key. Before anything is sent, the ledger records the claim (the key, the request's
`fingerprint`, an owner and a lease); then the pipeline sends; then the outcome is recorded.
A key already `CREATED` is answered from the ledger without sending or pacing; one `UNKNOWN`
raises `OutcomeUnknownError`; one another call is sending is waited for (calls of this process
wait on that call itself, others poll the ledger), within the ledger's ``wait``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import logging
import math
import os
import secrets
import threading
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

import httpx

from ._errors import (
    APIError,
    IdempotencyConflictError,
    LedgerUnavailableError,
    OutcomeUnknownError,
    PayloadError,
)
from ._ledger import Ledger, LedgerEntry, LedgerState
from ._logs import mask_emails
from ._operation import Operation, canonical_json
from ._secret import ClientSecret

__all__ = ["MAX_KEY_LENGTH", "check_key", "fingerprint", "send_once"]

logger: Final = logging.getLogger("cronofy_async")

T = TypeVar("T")

MAX_KEY_LENGTH: Final = 255
"""The longest idempotency key, in characters."""

_FIRST_POLL: Final = 0.005
_LONGEST_POLL: Final = 0.25

# The calls of this process that hold a claim, per ledger: another call of the process with
# the same key waits for that call to finish rather than polling the ledger.
_HELD: weakref.WeakKeyDictionary[Any, dict[str, asyncio.Future[None]]] = weakref.WeakKeyDictionary()
_BY_ID: dict[int, dict[str, asyncio.Future[None]]] = {}  # for ledgers that refuse weak refs


def check_key(key: object, secret: ClientSecret) -> str:
    """
    `key` if it can be an idempotency key, else `PayloadError` naming ``idempotency_key``.

    A non-empty string of at most 255 characters that UTF-8 can encode, and never one that
    holds the client secret (keys are stored in the clear).
    """
    if not isinstance(key, str):
        raise PayloadError("idempotency_key", f"must be a string, got {type(key).__name__}")
    if not key:
        raise PayloadError("idempotency_key", "must not be empty")
    if len(key) > MAX_KEY_LENGTH:
        raise PayloadError(
            "idempotency_key", f"must be at most {MAX_KEY_LENGTH} characters, got {len(key)}"
        )
    if not key.isascii():
        try:
            key.encode()
        except UnicodeEncodeError:
            raise PayloadError("idempotency_key", "holds a lone surrogate, not text") from None
    if secret.reveal() in key:
        raise PayloadError("idempotency_key", "must not contain the client secret")
    return key


def fingerprint(operation: Operation[Any], *, base_url: str, impersonate: str | None) -> str:
    """
    A digest of what a create sends: method, path, base URL, impersonated sub and body.

    The body is canonical (`canonical_json`: keys sorted all the way down), so two builders
    that differ only in the order of their fields, or that give a field through ``extra=``
    rather than its keyword, are the same request.
    """
    body = operation.body
    digest = _head(operation.method, operation.path, base_url, impersonate, body is not None)
    digest = digest.copy()
    try:
        if operation.payload is not None:
            digest.update(canonical_json(operation.payload))
        elif body is not None:
            digest.update(canonical_json(json.loads(body)))
    except RecursionError:
        raise PayloadError("extra", "is nested too deeply to be sent as JSON") from None
    return digest.hexdigest()


@functools.lru_cache(maxsize=256)
def _head(
    method: str, path: str, base_url: str, impersonate: str | None, has_body: bool
) -> hashlib._Hash:
    """The digest of a fingerprint's first line: one per endpoint and API object, made once."""
    head = json.dumps([method, path, base_url, impersonate, has_body], ensure_ascii=False)
    # One line of JSON: what follows its newline is the body, unambiguously.
    return hashlib.sha256(head.encode(errors="surrogatepass") + b"\n")


_last_held: tuple[weakref.ref[Any], dict[str, asyncio.Future[None]]] | None = None


def _held(ledger: Ledger) -> dict[str, asyncio.Future[None]]:
    """The calls of this process sending under `ledger`, by key (the last ledger's at hand)."""
    global _last_held  # a cache, read and replaced whole
    last = _last_held
    if last is not None and last[0]() is ledger:
        return last[1]
    try:
        held = _HELD.get(ledger)
        if held is None:
            held = _HELD[ledger] = {}
        _last_held = (weakref.ref(ledger), held)
    except TypeError:
        held = _BY_ID.setdefault(id(ledger), {})
    return held


def _unavailable(what: str, exc: Exception) -> LedgerUnavailableError:
    """What a ledger's own failure (not a `LedgerUnavailableError`) becomes."""
    return LedgerUnavailableError(
        f"the idempotency ledger failed to {what}: {type(exc).__name__}; nothing was sent"
    )


class _Watch:
    """
    The pipeline's `on_send` for a keyed call: whether its bytes may have left.

    Passes every signal on to the caller's own `on_send` (a batch item's), if any.
    """

    __slots__ = ("_inner", "maybe_processed", "on_wire", "sent")

    def __init__(self, inner: Callable[[], None] | None) -> None:
        self._inner = inner
        self.sent = 0
        self.on_wire = False
        self.maybe_processed = False

    def __call__(self) -> None:
        self.sent += 1
        self.on_wire = True
        if self._inner is not None:
            self._inner()

    def settled(self, maybe_processed: bool) -> None:
        self.on_wire = False
        self.maybe_processed = self.maybe_processed or maybe_processed
        settled = getattr(self._inner, "settled", None)
        if settled is not None:
            settled(maybe_processed)

    @property
    def may_exist(self) -> bool:
        """Whether a send may have been processed: on the wire now, or said so on failing."""
        return self.on_wire or self.maybe_processed


def _replay(
    operation: Operation[T], entry: LedgerEntry, secret: ClientSecret, on_send: object
) -> T:
    content = entry.result
    if content is None:
        raise LedgerUnavailableError(
            f"idempotency key {entry.key!r} is recorded as created but its answer is missing "
            "from the ledger; nothing was sent"
        )
    try:
        model = operation.read(content, lambda: httpx.Response(200, content=content), secret)
    except APIError as exc:
        raise LedgerUnavailableError(
            f"idempotency key {entry.key!r}: the answer stored in the ledger cannot be read "
            "(the ledger may be corrupt); nothing was sent"
        ) from exc
    replayed = getattr(on_send, "replayed", None)
    if replayed is not None:
        replayed()
    return model


async def _finish(what: str, call: Callable[[], Awaitable[None]], key: str) -> None:
    """
    Record an outcome even if the caller is cancelled meanwhile; failures are logged.

    Awaited directly (a task per create would cost a round of the loop): cancelled mid-way,
    the record is made again in the background, which is harmless, as a settle or release
    applies only to the claim it names.
    """
    try:
        await call()
    except asyncio.CancelledError:
        _background(call(), what=what, key=key)
        raise
    except Exception as exc:
        # The key's claim then lapses to UNKNOWN after its lease: never sent again by itself.
        logger.warning(
            "could not %s for idempotency key %r in the ledger (%s); it will read as unknown",
            what,
            mask_emails(key),
            type(exc).__name__,
        )


_BACKGROUND: set[asyncio.Task[None]] = set()


def _background(call: Awaitable[None], *, what: str = "", key: str = "") -> None:
    async def quietly() -> None:
        try:
            await call
        except Exception:
            if what:
                logger.warning(
                    "could not %s for idempotency key %r in the ledger", what, mask_emails(key)
                )

    task = asyncio.ensure_future(quietly())
    _BACKGROUND.add(task)
    task.add_done_callback(_BACKGROUND.discard)


def _capture(operation: Operation[T], answer: list[bytes]) -> Operation[T]:
    """`operation`, its reader keeping the body of the success it reads in `answer`."""
    read = operation.read

    def keep(
        content: bytes, response: Callable[[], httpx.Response], secret: ClientSecret | None
    ) -> T:
        model = read(content, response, secret)
        answer.append(content)
        return model

    return Operation(
        name=operation.name,
        method=operation.method,
        path=operation.path,
        read=keep,
        idempotent=operation.idempotent,
        mutates=operation.mutates,
        body=operation.body,
        url=operation.url,
        payload=operation.payload,
    )


async def send_once(
    call: Callable[[Operation[T], Callable[[], None] | None], Awaitable[T]],
    operation: Operation[T],
    *,
    ledger: Ledger,
    key: str,
    print_: str,
    resend_unknown: bool,
    on_send: Callable[[], None] | None,
    request_id: Callable[[T], str],
    secret: ClientSecret,
) -> T:
    """
    Send `operation` through `call` (the pipeline) at most once for `key` in `ledger`.

    `print_` is the request's `fingerprint`; `request_id` reads the created id from a model.
    """
    # Random per call, not a counter: copies of one process made without Python's fork hooks
    # (uWSGI's prefork, a restored snapshot) share every counter, and an owner that matched
    # another process's claim would be told the claim is its own, and send.
    owner = f"{os.getpid()}-{secrets.token_hex(6)}"  # the pid is for the curious
    held = _held(ledger)
    loop = asyncio.get_running_loop()
    deadline: float | None = None
    pause = _FIRST_POLL
    while True:
        here = held.get(key)
        if here is not None and not here.done() and here.get_loop() is loop:
            # Another call of this process sends it now: wait for that call, not the clock.
            if deadline is None:
                deadline = loop.time() + ledger.wait
            try:
                async with asyncio.timeout_at(deadline):
                    await asyncio.shield(here)
            except TimeoutError:
                raise OutcomeUnknownError(
                    key, f"another call has been sending it for more than {ledger.wait:g} s"
                ) from None
            continue
        try:
            entry = await ledger.claim(key, print_, owner=owner, resend_unknown=resend_unknown)
        except asyncio.CancelledError:
            # The claim may have been recorded as the cancel landed: give it back.
            await _finish("give the claim back", lambda: ledger.release(key, owner=owner), key)
            raise
        except Exception as exc:
            # Or as the ledger timed out: given back in the background, if it is back.
            _background(ledger.release(key, owner=owner))
            if isinstance(exc, LedgerUnavailableError):
                raise
            raise _unavailable("claim the key", exc) from exc
        if entry.held_by(owner):
            break
        if entry.fingerprint != print_:
            raise IdempotencyConflictError(key)
        if entry.state is LedgerState.CREATED:
            return _replay(operation, entry, secret, on_send)
        if entry.state is LedgerState.UNKNOWN:
            if entry.lapsed:
                raise OutcomeUnknownError(
                    key, "an earlier send's process died mid-send", holder_died=True
                )
            raise OutcomeUnknownError(key, "an earlier send's outcome is unknown")
        # SENDING, by a call of another process: ask the ledger again shortly.
        if deadline is None:
            deadline = loop.time() + ledger.wait
        left = deadline - loop.time()
        if left <= 0:
            raise OutcomeUnknownError(
                key, f"another process has been sending it for more than {ledger.wait:g} s"
            )
        await asyncio.sleep(min(pause, left))
        pause = min(pause * 2, _LONGEST_POLL)

    mine = held[key] = loop.create_future()
    watch = _Watch(on_send)
    renewals = _renewals(loop)
    renewals.add(loop, ledger, key, owner)
    answer: list[bytes] = []
    try:
        model = await call(_capture(operation, answer), watch)
    except BaseException as error:
        if isinstance(error, APIError):
            # The pipeline's own verdict: a 4xx or a connection never made proves it failed.
            sent = error.outcome_unknown or watch.sent > 0
            state = LedgerState.UNKNOWN if error.outcome_unknown else LedgerState.FAILED
        else:  # cancelled, or something unforeseen: what may have left may exist
            sent, state = watch.may_exist, LedgerState.UNKNOWN
        if sent:
            await _finish(
                f"record a {state} outcome", lambda: _settle(ledger, key, owner, state), key
            )
        else:
            await _finish("give the claim back", lambda: ledger.release(key, owner=owner), key)
        raise
    else:
        content = secret.redact_bytes(answer[-1]) if answer else b""
        created = LedgerState.CREATED
        await _finish(
            "record the created request",
            lambda: ledger.settle(
                key, owner=owner, state=created, request_id=request_id(model), result=content
            ),
            key,
        )
        return model
    finally:
        renewals.discard(owner)
        if held.get(key) is mine:
            del held[key]
        mine.set_result(None)


def _settle(ledger: Ledger, key: str, owner: str, state: LedgerState) -> Awaitable[None]:
    return ledger.settle(key, owner=owner, state=state)


class _Renewals:
    """
    The claims of one event loop's calls, each renewed every third of its lease until it ends.

    One timer for them all, not one per call: a claim costs a dict entry. A claim taken just
    before the timer fires is renewed early, which only extends its lease.
    """

    __slots__ = ("__weakref__", "_claims", "_handle", "_loop_ref", "_period", "_tasks")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        # Weakly: kept in a WeakKeyDictionary by its loop, which it must not keep alive.
        self._loop_ref = weakref.ref(loop)
        self._claims: dict[str, tuple[Ledger, str]] = {}  # by owner, one per call
        self._handle: asyncio.TimerHandle | None = None
        self._period = math.inf
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The loop whose calls' claims these are, while it lives."""
        return self._loop_ref()

    def add(self, loop: asyncio.AbstractEventLoop, ledger: Ledger, key: str, owner: str) -> None:
        """Renew `owner`'s claim on `key` until `discard` (`loop` is this one's, running)."""
        self._claims[owner] = (ledger, key)
        period = ledger.lease / 3
        if period < self._period:  # no timer yet, or one too slow for this lease
            if self._handle is not None:
                self._handle.cancel()
            self._period = period
            self._handle = loop.call_later(period, self._renew)

    def discard(self, owner: str) -> None:
        """Stop renewing `owner`'s claim: its call has ended."""
        claims = self._claims
        claims.pop(owner, None)
        if not claims and self._handle is not None:
            # Idle, no timer: a pending one holds the loop, which then could never be freed.
            self._handle.cancel()
            self._handle, self._period = None, math.inf

    def _renew(self) -> None:
        self._handle, self._period = None, math.inf
        loop = self.loop
        if not self._claims or loop is None:
            return
        for owner, (ledger, key) in self._claims.items():
            # A renewal still on its way when the call ends is harmless: a ledger renews
            # only a claim its owner still holds.
            task = loop.create_task(_renew(ledger, key, owner))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        self._period = min(ledger.lease / 3 for ledger, _ in self._claims.values())
        self._handle = loop.call_later(self._period, self._renew)


async def _renew(ledger: Ledger, key: str, owner: str) -> None:
    with contextlib.suppress(Exception):
        await ledger.renew(key, owner=owner)


# Weakly, by the loop's id: a loop's renewals live while its calls hold claims (their frames
# and its timer hold it), so that a loop closed with a call in flight is freed with it.
_RENEWALS: weakref.WeakValueDictionary[int, _Renewals] = weakref.WeakValueDictionary()


_last_renewals: weakref.ref[_Renewals] | None = None
_renewals_lock = threading.Lock()


def _renewals(loop: asyncio.AbstractEventLoop) -> _Renewals:
    """`loop`'s renewals (the last loop's kept at hand: a dictionary lookup per create is dear)."""
    global _last_renewals  # a cache, read and replaced whole
    ref = _last_renewals
    last = ref() if ref is not None else None
    if last is not None and last.loop is loop:
        return last
    with _renewals_lock:  # loops in several threads
        renewals = _RENEWALS.get(id(loop))
        if renewals is None or renewals.loop is not loop:  # none, or a dead loop's id
            renewals = _RENEWALS[id(loop)] = _Renewals(loop)
        _last_renewals = weakref.ref(renewals)
    return renewals
