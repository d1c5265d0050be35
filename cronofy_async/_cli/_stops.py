"""What a 401, 402 or 403 means for this command: whether it stops the batch, and what to do."""

from __future__ import annotations

from collections.abc import Callable

from .._client import SECRET_ENV
from .._errors import (
    APIStatusError,
    AuthenticationError,
    PaymentRequiredError,
    PermissionDeniedError,
)
from ._rows import Defaults, Invite, Row

__all__ = ["explain_refused", "explain_stop", "stops_batch"]


def _own_account(invite: Invite, defaults: Defaults) -> bool:
    """Whether the row is sent as an account of its own, not --impersonate's (or none)."""
    return invite.impersonate is not None and invite.impersonate != defaults.impersonate


def stops_batch(defaults: Defaults) -> Callable[[Row, BaseException], bool]:
    """
    Which failures stop the batch: a 401, a 402, and a 403 unless sent as the row's own account.

    A 401 or 402 would answer every later row too. A 403 to a request sent as a row's own
    ``impersonate`` account says that account is not the application's to use: that row
    fails, and the others go on. Sent as the --impersonate account, or not impersonated, every
    later row would get the same 403, so it stops.
    """

    def stops(row: Row, error: BaseException) -> bool:
        if isinstance(error, AuthenticationError | PaymentRequiredError):
            return True
        if isinstance(error, PermissionDeniedError):
            return not _own_account(row.invite, defaults)
        return False

    return stops


def explain_refused(invite: Invite) -> str:
    """A row's own error when Cronofy answered 403 to the account it was sent as."""
    return (
        f"Cronofy answered 403 to a request sent as {invite.impersonate}: the account is not a "
        "member of the application's Organizational Unit, or the application lacks a "
        "permission; check the row's impersonate value"
    )


def _hosted_by(invite: Invite) -> str:
    if invite.impersonate:
        return f"sent as {invite.impersonate}"
    if invite.host:
        return f"host {invite.host}"
    if invite.selection_rule:
        return f"selection rule {invite.selection_rule}"
    return f"group rule {invite.group_rule}"


def explain_stop(error: BaseException, *, line: int, invite: Invite) -> str:
    """
    A paragraph for the terminal: the status, what it means here, what to do next.

    Every later row was left unsent (recorded as ``not_sent``), so the advice always ends the
    same way: fix the cause, run the same command again, and only those rows are sent.
    """
    status = error.response.status_code if isinstance(error, APIStatusError) else "?"
    again = "then run the same command again: only the rows not created are sent."
    head = f"stopped: Cronofy answered {status} to line {line}, so nothing more was sent."
    if isinstance(error, AuthenticationError):
        return (
            f"{head} The client secret was not accepted: it is wrong, revoked, or belongs to an "
            f"application in another data center than '{invite.data_center}'. Check "
            f"{SECRET_ENV} (or --client-secret-file) and --data-center, {again}"
        )
    if isinstance(error, PaymentRequiredError):
        return (
            f"{head} Your Cronofy plan does not include the Scheduler API. Ask Cronofy to "
            f"enable it for this application, {again}"
        )
    return (
        f"{head} The application may not do this ({_hosted_by(invite)}): the account is not a "
        "member of its Organizational Unit, or the application lacks a permission. Check the "
        f"row's host or impersonate value (or --host / --impersonate) and the application, "
        f"{again}"
    )
