"""The order validation services: three checks in a line, as Faust agents, and a relay.

They do the work of the OrdersService in Confluent's microservices example
(details, fraud and inventory checks, then a decision), as one line of steps
rather than three verdicts and an aggregator:

    orders ──► check-details ──► orders-by-customer ──► check-fraud ──► fraud-checked
    fraud-checked ──► relay ──► orders-by-product ──► check-inventory ──► inventory-checked
    inventory-checked ──► relay ──► orders (VALIDATED | FAILED)
    warehouse-inventory ──► stock-levels ──► inventory-checked

Each re-keyed topic puts a customer's (a product's) orders on one partition,
next to that customer's session (that product's stock), so the services
scale out by running more `stategate services` processes. A check's table
changelog is also its output, so state and verdict are written as one
record, and every step skips what it has already applied: see
order_steps.py. Six records per order, none of them a separate changelog.

Beside the line, two services read its tables for the gateway: `inventory`
(a product's stock) and `customer-orders` (an index of each customer's
order ids, kept by its own agent on `orders-by-customer`).
"""

from __future__ import annotations

from .admin import TopicSpec, topics_of
from .customer_orders import CUSTOMER_ORDERS_REQUESTS, CUSTOMER_ORDERS_SERVICE, CustomerOrders
from .details_check import DetailsCheck
from .faust_app import StategateApp, create_faust_app
from .fraud_check import FraudCheck
from .inventory_check import InventoryCheck
from .inventory_reads import INVENTORY_REQUESTS, INVENTORY_SERVICE, InventoryReads
from .kafka_settings import KafkaSettings
from .records import Order
from .relay import Forward, Relay
from .topics import (
    FRAUD_CHECKED,
    INVENTORY_CHECKED,
    ORDERS,
    ORDERS_BY_CUSTOMER,
    ORDERS_BY_PRODUCT,
    ORDERS_REJECTED,
    SERVICES_APP_ID,
    order_topics,
    raw_topic,
)

ORDER_FLOW_SERVICES: dict[str, str] = {
    INVENTORY_SERVICE: INVENTORY_REQUESTS,
    CUSTOMER_ORDERS_SERVICE: CUSTOMER_ORDERS_REQUESTS,
}
"""The services that read the order flow's tables: name -> request topic, before the namespace."""


class OrderServices:
    """The services' Faust app with the order flow's topics, tables and agents, and the relay."""

    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings
        app: StategateApp = create_faust_app(SERVICES_APP_ID, settings)
        self.app = app
        self.topics = order_topics(app, settings)
        count = settings.services_partitions  # keyed by customer or product: these scale with services processes
        self.orders_by_customer = raw_topic(app, ORDERS_BY_CUSTOMER, settings, internal=True, partitions=count)
        self.orders_by_product = raw_topic(app, ORDERS_BY_PRODUCT, settings, internal=True, partitions=count)
        self.orders_rejected = raw_topic(app, ORDERS_REJECTED, settings)
        self.details = DetailsCheck(app, self.topics.orders, self.orders_by_customer, self.orders_rejected)
        self.fraud = FraudCheck(app, self.orders_by_customer, settings)
        self.inventory = InventoryCheck(app, self.orders_by_product, self.topics.warehouse_inventory, settings)
        self.inventory_requests = raw_topic(app, INVENTORY_REQUESTS, settings, partitions=count)
        self.inventory_reads = InventoryReads(app, self.inventory_requests, self.inventory)
        self.customer_orders_requests = raw_topic(app, CUSTOMER_ORDERS_REQUESTS, settings, partitions=count)
        self.customer_orders = CustomerOrders(app, self.orders_by_customer, self.customer_orders_requests, settings)
        self.relay = Relay(
            settings,
            {
                settings.topic(FRAUD_CHECKED): Forward(settings.topic(ORDERS_BY_PRODUCT), _product, as_step=True),
                settings.topic(INVENTORY_CHECKED): Forward(settings.topic(ORDERS), _order_id, as_step=False),
            },
            app.producer,
        )

    @property
    def topic_specs(self) -> list[TopicSpec]:
        """Every topic the services read or write, and their tables' changelogs."""
        topics = [
            self.topics.orders,
            self.topics.warehouse_inventory,
            self.orders_by_customer,
            self.orders_by_product,
            self.orders_rejected,
            self.inventory_requests,
            self.customer_orders_requests,
        ]
        return topics_of(self.app, topics, self.settings)


def _product(order: Order) -> str:
    return order.product


def _order_id(order: Order) -> str:
    return order.id


__all__ = ["ORDER_FLOW_SERVICES", "SERVICES_APP_ID", "OrderServices"]
