"""Unit tests of the parked-request registry (asyncio only, no Kafka)."""

from __future__ import annotations

import asyncio

import pytest

from stategate.app.errors import OrderMoved, ShuttingDown, TooManyWaiters
from stategate.app.orders import Condition, differs_from, reaches
from stategate.app.waiters import Ending, Outcome, Waiter, Waiters, wait
from stategate.streams.records import Order


def order(state: str = "CREATED", version: int = 1, order_id: str = "o1") -> Order:
    return Order(order_id, "c1", "P", 1, 1.0, state=state, version=version)


class Told(Waiter):
    """A waiter that remembers what it was told."""

    __slots__ = ("outcomes", "told")

    def __init__(self, order_id: str = "o1", condition: Condition = reaches({"VALIDATED"})) -> None:
        super().__init__(order_id, condition)
        self.outcomes: list[Outcome] = []
        self.told = asyncio.Event()

    def notify(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)
        self.told.set()


def test_publish_tells_only_waiters_whose_condition_holds_and_only_once() -> None:
    waiters = Waiters(limit=10)
    validated, changed, other = Told(), Told(condition=differs_from({'"1"'})), Told("o2")
    for waiter in (validated, changed, other):
        waiters.park(waiter)

    waiters.publish(order("CREATED", 1))
    assert validated.outcomes == [] and changed.outcomes == []

    waiters.publish(order("CREATED", 2))
    assert changed.outcomes == [order("CREATED", 2)]
    assert validated.outcomes == []

    waiters.publish(order("FAILED", 3))  # terminal: VALIDATED is out of reach
    assert validated.outcomes == [order("FAILED", 3)]
    assert changed.outcomes == [order("CREATED", 2)]
    assert other.outcomes == []
    assert len(waiters) == 1


def test_move_tells_the_waiters_of_moved_orders_only() -> None:
    waiters = Waiters(limit=10)
    gone, stays = Told("o1"), Told("o2")
    waiters.park(gone)
    waiters.park(stays)

    assert waiters.move(lambda order_id: order_id == "o1") == 1
    assert gone.outcomes == [Ending.MOVED]
    assert stays.outcomes == []
    assert len(waiters) == 1


async def test_deadlines_end_waits_in_order_and_removed_waiters_are_not_told() -> None:
    waiters = Waiters(limit=10)
    soon, later, removed, no_deadline = Told("o1"), Told("o2"), Told("o3"), Told("o4")
    waiters.park(later, timeout=0.3)
    waiters.park(soon, timeout=0.05)
    waiters.park(removed, timeout=0.05)
    waiters.park(no_deadline)
    assert waiters.remove(removed)

    await asyncio.wait_for(soon.told.wait(), 5)
    assert soon.outcomes == [Ending.TIMED_OUT]
    assert later.outcomes == []
    await asyncio.wait_for(later.told.wait(), 5)
    assert later.outcomes == [Ending.TIMED_OUT]
    assert removed.outcomes == [] and no_deadline.outcomes == []
    assert len(waiters) == 1


async def test_wait_times_out_and_leaves_nothing_parked() -> None:
    waiters = Waiters(limit=10)
    assert await wait(waiters, "o1", reaches({"VALIDATED"}), 0.01, None) is None
    assert len(waiters) == 0


async def test_wait_returns_the_version_that_met_the_condition() -> None:
    waiters = Waiters(limit=10)
    asyncio.get_running_loop().call_soon(waiters.publish, order("VALIDATED", 2))
    assert await wait(waiters, "o1", reaches({"VALIDATED"}), 30, None) == order("VALIDATED", 2)


async def test_wait_raises_order_moved_when_the_order_leaves() -> None:
    waiters = Waiters(limit=10)
    asyncio.get_running_loop().call_soon(waiters.move, lambda order_id: True)
    with pytest.raises(OrderMoved):
        await wait(waiters, "o1", reaches({"VALIDATED"}), 30, None)
    assert len(waiters) == 0


async def test_wait_ends_when_the_client_disconnects() -> None:
    waiters = Waiters(limit=10)
    gone: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_later(0.01, gone.set_result, None)
    assert await wait(waiters, "o1", reaches({"VALIDATED"}), 30, gone) is None
    assert len(waiters) == 0


def test_the_cap_and_shutdown_refuse_new_waiters() -> None:
    waiters = Waiters(limit=2)
    first = Told("o1")
    waiters.park(first)
    waiters.park(Told("o2"))
    with pytest.raises(TooManyWaiters):
        waiters.park(Told("o3"))

    waiters.close()
    assert first.outcomes == [Ending.CLOSED]
    assert len(waiters) == 0
    assert not waiters.remove(first)
    with pytest.raises(ShuttingDown):
        waiters.park(Told("o4"))
