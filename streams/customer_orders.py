"""The `customer-orders` service: the ids of a customer's orders, newest first.

Orders are spread over the gateway's nodes by id; nothing else knows a
customer's orders together. This agent indexes them from
`orders-by-customer` (keyed by customer, so the index of one customer lives
on one partition) into the table `customer-orders`, and the service answers
`GET /{customer}` from it. Adding an id that is already there changes
nothing, so a record replayed after a crash is harmless.
"""

from __future__ import annotations

import logging

import faust
import orjson
from faust.types import StreamT

from .erasure_records import handled_as_erasure
from .faust_app import json_table
from .kafka_settings import KafkaSettings
from .order_steps import OrderStep
from .records import RecordError, read_object
from .service_sdk import Reply, Service, ServiceRequest, read_key
from .table_output import TableOutput

CUSTOMER_ORDERS_SERVICE = "customer-orders"
CUSTOMER_ORDERS_REQUESTS = "customer-orders-requests"
MAX_ORDERS_KEPT = 100
"""The newest this many order ids per customer are kept."""

log = logging.getLogger("stategate.streams.customer_orders")


def with_order(ids: list[str], order_id: str, keep: int = MAX_ORDERS_KEPT) -> list[str]:
    """The customer's order ids, oldest first, with `order_id` added once and at most `keep` kept."""
    if order_id in ids:
        return ids
    return [*ids, order_id][-keep:]


def read_ids(value: bytes | None) -> list[str]:
    """The ids in a table value (`{"orders": [...]}`); none for a customer not seen yet."""
    if value is None:
        return []
    return [str(order_id) for order_id in read_object(value).get("orders") or []]


class CustomerOrders:
    """The indexing agent, its table and the `customer-orders` service, registered on a Faust app."""

    def __init__(
        self,
        app: faust.App,
        orders_by_customer: faust.types.TopicT,
        requests: faust.types.TopicT,
        settings: KafkaSettings,
    ) -> None:
        self.table = json_table(app, "customer-orders", settings, partitions=settings.services_partitions)
        self.output = TableOutput(app, self.table)  # Faust's own changelog path costs more than the index
        app.agent(orders_by_customer, name="index-customer-orders")(self._index)
        Service(app, CUSTOMER_ORDERS_SERVICE, requests).handler(self.handle)

    async def _index(self, stream: StreamT[bytes]) -> None:
        async for event in stream.events():
            if await handled_as_erasure(event, self._forget):
                continue
            try:
                order = OrderStep.from_json(event.value).order
            except RecordError as exc:
                log.warning("skipping unreadable order step", extra={"error": str(exc)})
                continue
            key = order.customer_id.encode()
            ids = read_ids(self.table.get(key))
            updated = with_order(ids, order.id)
            if updated is not ids:
                await self.output.write(key, orjson.dumps({"orders": updated}))

    async def _forget(self, key: bytes, order_id: str) -> None:
        """An erasure step: the customer's index no longer lists the erased order."""
        ids = read_ids(self.table.get(key))
        if order_id in ids:
            await self.output.overwrite(key, orjson.dumps({"orders": [i for i in ids if i != order_id]}))
        else:
            await self.output.rewrite(key)  # older values may name it: they leave every copy's files too

    async def handle(self, request: ServiceRequest) -> Reply:
        """`GET /{customer}`: `{"customer_id", "orders": [id, ...]}`, newest first (empty for a new customer)."""
        customer = read_key(request, "/{customer}")
        ids = read_ids(self.table.get(customer.encode()))
        return Reply(200, {"customer_id": customer, "orders": ids[::-1]})
