"""Parked requests: waiters keyed by order id, woken by changes to the order view.

A request that waits for an order parks a `Waiter` here; the order view
publishes every change it applies, which tells each waiter whose
condition the new version meets. Nothing polls. Any number of waiters may
wait on one order; each is told exactly once how its wait ended (the order
met the condition, moved to another node, the time ran out, or this node is
stopping), it is removed when its client goes away, and the total is capped.

A waiter is a small object with a `notify` method, not a task or a future,
and the registry keeps the deadlines itself (one timer for all of them),
because a parked request should cost as little memory as possible: the
long-poll path (views/long_poll.py) parks ten thousand of them. `wait()`
puts a future in front of a waiter for code that simply awaits the outcome.
"""

from __future__ import annotations

import asyncio
import enum
import math
from collections.abc import Callable

from stategate.streams.records import Order

from .errors import OrderMoved, ShuttingDown, TooManyWaiters

Condition = Callable[[Order], bool]

TICK_SECONDS = 0.1
"""Deadlines are kept in buckets this wide: a timeout ends at most this late."""


class Ending(enum.Enum):
    """How a wait ended when the order did not meet the condition."""

    MOVED = "moved"
    """The order's partition left this node."""
    TIMED_OUT = "timed out"
    CLOSED = "closed"
    """This node is stopping."""
    ERASED = "erased"
    """The order was erased (DELETE /v1/orders/{id})."""


Outcome = Order | Ending
"""What a waiter is told: the version that met its condition, or how the wait ended without one."""


class Waiter:
    """One parked request: the order id and the condition it waits for. Subclasses implement `notify`."""

    __slots__ = ("order_id", "condition", "due")

    def __init__(self, order_id: str, condition: Condition) -> None:
        self.order_id = order_id
        self.condition = condition
        self.due: int | None = None  # the deadline's bucket, while parked with a timeout

    def notify(self, outcome: Outcome) -> None:
        """Called once, by the registry, when the wait ends; the waiter is already removed."""
        raise NotImplementedError


class Waiters:
    """Every parked request of this node."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._by_order: dict[str, set[Waiter]] = {}
        self._due: dict[int, dict[Waiter, None]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_due: int | None = None
        self._count = 0
        self._closed = False

    def __len__(self) -> int:
        return self._count

    def park(self, waiter: Waiter, timeout: float | None = None) -> None:
        """Register a waiter, told TIMED_OUT after `timeout` seconds; raises TooManyWaiters or ShuttingDown."""
        if self._closed:
            raise ShuttingDown()
        if self._count >= self.limit:
            raise TooManyWaiters()
        self._by_order.setdefault(waiter.order_id, set()).add(waiter)
        self._count += 1
        if timeout is not None:
            loop = asyncio.get_running_loop()
            due = math.ceil((loop.time() + timeout) / TICK_SECONDS)
            waiter.due = due
            self._due.setdefault(due, {})[waiter] = None
            if self._timer_due is None or due < self._timer_due:
                self._set_timer(loop, due)

    def remove(self, waiter: Waiter) -> bool:
        """Forget a waiter (answered, timed out or disconnected); False if it was already gone."""
        waiters = self._by_order.get(waiter.order_id)
        if waiters is None or waiter not in waiters:
            return False
        waiters.discard(waiter)
        self._count -= 1
        if not waiters:
            del self._by_order[waiter.order_id]
        if waiter.due is not None:
            bucket = self._due[waiter.due]
            del bucket[waiter]
            if not bucket:
                del self._due[waiter.due]
            waiter.due = None
        return True

    def publish(self, order: Order) -> None:
        """Tell every waiter on this order whose condition the new version meets."""
        for waiter in tuple(self._by_order.get(order.id, ())):
            if waiter.condition(order):
                self._end(waiter, order)

    def erased(self, order_id: str) -> None:
        """End the wait of every request on an order that was erased."""
        for waiter in tuple(self._by_order.get(order_id, ())):
            self._end(waiter, Ending.ERASED)

    def move(self, moved: Callable[[str], bool]) -> int:
        """End the wait of every request whose order id `moved` says has left this node."""
        count = 0
        for order_id in [order_id for order_id in self._by_order if moved(order_id)]:
            for waiter in tuple(self._by_order.get(order_id, ())):
                self._end(waiter, Ending.MOVED)
                count += 1
        return count

    def close(self, moved: bool = False) -> None:
        """End every wait now and park no more: MOVED with `moved` (another node will serve them), else CLOSED."""
        self._closed = True
        if moved:
            self.move(lambda order_id: True)
        for waiters in tuple(self._by_order.values()):
            for waiter in tuple(waiters):
                self._end(waiter, Ending.CLOSED)
        if self._timer is not None:
            self._timer.cancel()

    def _end(self, waiter: Waiter, outcome: Outcome) -> None:
        if self.remove(waiter):
            waiter.notify(outcome)

    def _set_timer(self, loop: asyncio.AbstractEventLoop, due: int) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = loop.call_at(due * TICK_SECONDS, self._expire)
        self._timer_due = due

    def _expire(self) -> None:
        """The timer: tell every waiter whose deadline has passed, then wait for the next deadline."""
        loop = asyncio.get_running_loop()
        self._timer = self._timer_due = None
        now = (loop.time() + 0.001) / TICK_SECONDS  # timers may fire a hair early
        for due in sorted(due for due in self._due if due <= now):
            for waiter in tuple(self._due.get(due, ())):
                self._end(waiter, Ending.TIMED_OUT)
        if self._due:
            self._set_timer(loop, min(self._due))


class _FutureWaiter(Waiter):
    __slots__ = ("outcome",)

    def __init__(self, order_id: str, condition: Condition) -> None:
        super().__init__(order_id, condition)
        self.outcome: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()

    def notify(self, outcome: Outcome) -> None:
        if not self.outcome.done():
            self.outcome.set_result(outcome)


async def wait(
    waiters: Waiters,
    order_id: str,
    condition: Condition,
    timeout: float,
    disconnected: asyncio.Future[None] | None,
) -> Order | None:
    """Park a waiter and wait for its order, the timeout or the client leaving, whichever comes first.

    Returns the order version that met the condition, or None on timeout,
    disconnect or shutdown; raises OrderMoved when another node took the
    order over, TooManyWaiters or ShuttingDown when it cannot park.
    """
    waiter = _FutureWaiter(order_id, condition)
    waiters.park(waiter, timeout)
    watched: set[asyncio.Future[object]] = {waiter.outcome}  # type: ignore[arg-type]
    if disconnected is not None:
        watched.add(disconnected)  # type: ignore[arg-type]
    try:
        await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiters.remove(waiter)
    if not waiter.outcome.done():
        waiter.outcome.cancel()
        return None
    outcome = waiter.outcome.result()
    if outcome is Ending.MOVED:
        raise OrderMoved()
    return outcome if isinstance(outcome, Order) else None
