"""The Kafka topics of the order flow.

| topic | key | value |
|---|---|---|
| `orders` | order id | Order JSON (commands and results) |
| `order-validations` | order id | OrderValidation JSON |
| `warehouse-inventory` | product | StockLevel JSON |
"""

from __future__ import annotations

from dataclasses import dataclass

import faust
from faust.types import TopicT

from app.config import Settings

ORDERS = "orders"
ORDER_VALIDATIONS = "order-validations"
WAREHOUSE_INVENTORY = "warehouse-inventory"


@dataclass(frozen=True)
class OrderTopics:
    """The topics shared by the gateway and the order services."""

    orders: TopicT
    order_validations: TopicT
    warehouse_inventory: TopicT


def raw_topic(app: faust.App, name: str, settings: Settings, internal: bool = False) -> TopicT:
    """A topic of UTF-8 keys and JSON values, with the project's partition count."""
    return app.topic(
        settings.topic(name),
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.partitions,
        replicas=settings.replication_factor,
        internal=internal,
    )


def order_topics(app: faust.App, settings: Settings) -> OrderTopics:
    """Declare the order flow's topics on `app`."""
    return OrderTopics(
        orders=raw_topic(app, ORDERS, settings),
        order_validations=raw_topic(app, ORDER_VALIDATIONS, settings),
        warehouse_inventory=raw_topic(app, WAREHOUSE_INVENTORY, settings),
    )
