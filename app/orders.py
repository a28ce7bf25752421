"""The order use-cases the HTTP views call: place, look up, wait, set stock.

views/orders.py ─► OrderService.place_order ─► CommandProducer ─► `orders` topic
`orders` topic ─► streams/order_view.py ─► OrderService.on_change ─► Waiters

The use-cases decide (was the order written, which node owns it); the views
only translate a `Placement` into a status code.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import logging
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from stategate.streams.commands import CommandProducer
from stategate.streams.order_view import OrderView
from stategate.streams.records import ORDER_ID_PATTERN, ORDER_STATES, Order, StockLevel, utc_now

from .errors import OrderErased, TwoOrderIds
from .ownership import Owner
from .waiters import Condition, Waiters, wait

__all__ = [
    "ORDER_ID_PATTERN",
    "ORDER_STATES",
    "Condition",
    "NewOrder",
    "Order",
    "OrderService",
    "Placement",
    "Where",
    "differs_from",
    "order_id_for",
    "reaches",
]

log = logging.getLogger("stategate.orders")

IDEMPOTENCY_NAMESPACE = uuid.UUID("8f1d6a52-3c52-4a8e-9f0b-5b2f0d6f9e11")
ABSENCE_CHECK_SECONDS = 1.0
"""How long a long-poll ending without its order may ask Kafka whether the order could still come."""


@dataclass(frozen=True)
class NewOrder:
    """What a client asks for when it places an order."""

    customer_id: str
    product: str
    quantity: int
    price: float
    id: str | None = None


class Where(enum.Enum):
    """Which node can answer about an order, and so where a client waits for it."""

    HERE = "here"  # this node owns the order
    OWNER = "owner"  # another live node owns it (`Placement.owner_url`)
    NOBODY = "nobody"  # a rebalance is under way: nobody owns it right now


@dataclass(frozen=True)
class Placement:
    """What placing an order did: the order, where to wait for it, and whether it was written now."""

    order: Order
    where: Where
    owner_url: str | None = None
    written: bool = True
    """False for a retry the owner already had: nothing was written, `order` is the first one."""


def client_order_id(new: NewOrder, idempotency_key: str | None) -> str | None:
    """The order id the client chose, by `id` or by Idempotency-Key; None when the server picks one.

    One key means one order, so a request may name its order only one way:
    raises TwoOrderIds when it carries both an `id` and an Idempotency-Key.
    """
    if new.id and idempotency_key:
        raise TwoOrderIds("Name the order by its id or by an Idempotency-Key, not both.")
    if idempotency_key:
        return order_id_for(idempotency_key)
    return new.id


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
        owner_of: Callable[[str], Owner] = lambda order_id: Owner("", is_self=True),
        ask_owner: Callable[[str, str], Awaitable[Order | None]] | None = None,
    ) -> None:
        self.producer = producer
        self.view = view
        self.waiters = waiters
        self.orders_topic = orders_topic
        self.inventory_topic = inventory_topic
        self.new_id = new_id
        self.owner_of = owner_of
        self.ask_owner = ask_owner
        # Orders this node wrote that its table has not shown yet, so that a
        # retry in that window is answered with the first order.
        self._written: OrderedDict[str, Order] = OrderedDict()
        self._remembered = remembered
        self._in_flight: dict[str, asyncio.Future[Order]] = {}
        # Orders the view applied a version of while their first one was still being sent:
        # the flow can outrun the acknowledgement, and the first version must not shadow it.
        self._applied_while_sending: set[str] = set()

    async def surely_absent(self, order_id: str) -> bool:
        """Whether `order_id` is surely not an order: this node has read its partition up to Kafka's end.

        Asked before a long-poll answers 404, so that an order written but
        not read yet (its partition's leader moving) is never called unknown.
        """
        partition = self.view.partition_of(order_id)
        return await self.view.read_to_end(partition, ABSENCE_CHECK_SECONDS)

    def lookup(self, order_id: str) -> Order | None:
        """The newest version of an order known to this node."""
        return self.view.get(order_id) or self._written.get(order_id)

    async def find(self, order_id: str) -> Order | None:
        """The order from this node's view when it owns the order, else from the live node that does."""
        owner = self.owner_of(order_id)
        if owner.is_self or owner.url is None or self.ask_owner is None:
            return self.lookup(order_id)
        try:
            return await self.ask_owner(owner.url, order_id)
        except OrderErased:
            return None

    def owner_elsewhere(self, new: NewOrder, idempotency_key: str | None) -> str | None:
        """The URL of the live node that owns the order the client named, when that is not this node."""
        order_id = client_order_id(new, idempotency_key)
        if order_id is None:
            return None
        owner = self.owner_of(order_id)
        return None if owner.is_self else owner.url

    async def place_order(self, new: NewOrder, idempotency_key: str | None = None) -> Placement:
        """Write a CREATED order to Kafka, unless its owner already has it; say where to wait for it.

        The same client id or Idempotency-Key never makes a second order: a
        retry gets the first one (`written` False), asked of its owner when
        that is another node. Raises KafkaUnavailable when Kafka does not
        acknowledge the command in time, TwoOrderIds when the order is named
        twice, OrderErased when the id names an erased order.
        """
        order_id = client_order_id(new, idempotency_key)
        if order_id is not None and self.ask_owner is not None:
            owner_url = self.owner_elsewhere(new, idempotency_key)
            known = None if owner_url is None else await self.ask_owner(owner_url, order_id)
            if known is not None:
                return Placement(known, Where.OWNER, owner_url, written=False)
        order = await self.place(new, idempotency_key)
        owner = self.owner_of(order.id)
        if owner.is_self:
            return Placement(order, Where.HERE)
        if owner.url is None:
            return Placement(order, Where.NOBODY)
        return Placement(order, Where.OWNER, owner.url)

    async def place(self, new: NewOrder, idempotency_key: str | None = None) -> Order:
        """Write a CREATED order to Kafka and return it (or the first one, for a retry this node knows)."""
        order_id = client_order_id(new, idempotency_key)
        if order_id is None:
            order_id = self.new_id()  # fresh: no retry can name it yet
        else:
            if self.view.is_erased(order_id):
                raise OrderErased(f"Order {order_id!r} was erased; its id cannot be used again.")
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
            await self.producer.send(self.orders_topic, order_id, order.to_json(), erasable=True)
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

    def on_erased(self, order_id: str) -> None:
        """Called when the view dropped an erased order: forget it, and end the waits on it."""
        self._written.pop(order_id, None)
        self.waiters.erased(order_id)

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
