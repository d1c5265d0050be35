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
import hashlib
import json
import logging
import os
import secrets
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
from ._operation import Operation
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

    The body is canonical (keys sorted), so two builders that differ only in the order of
    their ``extra`` fields are the same request.
    """
    body = json.loads(operation.body) if operation.body is not None else None
    canonical = json.dumps(
        [operation.method, operation.path, base_url, impersonate, body],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _held(ledger: Ledger) -> dict[str, asyncio.Future[None]]:
    try:
        held = _HELD.get(ledger)
        if held is None:
            held = _HELD[ledger] = {}
    except TypeError:
        held = _BY_ID.setdefault(id(ledger), {})
    return held


async def _ask(what: str, call: Awaitable[T]) -> T:
    """One exchange with the ledger; whatever it raises becomes `LedgerUnavailableError`."""
    try:
        return await call
    except LedgerUnavailableError:
        raise
    except Exception as exc:
        raise LedgerUnavailableError(
            f"the idempotency ledger failed to {what}: {type(exc).__name__}; nothing was sent"
        ) from exc


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
    owner = f"{os.getpid()}-{secrets.token_hex(6)}"  # which process holds it, for the curious
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
            entry = await _ask(
                "claim the key",
                ledger.claim(key, print_, owner=owner, resend_unknown=resend_unknown),
            )
        except asyncio.CancelledError:
            # The claim may have been recorded as the cancel landed: give it back.
            await _finish("give the claim back", lambda: ledger.release(key, owner=owner), key)
            raise
        except LedgerUnavailableError:
            # Or as the ledger timed out: given back in the background, if it is back.
            _background(ledger.release(key, owner=owner))
            raise
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
    renewal = _Renewal(ledger, key, owner, loop)
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
        content = secret.redact(answer[-1].decode(errors="replace")).encode() if answer else b""
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
        renewal.cancel()
        if held.get(key) is mine:
            del held[key]
        mine.set_result(None)


def _settle(ledger: Ledger, key: str, owner: str, state: LedgerState) -> Awaitable[None]:
    return ledger.settle(key, owner=owner, state=state)


class _Renewal:
    """Renews a claim every third of a lease while its call runs: one timer, no task."""

    __slots__ = ("_handle", "_key", "_ledger", "_loop", "_owner", "_task")

    def __init__(
        self, ledger: Ledger, key: str, owner: str, loop: asyncio.AbstractEventLoop
    ) -> None:
        self._ledger, self._key, self._owner, self._loop = ledger, key, owner, loop
        self._task: asyncio.Task[None] | None = None
        self._handle = loop.call_later(ledger.lease / 3, self._renew)

    def _renew(self) -> None:
        self._task = self._loop.create_task(self._run())
        self._handle = self._loop.call_later(self._ledger.lease / 3, self._renew)

    async def _run(self) -> None:
        with contextlib.suppress(Exception):
            await self._ledger.renew(self._key, owner=self._owner)

    def cancel(self) -> None:
        self._handle.cancel()
        if self._task is not None:
            self._task.cancel()
