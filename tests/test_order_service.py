"""Unit tests of the order use-cases around the order view (no Kafka: the view and producer are stand-ins)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from stategate.app.orders import NewOrder, OrderService, reaches
from stategate.app.waiters import Waiters
from stategate.streams.records import Order


class ViewStandIn:
    """The order view's `get`: the newest version applied, by id."""

    def __init__(self) -> None:
        self.orders: dict[str, Order] = {}

    def get(self, order_id: str) -> Order | None:
        return self.orders.get(order_id)

    def is_erased(self, order_id: str) -> bool:
        return False


class FastFlowProducer:
    """Kafka acknowledges the CREATED order only after the view has applied it and its VALIDATED version."""

    def __init__(self, view: ViewStandIn) -> None:
        self.view = view
        self.service: OrderService | None = None

    async def send(self, topic: str, key: str, value: bytes, headers: Any = None, erasable: bool = False) -> None:
        created = Order.from_json(value)
        assert self.service is not None
        for version in (created, replace(created, state="VALIDATED", version=2)):
            self.view.orders[key] = version
            self.service.on_change(version)


async def test_an_order_validated_before_its_ack_is_seen_as_validated() -> None:
    """The flow can outrun the produce acknowledgement; the first order must not shadow the newer one."""
    view = ViewStandIn()
    producer = FastFlowProducer(view)
    service = OrderService(producer, view, Waiters(10), "orders", "warehouse-inventory")  # type: ignore[arg-type]
    producer.service = service

    placed = await service.place(NewOrder("c", "P", 1, 1.0), idempotency_key="k")

    assert placed.state == "CREATED"
    current = service.lookup(placed.id)
    assert current is not None and current.state == "VALIDATED"
    reached, met = await service.wait_until(placed.id, reaches({"VALIDATED"}), timeout=0.5)
    assert met and reached is not None and reached.version == 2
    assert service._written == {}  # nothing stale kept for a later lookup
