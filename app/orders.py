"""The order use-cases the HTTP views call: place, look up, wait, set stock.

views/orders.py ─► OrderService.place ─► CommandProducer ─► `orders` topic
`orders` topic ─► streams/order_view.py ─► OrderService.on_change ─► Waiters
"""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from stategate.streams.commands import CommandProducer
from stategate.streams.order_view import OrderView
from stategate.streams.records import ORDER_STATES, Order, StockLevel, utc_now

from .waiters import Condition, Waiters, wait

__all__ = ["ORDER_STATES", "Condition", "NewOrder", "Order", "OrderService", "differs_from", "order_id_for", "reaches"]

log = logging.getLogger("stategate.orders")

IDEMPOTENCY_NAMESPACE = uuid.UUID("8f1d6a52-3c52-4a8e-9f0b-5b2f0d6f9e11")


@dataclass(frozen=True)
class NewOrder:
    """What a client asks for when it places an order."""

    customer_id: str
    product: str
    quantity: int
    price: float
    id: str | None = None


def reaches(states: Iterable[str]) -> Condition:
    """The order is in one of `states`, or in a terminal state that rules them out."""
    return _reaches(frozenset(states))


@functools.lru_cache(maxsize=64)
def _reaches(wanted: frozenset[str]) -> Condition:
    # One condition per set of states, shared by every waiter that waits for it.
    return lambda order: order.state in wanted or order.is_terminal


def differs_from(etags: Iterable[str]) -> Condition:
    """The order's current ETag is none of `etags`."""
    known = frozenset(etags)
    return lambda order: order.etag not in known


def order_id_for(idempotency_key: str) -> str:
    """The order id an Idempotency-Key stands for: the same key, the same order."""
    return str(uuid.uuid5(IDEMPOTENCY_NAMESPACE, idempotency_key))


class OrderService:
    """Places orders on Kafka and answers questions about them from the local table."""

    def __init__(
        self,
        producer: CommandProducer,
        view: OrderView,
        waiters: Waiters,
        orders_topic: str,
        inventory_topic: str,
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
        remembered: int = 10_000,
    ) -> None:
        self.producer = producer
        self.view = view
        self.waiters = waiters
        self.orders_topic = orders_topic
        self.inventory_topic = inventory_topic
        self.new_id = new_id
        # Orders this node wrote that its table has not shown yet, so that a
        # retry in that window is answered with the first order.
        self._written: OrderedDict[str, Order] = OrderedDict()
        self._remembered = remembered
        self._in_flight: dict[str, asyncio.Future[Order]] = {}
        # Orders the view applied a version of while their first one was still being sent:
        # the flow can outrun the acknowledgement, and the first version must not shadow it.
        self._applied_while_sending: set[str] = set()

    def lookup(self, order_id: str) -> Order | None:
        """The newest version of an order known to this node."""
        return self.view.get(order_id) or self._written.get(order_id)

    async def place(self, new: NewOrder, idempotency_key: str | None = None) -> Order:
        """Write a CREATED order to Kafka and return it.

        The same client id or Idempotency-Key never makes a second order: the
        first one is returned instead. Raises KafkaUnavailable when Kafka does
        not acknowledge the command in time.
        """
        chosen_by_client = bool(new.id or idempotency_key)
        order_id = new.id or (order_id_for(idempotency_key) if idempotency_key else self.new_id())
        if chosen_by_client:  # a fresh server-made id cannot be known yet
            existing = self.lookup(order_id)
            if existing is not None:
                return existing
            in_flight = self._in_flight.get(order_id)
            if in_flight is not None:
                return await asyncio.shield(in_flight)

        now = utc_now()
        order = Order(
            id=order_id,
            customer_id=new.customer_id,
            product=new.product,
            quantity=new.quantity,
            price=new.price,
            created_at=now,
            updated_at=now,
        )
        written: asyncio.Future[Order] = asyncio.get_running_loop().create_future()
        self._in_flight[order_id] = written
        try:
            await self.producer.send(self.orders_topic, order_id, order.to_json())
        except Exception as exc:
            written.set_exception(exc)
            written.exception()  # retrieved: nobody else may be waiting on it
            raise
        except BaseException:
            written.cancel()
            raise
        finally:
            del self._in_flight[order_id]
            applied = order_id in self._applied_while_sending
            self._applied_while_sending.discard(order_id)
        written.set_result(order)
        if not applied:
            self._remember(order)
        log.debug("order placed", extra={"order_id": order_id})
        return order

    async def wait_until(
        self,
        order_id: str,
        condition: Condition,
        timeout: float,
        disconnected: asyncio.Future[None] | None = None,
    ) -> tuple[Order | None, bool]:
        """Wait until the order meets `condition`, at most `timeout` seconds.

        Returns the order as it stands and whether the condition was met. A
        timeout, a client that leaves, or the node shutting down end the wait
        early with the condition unmet. Raises TooManyWaiters or ShuttingDown
        when the request cannot be parked.
        """
        current = self.lookup(order_id)
        if current is not None and condition(current):
            return current, True
        if timeout <= 0:
            return current, False
        reached = await wait(self.waiters, order_id, condition, timeout, disconnected)
        if reached is not None:
            return reached, True
        return self.lookup(order_id), False

    def on_change(self, order: Order) -> None:
        """Called by the order view for every version it applies."""
        self._written.pop(order.id, None)
        if order.id in self._in_flight:
            self._applied_while_sending.add(order.id)
        self.waiters.publish(order)

    async def set_stock(self, product: str, stock: int) -> StockLevel:
        """Write a product's stock level to `warehouse-inventory`."""
        level = StockLevel(product, stock)
        await self.producer.send(self.inventory_topic, product, level.to_json())
        return level

    def _remember(self, order: Order) -> None:
        self._written[order.id] = order
        while len(self._written) > self._remembered:
            self._written.popitem(last=False)
