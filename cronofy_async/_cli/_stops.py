"""What a 401, 402 or 403 that stopped a batch means for this command, and what to do."""

from __future__ import annotations

from .._client import SECRET_ENV
from .._errors import APIStatusError, AuthenticationError, PaymentRequiredError
from ._rows import Invite

__all__ = ["explain_stop"]


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
