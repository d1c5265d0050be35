"""
The exceptions this library raises.

Every one of them derives from `CronofyError`, so one ``except`` catches them all::

    CronofyError
    ├── ConfigurationError (ValueError)   bad secret / data center / base URL / option
    ├── PayloadError (ValueError)         a request refused before anything was sent
    ├── ClientClosedError (RuntimeError)  the API object (or the view) was closed
    ├── NotificationError (ValueError)    a push notification body that cannot be read
    ├── LimiterUnavailableError           a shared rate limiter (Redis) did not answer in
    │                                     time or failed; nothing was sent
    ├── BatchInputError                   a batch's input raised; `report` has what was sent
    ├── LedgerUnavailableError            the idempotency ledger could not be read or written
    │                                     in time; nothing was sent
    ├── IdempotencyConflictError          an idempotency key already stands for another
    │                                     request; nothing was sent
    └── APIError                          a call that went out; `outcome_unknown` says whether
        │                                 the scheduler request may exist anyway
        ├── APIConnectionError            no usable response (wraps an httpx error)
        │   └── APITimeoutError           ... because a timeout expired
        ├── ResponseFormatError           a response whose body is not what Cronofy documents
        ├── PaginationError               a listing that could not be read to its last page
        ├── OutcomeUnknownError           an idempotency key's earlier send may have created
        │                                 the invite; nothing was sent this time
        └── APIStatusError                a response with an error status
            ├── AuthenticationError       401  credentials not recognised
            ├── PaymentRequiredError      402  the plan lacks this feature
            ├── PermissionDeniedError     403  insufficient scope / not allowed
            ├── NotFoundError             404
            ├── ValidationError           422  invalid parameters; see `errors`
            ├── LockedError               423
            ├── RateLimitError            429  see `retry_after`
            └── ServerError               5xx  the request may have been processed

`outcome_unknown` is the attribute to read before sending a create again: Cronofy has no
idempotency key, so a request that may have been processed must not be re-sent blindly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    import httpx

    from ._batch import BatchReport

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BatchInputError",
    "ClientClosedError",
    "ConfigurationError",
    "CronofyError",
    "FieldError",
    "IdempotencyConflictError",
    "LedgerUnavailableError",
    "LimiterUnavailableError",
    "LockedError",
    "NotFoundError",
    "NotificationError",
    "OutcomeUnknownError",
    "PaginationError",
    "PayloadError",
    "PaymentRequiredError",
    "PermissionDeniedError",
    "RateLimitError",
    "ResponseFormatError",
    "ServerError",
    "ValidationError",
]


class CronofyError(Exception):
    """The root of every exception raised by `cronofy_async`."""


class ConfigurationError(CronofyError, ValueError):
    """An `AsyncSchedulerAPI` option is missing or invalid (secret, data center, base URL...)."""


class ClientClosedError(CronofyError, RuntimeError):
    """The API object (or view) was closed; nothing was sent."""


class LimiterUnavailableError(CronofyError):
    """
    The shared rate limiter could not be asked for a slot: nothing was sent for that call.

    Raised by `cronofy_async.redis.RedisLimiter` when Redis is unreachable, too slow (its
    ``timeout``, 5 s by default) or failing; the Redis error is the ``__cause__``. The request
    never left, so sending it again later is safe. A batch reports such an item ``failed``
    (not created), with this error.

    >>> issubclass(LimiterUnavailableError, CronofyError)
    True
    """


class LedgerUnavailableError(CronofyError):
    """
    The idempotency ledger could not be read or written in time: nothing was sent.

    Raised when a `SQLiteLedger`'s file is locked past its timeout (5 s by default), corrupt
    or cannot be opened, or a ``RedisLedger``'s Redis is unreachable or failing. The
    ledger's own error is the ``__cause__``; the request never left, so it is safe to try
    again once the ledger is back.

    >>> issubclass(LedgerUnavailableError, CronofyError)
    True
    """


class IdempotencyConflictError(CronofyError):
    """
    An idempotency key already stands for a different request: nothing was sent.

    A key names one request (method, path, data center, impersonated account and body);
    using it for another is a mistake in the caller's keys, refused before sending::

        try:
            await api.create_scheduling_request(other, idempotency_key="order-42")
        except IdempotencyConflictError as error:
            print(error.key, "was used for another invite")
    """

    def __init__(self, key: str) -> None:
        super().__init__(
            f"idempotency key {key!r} was already used for a different request (another "
            "body, data center or impersonated account); nothing was sent"
        )
        self.key = key
        """The key that conflicts."""


class BatchInputError(CronofyError):
    """
    The input of a batch raised while it was being read.

    Nothing was thrown away: every item read before the failure was sent as usual. From
    ``batch_create_*``, `report` is the `BatchReport` of those items (input order, real
    outcomes: invites exist for the created ones); from ``iter_create_*``, each result was
    yielded before this error and `report` is empty. The input's exception is the
    ``__cause__``::

        try:
            report = await api.batch_create_scheduler_requests(rows())
        except BatchInputError as error:
            report = error.report  # what was read, and what became of it
            print("input failed after", error.read, "items:", error.__cause__)
    """

    def __init__(self, message: str, *, report: BatchReport[Any, Any], read: int) -> None:
        super().__init__(message)
        self.report = report
        """The `BatchReport` of every item read before the failure (empty from an iterator)."""
        self.read = read
        """How many items were read before the input raised (the failing one is item `read`)."""


class PayloadError(CronofyError, ValueError):
    """
    A request was refused before any network call.

    `field` is the dotted path of the offending field in Cronofy's terms, such as
    ``recipients.email`` or ``event.summary``; the message starts with it.
    """

    field: str

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


class NotificationError(CronofyError, ValueError):
    """
    A push notification body that cannot be read: not JSON, or without what Cronofy documents.

    `path` names what is wrong in Cronofy's dotted terms, such as ``notification`` or
    ``notification.triggered_at``; the message starts with it. Neither ever quotes a value
    from the body, so the message is safe to log.
    """

    path: str

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class APIError(CronofyError):
    """
    A call to Cronofy that did not give the expected result.

    `outcome_unknown` is ``True`` exactly when the request may have been processed (a timeout
    after it was sent, a dropped connection, a 5xx): re-sending a create then risks a second
    invite. `attempts` is how many times the request was sent.
    """

    outcome_unknown: bool
    attempts: int

    def __init__(self, message: str, *, outcome_unknown: bool, attempts: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.outcome_unknown = outcome_unknown
        self.attempts = attempts

    def __str__(self) -> str:
        if self.attempts > 1:
            return f"{self.message} (after {self.attempts} attempts)"
        return self.message


class APIConnectionError(APIError):
    """
    No usable response was received; the httpx error is the ``__cause__``.

    `outcome_unknown` is ``False`` when the failure proves nothing reached Cronofy (could not
    connect, no connection free in the pool) and ``True`` once the request may have been sent.
    """

    def __init__(
        self,
        message: str,
        *,
        request: httpx.Request,
        outcome_unknown: bool,
        attempts: int = 1,
    ) -> None:
        super().__init__(message, outcome_unknown=outcome_unknown, attempts=attempts)
        self.request = request


class APITimeoutError(APIConnectionError):
    """A timeout expired: connecting (safe to retry) or waiting for the response (not)."""


class _ResponseError(APIError):
    """An error that carries the HTTP response it was made from."""

    def __init__(
        self,
        message: str,
        *,
        response: httpx.Response,
        outcome_unknown: bool,
        attempts: int = 1,
    ) -> None:
        super().__init__(message, outcome_unknown=outcome_unknown, attempts=attempts)
        self.response = response
        self.status_code = response.status_code


class ResponseFormatError(_ResponseError):
    """
    Cronofy answered, but not in the documented shape.

    For example a 200 without a ``scheduler_request_id``. On a 2xx the request was processed,
    so `outcome_unknown` is ``True``.
    """


class PaginationError(APIError):
    """
    A listing stopped before its last page: what came after the `yielded` items was never read.

    Raised by the ``iter_organizational_unit_*`` iterators, after every item they could read
    was yielded, when the server's paging cannot be followed safely: a ``next_page`` link that
    is not below the list's own path on the base URL (following it would send the bearer
    token elsewhere), a page or link that comes again, or an empty page that claims more after
    it. `reason` says which, as one of `REASONS`; `path` is the list's path; `pages` is how
    many pages were read. Listing changes nothing, so `outcome_unknown` is always ``False``::

        members = []
        try:
            async for member in api.iter_organizational_unit_members():
                members.append(member)
        except PaginationError as error:
            print(f"only {error.yielded} members read: {error.reason}")
    """

    REASONS = ("refused_link", "repeated_page", "link_loop", "empty_page", "too_many_pages")
    """Every `reason` this error can carry."""

    def __init__(self, message: str, *, path: str, reason: str, yielded: int, pages: int) -> None:
        super().__init__(message, outcome_unknown=False, attempts=1)
        self.path = path
        """The list's path, such as ``/v1/organizational_unit_members``."""
        self.reason = reason
        """Why it stopped: one of `REASONS`."""
        self.yielded = yielded
        """How many items were yielded before it stopped (each once)."""
        self.pages = pages
        """How many pages were read."""


