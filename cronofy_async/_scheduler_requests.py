"""
The scheduler-requests family (ALPHA): ``POST /v1/scheduler_requests``, singly or in batches.

Builders live in `_payload`, the model in `_models`, the wire format in `_request`.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Callable, Iterable

from ._batch import DEFAULT_CONCURRENCY, BatchReport, BatchStream, KeyOf, collect, keyed_send
from ._models import SchedulerRequest
from ._operation import Calls
from ._payload import NewSchedulerRequest
from ._request import create_operation

__all__ = ["SchedulerRequests"]


class SchedulerRequests(Calls):
    """`AsyncSchedulerAPI`'s scheduler-request calls."""

    __slots__ = ()

    async def create_scheduler_request(
        self,
        request: NewSchedulerRequest,
        *,
        idempotency_key: str | None = None,
        resend_unknown: bool = False,
    ) -> SchedulerRequest:
        """
        Create a scheduler request (``POST /v1/scheduler_requests``).

        Returns the created `SchedulerRequest`, whose recipients carry the ``select_url`` to
        send. Raises `PayloadError` before sending anything if `request` breaks a documented
        rule, and an `APIError` subclass if the call still fails after the retries the
        `RetryPolicy` allows: check its ``outcome_unknown`` before sending the invite again.

        With an `idempotency_key`, the create is sent at most once for that key in the API
        object's `ledger`: a key already created answers the stored request without sending,
        one whose outcome is unknown raises `OutcomeUnknownError` (unless `resend_unknown`),
        and one used for another request raises `IdempotencyConflictError`::

            created = await api.create_scheduler_request(
                NewSchedulerRequest(
                    host=Host(sub="acc_61815034636bd5c5ce4edd"),
                    recipients=[Recipient(email="doc@evenitron.com")],
                    event=Event(summary="Driving lessons - Marty & Doc"),
                ),
                idempotency_key="order-42",
            )
        """
        return await self._create(
            request, idempotency_key=idempotency_key, resend_unknown=resend_unknown
        )

    async def _create(
        self,
        request: NewSchedulerRequest,
        on_send: Callable[[], None] | None = None,
        *,
        idempotency_key: str | None = None,
        resend_unknown: bool = False,
    ) -> SchedulerRequest:
        self._check_open()
        operation = create_operation(request, impersonating=self._impersonate is not None)
        if idempotency_key is None:
            return await self._call(operation, on_send)
        return await self._send_once(
            operation,
            on_send,
            key=idempotency_key,
            resend_unknown=resend_unknown,
            request_id=_request_id,
        )

    def iter_create_scheduler_requests(
        self,
        requests: Iterable[NewSchedulerRequest] | AsyncIterable[NewSchedulerRequest],
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        key: KeyOf[NewSchedulerRequest] | None = None,
        resend_unknown: bool = False,
    ) -> BatchStream[NewSchedulerRequest, SchedulerRequest]:
        """
        Create many scheduler requests concurrently; yield each `BatchResult` as it completes.

        `requests` may be any iterable or async iterable, read lazily: at most `concurrency`
        items are in flight and at most a tenth more read and not yet yielded, so a generator
        of a million items runs in flat memory. One item's failure never stops the others, but
        a 401, 402 or 403 dooms them all: the batch then stops early, what was sent finishes,
        and every item left is reported `Outcome.NOT_SENT`. Each item is sent once (and
        retried only as the `RetryPolicy` allows).

        With `key` (``request -> str``), each item is created under its idempotency key, as
        by `create_scheduler_request`: one already created is answered from the ledger
        (`BatchResult.replayed`), one whose outcome is unknown is reported `Outcome.UNKNOWN`
        unsent (unless `resend_unknown`)::

            async with api.iter_create_scheduler_requests(
                requests, key=lambda r: r.recipients[0].email
            ) as results:
                async for result in results:
                    print(result.index, result.outcome, result.replayed)
        """
        self._check_open()
        send = keyed_send(self._create, key, resend_unknown)
        return BatchStream(
            None,
            requests,
            concurrency=concurrency,
            send=send,
            trace=self._batch_trace("batch_create_scheduler_requests", "create_scheduler_request"),
        )

    async def batch_create_scheduler_requests(
        self,
        requests: Iterable[NewSchedulerRequest] | AsyncIterable[NewSchedulerRequest],
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        key: KeyOf[NewSchedulerRequest] | None = None,
        resend_unknown: bool = False,
    ) -> BatchReport[NewSchedulerRequest, SchedulerRequest]:
        """
        Create many scheduler requests concurrently and report on every one, in input order.

        The same as `iter_create_scheduler_requests`, collected into a `BatchReport`. For
        inputs too large to hold every result in memory, or to see results as they come (and
        keep them if the batch is cancelled), iterate instead::

            report = await api.batch_create_scheduler_requests(requests, concurrency=20)
            print(report.counts)
        """
        return await collect(
            self.iter_create_scheduler_requests(
                requests, concurrency=concurrency, key=key, resend_unknown=resend_unknown
            )
        )


def _request_id(created: SchedulerRequest) -> str:
    return created.scheduler_request_id
