"""ORDER_DETAILS_CHECK, as a Faust agent on `orders`: the first step of every new order.

Each CREATED order, whoever wrote it, gets its details verdict and goes on
to `orders-by-customer`, where the fraud check finds each customer's orders
on one partition. The check keeps no state, so a record replayed after a
crash is simply sent again, with the same source: the fraud check skips it.
"""

from __future__ import annotations

import logging

import faust
from faust.types import StreamT

from . import rules
from .order_steps import OrderStep, Source
from .records import Order, RecordError

log = logging.getLogger("stategate.streams.details")


class DetailsCheck:
    """The `check-details` agent, registered on a Faust app."""

    def __init__(self, app: faust.App, orders: faust.types.TopicT, orders_by_customer: faust.types.TopicT) -> None:
        self.app = app
        self.orders_by_customer = orders_by_customer.get_topic_name()
        app.agent(orders, name="check-details")(self._check)

    async def _check(self, stream: StreamT[bytes]) -> None:
        async for event in stream.events():
            message = event.message
            try:
                order = Order.from_record(event.value, event.key, message.timestamp)
            except RecordError as exc:
                log.warning("skipping unreadable order record", extra={"error": str(exc)})
                continue
            if order.state != "CREATED":
                continue
            order.validations = {"ORDER_DETAILS_CHECK": rules.check_details(order)}
            step = OrderStep(order, Source(message.partition, message.offset))
            # Straight to the producer (Faust's Topic.send costs more than the check itself); a commit
            # waits for every buffered send, so the source offset is never committed before this lands.
            key = order.customer_id.encode()
            await self.app.producer.send(self.orders_by_customer, key, step.to_json(), None, None, None)
