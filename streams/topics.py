"""The Kafka topics of the order flow.

| topic | key | value | written by |
|---|---|---|---|
| `orders` | order id | Order JSON (CREATED commands, VALIDATED / FAILED results) | gateway, relay |
| `warehouse-inventory` | product | StockLevel JSON | gateway |
| `orders-by-customer` | customer id | OrderStep JSON | check-details |
| `fraud-checked` | customer id | the `fraud` table's value (compacted changelog) | check-fraud |
| `orders-by-product` | product | OrderStep JSON | relay |
| `inventory-checked` | product | the `inventory` table's value (compacted changelog) | check-inventory, stock-levels |
| `orders-rejected` | the record's key | the record's value, headers `reason`, `source` | check-details |

`orders`, `orders-by-customer`, `orders-by-product` and `orders-rejected` carry
customer data: they are erasable (`ERASABLE`). Their writers give every
record a key of its own (streams/erasable_keys.py) and the topics are
compacted (and still deleted after the broker's retention), so that a
tombstone for one record's key erases that record. Every reader sees the
business key.
"""

from __future__ import annotations

from dataclasses import dataclass

import faust
from faust.types import TopicT

from .kafka_settings import KafkaSettings, ms

ORDERS = "orders"
WAREHOUSE_INVENTORY = "warehouse-inventory"
ORDERS_BY_CUSTOMER = "orders-by-customer"
ORDERS_BY_PRODUCT = "orders-by-product"
FRAUD_CHECKED = "fraud-checked"
INVENTORY_CHECKED = "inventory-checked"
ORDERS_REJECTED = "orders-rejected"  # dead letters: `orders` records no reader accepts
SERVICES_APP_ID = "stategate-services"
"""The Faust app of the order checks: its consumer group, and the prefix of its tables' changelogs."""
CUSTOMER_ORDERS_TABLE = "customer-orders"
ERASABLE = frozenset({ORDERS, ORDERS_BY_CUSTOMER, ORDERS_BY_PRODUCT, ORDERS_REJECTED})


def erasable_configs(settings: KafkaSettings) -> dict[str, str]:
    """Topic configs of an erasable topic: compacted within the settings' bound, and deleted after retention."""
    return {
        "cleanup.policy": "compact,delete",
        "segment.ms": ms(settings.erasure_segment_seconds),
        "max.compaction.lag.ms": ms(settings.erasure_compaction_lag_seconds),
        "delete.retention.ms": ms(settings.erasure_tombstone_seconds),
    }


def topic_configs(name: str, settings: KafkaSettings) -> dict[str, str]:
    """The configs stategate creates the topic `name` (without namespace) with."""
    return erasable_configs(settings) if name in ERASABLE else {}


@dataclass(frozen=True)
class OrderTopics:
    """The topics shared by the gateway and the order services."""

    orders: TopicT
    warehouse_inventory: TopicT


def raw_topic(
    app: faust.App, name: str, settings: KafkaSettings, internal: bool = False, partitions: int | None = None
) -> TopicT:
    """A topic of UTF-8 keys and JSON values, with `partitions` (the project's count by default)."""
    return app.topic(
        settings.topic(name),
        key_serializer="raw",
        value_serializer="raw",
        partitions=partitions or settings.partitions,
        replicas=settings.replication_factor,
        internal=internal,
        config=topic_configs(name, settings) or None,
    )


def order_topics(app: faust.App, settings: KafkaSettings) -> OrderTopics:
    """Declare the order flow's shared topics on `app`."""
    return OrderTopics(
        orders=raw_topic(app, ORDERS, settings),
        warehouse_inventory=raw_topic(app, WAREHOUSE_INVENTORY, settings, partitions=settings.services_partitions),
    )
