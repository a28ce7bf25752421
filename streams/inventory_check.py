"""INVENTORY_CHECK and the decision, as Faust agents on `orders-by-product` and `warehouse-inventory`.

The `inventory` table holds one value per product: the warehouse's stock,
the units reserved by validated orders, the source offsets already applied,
and the order just decided. Its changelog topic, `inventory-checked`, is
also the check's output: the relay writes each decided order back to
`orders` (see order_steps.py for why). The inventory check comes last, so
only an order that passes every check reserves stock, and nothing is ever
released again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

import faust
import orjson
from faust.types import StreamT

from . import rules
from .erasure_records import handled_as_erasure
from .faust_app import StategateApp, json_table
from .kafka_settings import KafkaSettings
from .order_steps import OrderStep, Seen, is_duplicate, mark_seen
from .records import Order, RecordError, StockLevel, read_object, utc_now
from .table_output import TableOutput
from .topics import INVENTORY_CHECKED, raw_topic

log = logging.getLogger("stategate.streams.inventory")


@dataclass(slots=True)
class ProductState:
    """One product's value in the `inventory` table."""

    stock: int = 0
    reserved: int = 0
    seen: Seen = field(default_factory=dict)
    order: Order | None = None
    """The order this value decided (VALIDATED or FAILED): what the relay writes to `orders`."""

    @property
    def available(self) -> int:
        """Units that orders can still reserve."""
        return self.stock - self.reserved

    def to_json(self) -> bytes:
        """The value as JSON bytes."""
        order = self.order.as_dict() if self.order is not None else None
        return orjson.dumps({"stock": self.stock, "reserved": self.reserved, "seen": self.seen, "order": order})

    @classmethod
    def from_json(cls, data: bytes | None) -> ProductState:
        """Read a value; None (a product not seen yet) is an empty state: no stock."""
        if data is None:
            return cls()
        value = read_object(data)
        order = value.get("order")
        return cls(
            int(value.get("stock") or 0),
            int(value.get("reserved") or 0),
            dict(value.get("seen") or {}),
            Order.from_dict(order) if order else None,
        )


def decide(state: ProductState, step: OrderStep, now: str) -> ProductState:
    """The product's state after the step's order is checked and decided at `now` (ISO time).

    The order gets its INVENTORY_CHECK verdict and its final state, one
    version up; a VALIDATED order reserves its quantity.
    """
    order = step.order
    result = rules.check_inventory(order, state.stock, state.reserved)
    validations = {**order.validations, "INVENTORY_CHECK": result}
    decision = rules.decide(validations) or "FAILED"  # a step that skipped a check cannot pass
    decided = replace(order, state=decision, version=order.version + 1, validations=validations, updated_at=now)
    reserved = state.reserved + order.quantity if decision == "VALIDATED" else state.reserved
    return ProductState(state.stock, reserved, mark_seen(state.seen, step.source), decided)


def restock(state: ProductState, stock: int) -> ProductState:
    """The product's state with the warehouse's new stock level (and no order to forward)."""
    return ProductState(stock, state.reserved, state.seen, None)


class InventoryCheck:
    """The `check-inventory` and `stock-levels` agents and their `inventory` table, registered on a Faust app."""

    def __init__(
        self,
        app: StategateApp,
        orders_by_product: faust.types.TopicT,
        warehouse_inventory: faust.types.TopicT,
        settings: KafkaSettings,
    ) -> None:
        count = settings.services_partitions
        changelog = raw_topic(app, INVENTORY_CHECKED, settings, internal=True, partitions=count)
        self.table = json_table(app, "inventory", settings, changelog, partitions=count)
        self.output = TableOutput(app, self.table)
        app.agent(orders_by_product, name="check-inventory")(self._check)
        app.agent(warehouse_inventory, name="stock-levels")(self._stock_levels)

    async def _forget(self, key: bytes, order_id: str) -> None:
        """An erasure step: the product's value no longer carries the erased order (its reservation stays)."""
        state = ProductState.from_json(self.table.get(key))
        if state.order is not None and state.order.id == order_id:
            await self.output.overwrite(key, ProductState(state.stock, state.reserved, state.seen, None).to_json())
        else:
            await self.output.rewrite(key)  # older values may name it: they leave every copy's files too

    def state(self, product: str) -> ProductState:
        """A product's state in this process's table (its partition must be assigned here)."""
        return ProductState.from_json(self.table.get(product.encode()))

    async def _check(self, stream: StreamT[bytes]) -> None:
        async for event in stream.events():
            if await handled_as_erasure(event, self._forget):
                continue
            try:
                step = OrderStep.from_json(event.value)
            except RecordError as exc:
                log.warning("skipping unreadable order step", extra={"error": str(exc)})
                continue
            state = self.state(step.order.product)
            if is_duplicate(state.seen, step.source):
                continue
            decided = decide(state, step, utc_now())
            await self.output.write(step.order.product.encode(), decided.to_json())
            if decided.order is not None:
                log.debug("order decided", extra={"order_id": decided.order.id, "state": decided.order.state})

    async def _stock_levels(self, stream: StreamT[bytes]) -> None:
        async for event in stream.events():
            key = event.key.decode() if event.key else None
            try:
                level = StockLevel.from_json(event.value, key)
            except (RecordError, UnicodeDecodeError) as exc:
                log.warning("skipping unreadable stock record", extra={"error": str(exc)})
                continue
            restocked = restock(self.state(level.product), level.stock)
            await self.output.write(level.product.encode(), restocked.to_json())  # in order with the checks' writes