class OutcomeUnknownError(APIError):
    """
    An earlier send under this idempotency key may have created the invite: nothing was sent.

    The earlier call timed out or failed after its bytes left, its process died mid-send, or
    another call with the key is still in flight past the ledger's ``wait``. Check in
    Cronofy (or with the recipient) whether the invite exists; to send it again regardless,
    pass ``resend_unknown=True``. `outcome_unknown` is always ``True`` and `attempts` 0::

        try:
            await api.create_scheduling_request(request, idempotency_key="order-42")
        except OutcomeUnknownError as error:
            print(error.key, "may already have been invited")
    """

    def __init__(self, key: str, reason: str, *, holder_died: bool = False) -> None:
        super().__init__(
            f"idempotency key {key!r}: {reason}, so the invite may exist; nothing was sent. "
            "Check whether it does, or pass resend_unknown=True to send it again anyway",
            outcome_unknown=True,
            attempts=0,
        )
        self.key = key
        """The idempotency key whose outcome is unknown."""
        self.holder_died = holder_died
        """This call was the first to find the earlier sender's claim lapsed: it died
        mid-send, so no call reported that send's outcome before this one."""


class APIStatusError(_ResponseError):
    """Cronofy answered with an error status; `status_code` and `response` say which."""


class AuthenticationError(APIStatusError):
    """401: the client secret was not recognised."""


