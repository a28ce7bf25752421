"""A customer's orders: their ids from the `customer-orders` service, each order from the node that owns it.

Orders are spread over the nodes by id, so no node holds a customer's
orders together; the services index them by customer
(streams/customer_orders.py), and this use-case puts the two together.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import quote

import orjson

from stategate.streams.customer_orders import CUSTOMER_ORDERS_SERVICE
from stategate.streams.records import Order

from .errors import NoAnswer
from .orders import OrderService
from .service_calls import ServiceCalls


@dataclass(frozen=True)
class CustomerOrderList:
    """The newest orders of one customer, and how many the index knows in all."""

    customer_id: str
    orders: list[Order]
    known: int


async def customer_order_ids(calls: ServiceCalls, customer_id: str, wait: float) -> list[str]:
    """The ids the `customer-orders` index holds for a customer, newest first; raises NoAnswer."""
    reply = await calls.ask(CUSTOMER_ORDERS_SERVICE, "/" + quote(customer_id, safe=""), wait)
    if reply is None or reply.status != 200:
        raise NoAnswer(f"the customer index answered {reply.status if reply else 'nothing'}")
    return [str(order_id) for order_id in orjson.loads(reply.body).get("orders", [])]


async def orders_of_customer(
    calls: ServiceCalls, orders: OrderService, customer_id: str, limit: int, wait: float
) -> CustomerOrderList:
    """The customer's newest `limit` orders, newest first; raises NoAnswer, or what `ServiceCalls.send` raises.

    An id the index knows whose order no node can show yet (it is still on
    its way to its owner's view, or the owner is moving) is left out.
    """
    ids = await customer_order_ids(calls, customer_id, wait)
    found = await asyncio.gather(*(orders.find(order_id) for order_id in ids[:limit]))
    return CustomerOrderList(customer_id, [order for order in found if order is not None], len(ids))
