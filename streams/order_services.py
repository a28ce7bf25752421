"""The order validation services: three validators and the aggregator, as Faust agents.

They mirror the OrdersService example of Confluent's microservices demo:

    orders ──► route-orders ──► order-validations (ORDER_DETAILS_CHECK)
                    ├──► orders-by-product ──► check-inventory ──► order-validations
                    └──► orders-by-customer ──► check-fraud ─────► order-validations
    order-validations ──► aggregate-validations ──► orders (VALIDATED | FAILED)

The re-keyed topics put each product's (or customer's) orders on one
partition, next to that product's stock (or that customer's fraud session),
so the services scale out by running more `stategate services` processes.
"""

from __future__ import annotations

import logging
from typing import Any

from faust.types import EventT, StreamT, TableT

from app.config import Settings

from . import rules
from .admin import TopicSpec, topics_of
from .faust_app import create_faust_app, table_options
from .records import (
    FAIL,
    PASS,
    Order,
    OrderValidation,
    RecordError,
    StockLevel,
    parse_time,
    utc_now,
)
from .topics import order_topics, raw_topic

SERVICES_APP_ID = "stategate-services"

log = logging.getLogger("stategate.streams.services")


class OrderServices:
    """The services' Faust app with its topics, tables and agents."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        app = create_faust_app(SERVICES_APP_ID, settings)
        self.app = app
        self.topics = order_topics(app, settings)
        self.orders_by_product = raw_topic(app, "orders-by-product", settings, internal=True)
        self.orders_by_customer = raw_topic(app, "orders-by-customer", settings, internal=True)

        def table(name: str) -> TableT[str, Any]:
            return app.Table(
                name,
                partitions=settings.partitions,
                key_type=bytes,  # raw UTF-8 keys, as in the topics
                options=table_options(settings),
            )

        self.pending = table("pending-orders")  # order id -> {"order", "validations"}
        self.stock = table("stock")  # product -> units in the warehouse
        self.reserved = table("reserved")  # product -> units reserved by validated orders
        self.fraud_sessions = table("fraud-sessions")  # customer -> {"start", "last", "total"}

        app.agent(self.topics.orders, name="route-orders")(self._route_orders)
        app.agent(self.topics.warehouse_inventory, name="stock-levels")(self._stock_levels)
        app.agent(self.orders_by_product, name="check-inventory")(self._check_inventory)
        app.agent(self.orders_by_customer, name="check-fraud")(self._check_fraud)
        app.agent(self.topics.order_validations, name="aggregate-validations")(self._aggregate)

    @property
    def topic_specs(self) -> list[TopicSpec]:
        """Every topic the services read or write, and their tables' changelogs."""
        topics = [
            self.topics.orders,
            self.topics.order_validations,
            self.topics.warehouse_inventory,
            self.orders_by_product,
            self.orders_by_customer,
        ]
        return topics_of(self.app, topics, self.settings.partitions)

    async def _verdict(self, order: Order, check_type: str, result: str) -> None:
        verdict = OrderValidation(order.id, check_type, result)
        await self.topics.order_validations.send(key=order.id.encode(), value=verdict.to_json())

    async def _route_orders(self, stream: StreamT[bytes]) -> None:
        """Start validating new orders; send failed orders back to release stock."""
        async for event in stream.events():
            order = _read_order(event)
            if order is None:
                continue
            if order.state == "CREATED":
                if order.id in self.pending:
                    continue  # a duplicate of an order being validated
                self.pending[order.id] = {"order": order.as_dict(), "validations": {}}
                await self._verdict(order, "ORDER_DETAILS_CHECK", rules.check_details(order))
                value = order.to_json()
                await self.orders_by_product.send(key=order.product.encode(), value=value)
                await self.orders_by_customer.send(key=order.customer_id.encode(), value=value)
            elif order.state == "FAILED" and order.validations.get("INVENTORY_CHECK") == PASS:
                await self.orders_by_product.send(key=order.product.encode(), value=order.to_json())

    async def _stock_levels(self, stream: StreamT[bytes]) -> None:
        """Materialize the warehouse's stock per product."""
        async for event in stream.events():
            key = event.key.decode() if event.key else None
            try:
                level = StockLevel.from_json(event.value, key)
            except RecordError as exc:
                log.warning("skipping unreadable stock record", extra={"error": str(exc)})
                continue
            self.stock[level.product] = level.stock

    async def _check_inventory(self, stream: StreamT[bytes]) -> None:
        """INVENTORY_CHECK, reserving stock for passing orders and releasing it for failed ones."""
        async for event in stream.events():
            order = _read_order(event)
            if order is None:
                continue
            reserved = int(self.reserved.get(order.product, 0))
            if order.state == "FAILED":
                self.reserved[order.product] = max(0, reserved - order.quantity)
                continue
            stock = int(self.stock.get(order.product, 0))
            result = rules.check_inventory(order, stock, reserved)
            if result == PASS:
                self.reserved[order.product] = reserved + order.quantity
            await self._verdict(order, "INVENTORY_CHECK", result)

    async def _check_fraud(self, stream: StreamT[bytes]) -> None:
        """FRAUD_CHECK over each customer's one-hour session window."""
        async for event in stream.events():
            order = _read_order(event)
            if order is None:
                continue
            at = _order_time(order, event.message.timestamp)
            result, session = rules.check_fraud(self.fraud_sessions.get(order.customer_id), order, at)
            self.fraud_sessions[order.customer_id] = session
            await self._verdict(order, "FRAUD_CHECK", result)

    async def _aggregate(self, stream: StreamT[bytes]) -> None:
        """Collect the three verdicts; write the VALIDATED or FAILED order back to `orders`."""
        async for event in stream.events():
            try:
                verdict = OrderValidation.from_json(event.value)
            except RecordError as exc:
                log.warning("skipping unreadable validation", extra={"error": str(exc)})
                continue
            entry: dict[str, Any] | None = self.pending.get(verdict.order_id)
            if entry is None:
                continue  # late or duplicate verdict for a decided order
            entry["validations"][verdict.check_type] = verdict.result if verdict.result == PASS else FAIL
            state = rules.decide(entry["validations"])
            if state is None:
                self.pending[verdict.order_id] = entry
                continue
            order = Order.from_dict(entry["order"])
            order.state = state
            order.version += 1
            order.validations = entry["validations"]
            order.updated_at = utc_now()
            await self.topics.orders.send(key=order.id.encode(), value=order.to_json())
            del self.pending[verdict.order_id]
            log.debug("order decided", extra={"order_id": order.id, "state": state})


def _read_order(event: EventT[bytes]) -> Order | None:
    try:
        return Order.from_record(event.value, event.key, event.message.timestamp)
    except RecordError as exc:
        log.warning("skipping unreadable order record", extra={"error": str(exc)})
        return None


def _order_time(order: Order, record_timestamp: float | None) -> float:
    """The order's event time: its `created_at`, else the Kafka record's timestamp."""
    if order.created_at:
        try:
            return parse_time(order.created_at)
        except ValueError:
            pass
    return float(record_timestamp or 0.0)


__all__ = ["OrderServices", "SERVICES_APP_ID"]
