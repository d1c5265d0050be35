"""
One call to Cronofy described as data: what to send, how to read a success, and how safe it is.

Every endpoint is an `Operation` built by a pure function of its family's module; the client's
one pipeline (`AsyncSchedulerAPI._call`: pace, 429 pause, retry, send, read errors) runs them
all. Retry safety is a property of the operation, not of the pipeline:

- `idempotent`: sending it twice does what sending it once does (query, cancel, list, show,
  update). Transient failures (5xx, read timeouts, dropped connections) are retried by default.
- `mutates`: it may change something at Cronofy. Its errors say ``outcome_unknown=True`` when it
  may have taken effect; for operations that change nothing, ``outcome_unknown`` is always
  ``False``.

A create is neither idempotent nor safe to repeat: Cronofy has no idempotency key.
"""

from __future__ import annotations

import json
import json.encoder
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar

import attrs
import httpx

from ._errors import ResponseFormatError
from ._response import excerpt, status_text
from ._secret import ClientSecret

if TYPE_CHECKING:
    from ._otel import BatchTrace

__all__ = ["Calls", "Operation", "Reader", "json_body", "no_body", "read_json"]

T = TypeVar("T")

Reader = Callable[[bytes, Callable[[], httpx.Response], "ClientSecret | None"], T]
"""
How a 2xx is read: ``(body, make_response, secret) -> model``.

``make_response`` builds the ``httpx.Response`` only when an error must carry it, so the fast
path never builds one for a success.
"""


# Not frozen: one is built per call, and a frozen class's __init__ costs twice as much. The
# builders make it and the pipeline only reads it.
@attrs.define(kw_only=True, slots=True)
class Operation(Generic[T]):
    """One request to Cronofy and how to read its success."""

    name: str
    """The call it is, as the public method is named: ``create_scheduler_request``."""
    method: str
    """``GET``, ``POST`` or ``PATCH``."""
    path: str
    """The path under the data center's base URL, query string included."""
    read: Reader[T]
    """Reads a 2xx into the operation's result."""
    idempotent: bool
    """Whether sending it twice is the same as sending it once (safe to retry)."""
    mutates: bool
    """Whether it may change something at Cronofy (so an unknown outcome matters)."""
    body: bytes | None = None
    """The JSON body, already encoded."""
    url: str | None = None
    """A full URL to use instead of the base URL and `path` (a ``next_page`` link)."""
    payload: Any = None
    """What `body` was encoded from, for a create: its fingerprint is `canonical_json` of it."""

    @property
    def what(self) -> str:
        """
        How logs name it: ``create_scheduler_request (POST /v1/scheduler_requests)``.

        The list's own path for a page link: its token stays out of every log line.
        """
        return f"{self.name} ({self.method} {self.path})"


JSON_SEPARATORS: Final = (",", ":")
_ENCODER: Final = json.JSONEncoder(ensure_ascii=False, separators=JSON_SEPARATORS, allow_nan=False)
# The C encoder behind it, made once: JSONEncoder.encode makes a new one per call, and that
# was half the cost of encoding a create's body. Without its table of objects being encoded
# (None), since bodies are ours and trees; a cycle still ends, in a RecursionError.
# Neither is in typeshed: CPython's own, used by JSONEncoder and JSONDecoder themselves.
_c_make_encoder: Callable[..., Callable[[Any, int], Sequence[str]]] | None = getattr(
    json.encoder, "c_make_encoder", None
)


def _c_encoder(*, sort_keys: bool) -> Callable[[Any, int], Sequence[str]] | None:
    if _c_make_encoder is None:  # pragma: no cover - CPython always has the C encoder
        return None
    return _c_make_encoder(
        None,
        _ENCODER.default,
        json.encoder.encode_basestring,
        None,
        JSON_SEPARATORS[1],
        JSON_SEPARATORS[0],
        sort_keys,
        False,
        False,
    )


_C_ENCODER: Final = _c_encoder(sort_keys=False)
_C_CANONICAL: Final = _c_encoder(sort_keys=True)


def canonical_json(payload: Any) -> bytes:
    """
    `payload` as `json_body` encodes it, but with every object's keys sorted: one form per value.

    What an idempotency key's fingerprint digests, so that a field given through ``extra=``
    and the same field modelled on the builder are one request. The payload's keys are all
    strings (``extra=`` mappings are kept as JSON reads them).

    >>> canonical_json({"b": 1, "a": {"d": 2, "c": 3}})
    b'{"a":{"c":3,"d":2},"b":1}'
    """
    if _C_CANONICAL is None:  # pragma: no cover - CPython always has the C encoder
        return json.dumps(
            payload, ensure_ascii=False, separators=JSON_SEPARATORS, sort_keys=True
        ).encode()
    return "".join(_C_CANONICAL(payload, 0)).encode()


