"""Unit tests of the parked-request registry (asyncio only, no Kafka)."""

from __future__ import annotations

import asyncio

import pytest

from app.orders import differs_from, reaches
from app.waiters import ShuttingDown, TooManyWaiters, Waiters, wait
from streams.records import Order


def order(state: str = "CREATED", version: int = 1) -> Order:
    return Order("o1", "c1", "P", 1, 1.0, state=state, version=version)


async def test_publish_wakes_only_waiters_whose_condition_holds() -> None:
    waiters = Waiters(limit=10)
    validated = waiters.park("o1", reaches({"VALIDATED"}))
    changed = waiters.park("o1", differs_from({'"1"'}))
    other = waiters.park("o2", reaches({"VALIDATED"}))

    waiters.publish(order("CREATED", 1))
    assert not validated.future.done() and not changed.future.done()

    waiters.publish(order("CREATED", 2))
    assert changed.future.result() == order("CREATED", 2)
    assert not validated.future.done()

    waiters.publish(order("FAILED", 3))  # terminal: VALIDATED is out of reach
    assert validated.future.result() == order("FAILED", 3)
    assert not other.future.done()
    assert len(waiters) == 1


async def test_wait_times_out_and_the_waiter_can_be_removed_twice() -> None:
    waiters = Waiters(limit=10)
    waiter = waiters.park("o1", reaches({"VALIDATED"}))
    assert await wait(waiter, 0.01, None) is None
    waiters.remove(waiter)
    waiters.remove(waiter)
    assert len(waiters) == 0


async def test_wait_ends_when_the_client_disconnects() -> None:
    waiters = Waiters(limit=10)
    waiter = waiters.park("o1", reaches({"VALIDATED"}))
    gone: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_later(0.01, gone.set_result, None)
    assert await wait(waiter, 30, gone) is None


async def test_the_cap_and_shutdown_refuse_new_waiters() -> None:
    waiters = Waiters(limit=2)
    first = waiters.park("o1", reaches({"VALIDATED"}))
    waiters.park("o2", reaches({"VALIDATED"}))
    with pytest.raises(TooManyWaiters):
        waiters.park("o3", reaches({"VALIDATED"}))

    waiters.close()
    assert first.future.result() is None
    assert len(waiters) == 0
    with pytest.raises(ShuttingDown):
        waiters.park("o4", reaches({"VALIDATED"}))
