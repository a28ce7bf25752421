"""Parked requests: futures keyed by order id, woken by changes to the orders table.

A request that waits for an order parks a `Waiter` here; the orders table's
agent publishes every change it applies, which resolves each waiter whose
condition the new version meets. Nothing polls. Any number of waiters may
wait on one order; each is removed when it is answered, times out or its
client goes away, and the total is capped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from streams.records import Order

Condition = Callable[[Order], bool]


class TooManyWaiters(Exception):
    """The cap on parked requests is reached."""


class ShuttingDown(Exception):
    """The node is stopping and parks no more requests."""


class OrderMoved(Exception):
    """The order's partition now belongs to another node (a rebalance, or this node stopping)."""


class Waiter:
    """One parked request: an order id, the condition it waits for, and its future."""

    __slots__ = ("order_id", "condition", "future")

    def __init__(self, order_id: str, condition: Condition) -> None:
        self.order_id = order_id
        self.condition = condition
        self.future: asyncio.Future[Order | None] = asyncio.get_running_loop().create_future()


class Waiters:
    """Every parked request of this node."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._by_order: dict[str, set[Waiter]] = {}
        self._count = 0
        self._closed = False

    def __len__(self) -> int:
        return self._count

    def park(self, order_id: str, condition: Condition) -> Waiter:
        """Register a waiter; raises TooManyWaiters or ShuttingDown."""
        if self._closed:
            raise ShuttingDown()
        if self._count >= self.limit:
            raise TooManyWaiters()
        waiter = Waiter(order_id, condition)
        self._by_order.setdefault(order_id, set()).add(waiter)
        self._count += 1
        return waiter

    def remove(self, waiter: Waiter) -> None:
        """Forget a waiter (answered, timed out or disconnected); safe to call twice."""
        waiters = self._by_order.get(waiter.order_id)
        if waiters is None or waiter not in waiters:
            return
        waiters.discard(waiter)
        self._count -= 1
        if not waiters:
            del self._by_order[waiter.order_id]

    def publish(self, order: Order) -> None:
        """Wake every waiter on this order whose condition the new version meets."""
        for waiter in tuple(self._by_order.get(order.id, ())):
            if not waiter.future.done() and waiter.condition(order):
                waiter.future.set_result(order)
                self.remove(waiter)

    def move(self, moved: Callable[[str], bool]) -> int:
        """End the wait of every request whose order id `moved` says has left this node."""
        count = 0
        for order_id in [order_id for order_id in self._by_order if moved(order_id)]:
            for waiter in tuple(self._by_order.get(order_id, ())):
                if not waiter.future.done():
                    waiter.future.set_exception(OrderMoved())
                    count += 1
                self.remove(waiter)
        return count

    def close(self, moved: bool = False) -> None:
        """Answer every parked request now and park no more.

        With `moved`, each wait ends in OrderMoved (another node will serve
        it); otherwise with no new version.
        """
        self._closed = True
        if moved:
            self.move(lambda order_id: True)
        for waiters in tuple(self._by_order.values()):
            for waiter in tuple(waiters):
                if not waiter.future.done():
                    waiter.future.set_result(None)
                self.remove(waiter)


async def wait(waiter: Waiter, timeout: float, disconnected: asyncio.Future[None] | None) -> Order | None:
    """Wait for the waiter's order, the timeout or the client leaving, whichever comes first.

    Returns the order version that met the condition, or None on timeout,
    disconnect or shutdown; raises OrderMoved when another node took the order over.
    """
    watched: set[asyncio.Future[object]] = {waiter.future}  # type: ignore[arg-type]
    if disconnected is not None:
        watched.add(disconnected)  # type: ignore[arg-type]
    await asyncio.wait(watched, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    if waiter.future.done():
        return waiter.future.result()
    waiter.future.cancel()
    return None
