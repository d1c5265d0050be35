"""An input that raises CancelledError of its own is an input failure, not an end of input."""

import asyncio
from collections.abc import AsyncIterator

import pytest

from cronofy_async import BatchInputError, Event, Host, NewSchedulerRequest, Recipient
from cronofy_async.testing import FakeCronofy


def req(i: int) -> NewSchedulerRequest:
    return NewSchedulerRequest(
        host=Host(sub="acc_1"), recipients=[Recipient(email=f"p{i}@x.co")], event=Event(summary="s")
    )


async def test_input_raising_cancelled_error_is_not_a_complete_batch() -> None:
    async def rows() -> AsyncIterator[NewSchedulerRequest]:
        for i in range(3):
            yield req(i)
        # e.g. an async DB cursor whose connection was cancelled by its pool's shutdown
        gone = asyncio.get_running_loop().create_future()
        gone.cancel()
        await gone
        for i in range(3, 1000):
            yield req(i)

    fake = FakeCronofy(members=["acc_1"], rate_limit=None)
    async with fake.api(rate_limit=None) as api:
        with pytest.raises(BatchInputError) as info:
            await api.batch_create_scheduler_requests(rows())
    assert info.value.read == 3
    assert len(info.value.report.results) == 3
    assert isinstance(info.value.__cause__, asyncio.CancelledError)