class PaymentRequiredError(APIStatusError):
    """402: the Cronofy plan lacks the Scheduler feature."""


class PermissionDeniedError(APIStatusError):
    """403: the application may not do this (scope, or the sub is not in its organization)."""


class NotFoundError(APIStatusError):
    """404: Cronofy does not know the resource."""


@attrs.frozen(kw_only=True)
class FieldError:
    """One problem Cronofy reported with one field of a 422 response."""

    key: str
    """Cronofy's machine-readable key, such as ``errors.required``."""
    description: str
    """Cronofy's human-readable text, such as ``required``."""


class ValidationError(APIStatusError):
    """
    422: Cronofy refused the parameters.

    `errors` maps each field (``recipients.email``) to its problems, parsed from Cronofy's body
    ``{"errors": {"<field>": [{"key": ..., "description": ...}]}}``.
    """

    def __init__(
        self,
        message: str,
        *,
        response: httpx.Response,
        errors: Mapping[str, tuple[FieldError, ...]],
        outcome_unknown: bool = False,
        attempts: int = 1,
    ) -> None:
        super().__init__(
            message, response=response, outcome_unknown=outcome_unknown, attempts=attempts
        )
        self.errors = errors


class LockedError(APIStatusError):
    """423: the resource is locked."""


class RateLimitError(APIStatusError):
    """
    429: over Cronofy's rate limit. The request was not processed.

    `retry_after` is the wait in seconds the server asked for, or ``None`` if it gave none.
    """

    def __init__(
        self,
        message: str,
        *,
        response: httpx.Response,
        retry_after: float | None,
        outcome_unknown: bool = False,
        attempts: int = 1,
    ) -> None:
        super().__init__(
            message, response=response, outcome_unknown=outcome_unknown, attempts=attempts
        )
        self.retry_after = retry_after


class ServerError(APIStatusError):
    """5xx: Cronofy failed. The request may have been processed (`outcome_unknown` is ``True``)."""
