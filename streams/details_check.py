"""ORDER_DETAILS_CHECK, as a Faust agent on `orders`: the first step of every new order.

Each CREATED order, whoever wrote it, gets its details verdict and goes on
to `orders-by-customer`, where the fraud check finds each customer's orders
on one partition. The check keeps no state, so a record replayed after a
crash is simply sent again, with the same source: the fraud check skips it.

A record the gateway's view rejects too (`records.order_record_rejection`:
no key, a key that is not the id, not an order) is not checked: it goes to
the dead-letter topic `orders-rejected`, with the reason and its source.
"""

from __future__ import annotations

import logging

import faust
from faust.types import StreamT

from . import rules
from .erasable_keys import erasable_or_plain
from .order_steps import OrderStep, Source
from .records import REJECTIONS, Order, RecordError, order_record_rejection

log = logging.getLogger("stategate.streams.details")


class DetailsCheck:
    """The `check-details` agent, registered on a Faust app."""

    def __init__(
        self,
        app: faust.App,
        orders: faust.types.TopicT,
        orders_by_customer: faust.types.TopicT,
        orders_rejected: faust.types.TopicT,
    ) -> None:
        self.app = app
        self.orders_by_customer = orders_by_customer.get_topic_name()
        self.orders_rejected = orders_rejected.get_topic_name()
        app.agent(orders, name="check-details")(self._check)

    async def _check(self, stream: StreamT[bytes]) -> None:
        async for event in stream.events():
            message = event.message
            if event.value is None:
                continue  # a tombstone: an erased message
            try:
                order = Order.from_record(event.value, event.key, message.timestamp)
            except RecordError:
                rejection: str | None = "unreadable"
            else:
                rejection = order_record_rejection(event.key, order)
            if rejection is not None:
                await self._reject(event.key, event.value, rejection, message.partition, message.offset)
                continue
            if order.state != "CREATED":
                continue
            order.validations = {"ORDER_DETAILS_CHECK": rules.check_details(order)}
            step = OrderStep(order, Source(message.partition, message.offset))
            # Straight to the producer (Faust's Topic.send costs more than the check itself); a commit
            # waits for every buffered send, so the source offset is never committed before this lands.
            key = erasable_or_plain(order.customer_id.encode())
            await self.app.producer.send(self.orders_by_customer, key, step.to_json(), None, None, None)

    async def _reject(self, key: bytes | None, value: bytes | None, reason: str, partition: int, offset: int) -> None:
        """Send a record no reader of `orders` accepts to the dead-letter topic, with why and where from."""
        log.warning(
            "rejected an order record", extra={"partition": partition, "offset": offset, "reason": REJECTIONS[reason]}
        )
        headers = [("reason", reason.encode()), ("source", f"{partition}:{offset}".encode())]
        # A compacted topic refuses records without a key: a keyless one gets the empty business key.
        dead_letter_key = erasable_or_plain(key or b"")
        await self.app.producer.send(self.orders_rejected, dead_letter_key, value, None, None, headers)