def json_body(payload: Any) -> bytes:
    """
    Compact, strict UTF-8 JSON: ``NaN`` and ``Infinity`` are refused, never sent.

    Raises ``ValueError`` for them and for a structure nested too deeply (or circular), and
    ``UnicodeEncodeError`` for a lone surrogate; the builders refuse all of them earlier with
    a `PayloadError` naming the field.

    >>> json_body({"event": {"summary": "Driving lessons"}})
    b'{"event":{"summary":"Driving lessons"}}'
    """
    if _C_ENCODER is None:  # pragma: no cover - CPython always has the C encoder
        return _ENCODER.encode(payload).encode()
    try:
        return "".join(_C_ENCODER(payload, 0)).encode()
    except RecursionError:
        raise ValueError("the body is nested too deeply, or refers to itself") from None


def _malformed(
    problem: str,
    content: bytes,
    response: Callable[[], httpx.Response],
    secret: ClientSecret | None,
    *,
    processed: bool,
) -> ResponseFormatError:
    whole = response()
    consequence = "; the request was probably processed" if processed else ""
    if secret is not None:  # a problem can quote a value from the body
        problem = secret.redact(problem)
    return ResponseFormatError(
        f"Cronofy answered {status_text(whole, secret)} but {problem}{consequence}. "
        f"Body: {excerpt(content, secret)}",
        response=whole,
        outcome_unknown=processed,
    )


_DECODER: Final = json.JSONDecoder()
_DECODE: Final = _DECODER.decode
# The scanner under it: a body without surrounding whitespace (every body Cronofy sends) needs
# nothing else, and skips two regular-expression matches and two calls in Python.
_SCAN: Final[Callable[[str, int], tuple[Any, int]]] = getattr(_DECODER, "scan_once")  # noqa: B009


def loads(content: bytes) -> Any:
    """
    `json.loads` for a body that is almost always UTF-8, without guessing its encoding first.

    Anything else (a BOM, UTF-16) goes the standard way. Raises ``ValueError`` as it does, and
    for a value nested too deeply to read (which `json.loads` reports as ``RecursionError``), so
    that every reader turns any unreadable body into a typed error.
    """
    try:
        return _loads(content)
    except RecursionError:
        raise ValueError("the body is nested too deeply to read") from None


def _loads(content: bytes) -> Any:
    if b"\x00" in content[:4]:  # UTF-16 or UTF-32 without a BOM is also valid UTF-8
        return json.loads(content)
    try:
        text = content.decode()
    except UnicodeDecodeError:
        return json.loads(content)
    if text.startswith("\ufeff"):
        return json.loads(content)
    try:
        value, end = _SCAN(text, 0)
    except StopIteration:
        return _DECODE(text)  # leading whitespace, or not JSON: the decoder says which
    if end == len(text):
        return value
    return _DECODE(text)  # trailing whitespace, or something after the value


def read_json(
    key: str,
    structure: Callable[[Any], T],
    *,
    mutates: bool,
) -> Reader[T]:
    """
    A reader for a body ``{key: ...}``: the value under `key`, structured.

    `structure` raises ``TypeError`` or ``ValueError`` (messages naming the field) for a
    malformed value; the reader turns that into a `ResponseFormatError`. A 2xx of an operation
    that `mutates` was processed, so its format error says ``outcome_unknown=True``.
    """

    def read(
        content: bytes, response: Callable[[], httpx.Response], secret: ClientSecret | None
    ) -> T:
        try:
            body = loads(content)
        except ValueError:
            body = None
        if type(body) is not dict and not isinstance(body, Mapping):  # no ABC check per call
            problem = "the body is not a JSON object"
        elif key not in body:
            problem = f"the field {key} is missing"
        else:
            try:
                return structure(body[key])
            except (TypeError, ValueError) as exc:
                problem = str(exc)
        error = _malformed(problem, content, response, secret, processed=mutates)
        # The body may echo the secret: a traceback printed with its locals must not show it
        # (`response` is a partial holding it too).
        del content, body, response
        raise error

    return read


def no_body(
    content: bytes, response: Callable[[], httpx.Response], secret: ClientSecret | None
) -> None:
    """A reader for an answer whose body does not matter (``202 Accepted``)."""
    return


class Calls:
    """
    The base of every endpoint family's methods on `AsyncSchedulerAPI`.

    A family's methods build an `Operation` with its pure functions and hand it to `_call`, the
    one pipeline; they never send anything themselves.
    """

    __slots__ = ()

    _impersonate: str | None

    def _check_open(self) -> None:
        raise NotImplementedError

    def _call(
        self, operation: Operation[T], on_send: Callable[[], None] | None = None
    ) -> Coroutine[Any, Any, T]:
        raise NotImplementedError

    def _batch_trace(self, name: str, operation: str) -> BatchTrace | None:
        raise NotImplementedError

    async def _send_once(
        self,
        operation: Operation[T],
        on_send: Callable[[], None] | None,
        *,
        key: object,
        resend_unknown: bool,
        request_id: Callable[[T], str],
    ) -> T:
        raise NotImplementedError
