"""The gateway node's Faust app: the orders table, materialized from `orders`.

Each node of the `stategate-gateway` consumer group reads some partitions of
`orders` and keeps the latest version of each of their orders in a RocksDB
table. Every accepted change is handed to `on_change`, which wakes the HTTP
requests parked on that order.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import faust
from faust.types import StreamT, TableT

from app.config import Settings

from .admin import TopicSpec, topics_of
from .faust_app import create_faust_app, table_options
from .records import Order, RecordError
from .topics import OrderTopics, order_topics

GATEWAY_APP_ID = "stategate-gateway"
ORDERS_TABLE = "orders"

log = logging.getLogger("stategate.streams.orders")


class OrdersTable:
    """Read access to the orders table, as the HTTP side needs it."""

    def __init__(self, table: TableT[str, Any]) -> None:
        self.table = table

    def get(self, order_id: str) -> Order | None:
        """The latest version of an order this node holds, or None."""
        data = self.table.get(order_id)
        if data is None:
            return None
        return Order.from_dict(data)

    def version_of(self, order_id: str) -> int:
        """The stored version of an order, 0 when the table has none."""
        data = self.table.get(order_id)
        return 0 if data is None else int(data["version"])


class GatewayStreams:
    """The gateway's Faust app, topics and orders table, wired to `on_change`."""

    def __init__(self, settings: Settings, on_change: Callable[[Order], None]) -> None:
        self.settings = settings
        self.app: faust.App = create_faust_app(GATEWAY_APP_ID, settings)
        self.topics: OrderTopics = order_topics(self.app, settings)
        self.table: TableT[str, Any] = self.app.Table(
            ORDERS_TABLE,
            partitions=settings.partitions,
            key_type=bytes,  # raw UTF-8 keys in the changelog too, so key_store hashes what the producer hashed
            options=table_options(settings),
        )
        self.orders = OrdersTable(self.table)
        self._on_change = on_change
        self.app.agent(self.topics.orders, name="materialize-orders")(self._materialize)

    @property
    def topic_specs(self) -> list[TopicSpec]:
        """Every topic the gateway reads or writes, and its table's changelog."""
        topics = [self.topics.orders, self.topics.warehouse_inventory]
        return topics_of(self.app, topics, self.settings.partitions)

    async def _materialize(self, stream: StreamT[bytes]) -> None:
        """Keep the newest version of every order; ignore stale and duplicate ones."""
        async for event in stream.events():
            try:
                order = Order.from_record(event.value, event.key, event.message.timestamp)
            except RecordError as exc:
                log.warning("skipping unreadable order record", extra={"error": str(exc)})
                continue
            if event.key is not None and event.key != order.id.encode():
                log.warning("skipping order whose key is not its id", extra={"order_id": order.id})
                continue
            if order.version <= self.orders.version_of(order.id):
                continue
            self.table[order.id] = order.as_dict()
            self._on_change(order)
