"""
An asyncio client for Cronofy's Scheduler API.

>>> from cronofy_async import AsyncSchedulerAPI, NewSchedulerRequest, Host, Recipient, Event
"""

from ._batch import DEFAULT_CONCURRENCY, BatchReport, BatchResult, BatchStream, Outcome
from ._client import DEFAULT_TIMEOUT, AsyncSchedulerAPI
from ._data_centers import DataCenter
from ._errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BatchInputError,
    ClientClosedError,
    ConfigurationError,
    CronofyError,
    FieldError,
    IdempotencyConflictError,
    LedgerUnavailableError,
    LimiterUnavailableError,
    LockedError,
    NotFoundError,
    NotificationError,
    OutcomeUnknownError,
    PaginationError,
    PayloadError,
    PaymentRequiredError,
    PermissionDeniedError,
    RateLimitError,
    ResponseFormatError,
    ServerError,
    ValidationError,
)
from ._ledger import Ledger, LedgerEntry, LedgerState, MemoryLedger
from ._logs import configure_from_env
from ._members import OrganizationalUnitMember, OrganizationalUnitResource
from ._models import ScheduledRecipient, SchedulerRequest
from ._payload import MAX_SUMMARY_LENGTH, Event, GroupRule, Host, NewSchedulerRequest, Recipient
from ._public import publish
from ._ratelimit import Limiter, RateLimit
from ._retry import RetryPolicy
from ._scheduling_models import RecipientOperations, SchedulingRecipient, SchedulingRequest
from ._scheduling_requests import MAX_QUERY_IDS, HostGroup, NewSchedulingRequest
from ._selection_rules import SelectionRule, SelectionRuleMember, SelectionRuleUpdate
from ._sqlite_ledger import SQLiteLedger
from ._version import __version__

__all__ = [
    "DEFAULT_CONCURRENCY",
    "DEFAULT_TIMEOUT",
    "MAX_QUERY_IDS",
    "MAX_SUMMARY_LENGTH",
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncSchedulerAPI",
    "AuthenticationError",
    "BatchInputError",
    "BatchReport",
    "BatchResult",
    "BatchStream",
    "ClientClosedError",
    "ConfigurationError",
    "CronofyError",
    "DataCenter",
    "Event",
    "FieldError",
    "GroupRule",
    "Host",
    "HostGroup",
    "IdempotencyConflictError",
    "Ledger",
    "LedgerEntry",
    "LedgerState",
    "LedgerUnavailableError",
    "Limiter",
    "LimiterUnavailableError",
    "LockedError",
    "MemoryLedger",
    "NewSchedulerRequest",
    "NewSchedulingRequest",
    "NotFoundError",
    "NotificationError",
    "OrganizationalUnitMember",
    "OrganizationalUnitResource",
    "Outcome",
    "OutcomeUnknownError",
    "PaginationError",
    "PayloadError",
    "PaymentRequiredError",
    "PermissionDeniedError",
    "RateLimit",
    "RateLimitError",
    "Recipient",
    "RecipientOperations",
    "ResponseFormatError",
    "RetryPolicy",
    "SQLiteLedger",
    "ScheduledRecipient",
    "SchedulerRequest",
    "SchedulingRecipient",
    "SchedulingRequest",
    "SelectionRule",
    "SelectionRuleMember",
    "SelectionRuleUpdate",
    "ServerError",
    "ValidationError",
    "__version__",
]

# Let tracebacks and reprs name the public module, as httpx does.
publish(globals(), __all__, __name__)

# CRONOFY_LOG=debug|info: a console for those without logging set up.
configure_from_env()
