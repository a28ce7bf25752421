"""FRAUD_CHECK: each customer's total over a one-hour session, as a Faust agent on `orders-by-customer`.

The `fraud` table holds one value per customer: the open session, the
source offsets already applied, and the order just checked. Its changelog
topic, `fraud-checked`, is also the check's output: the relay sends each
checked order on to the inventory check (see order_steps.py for why).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Any

import faust
import orjson
from faust.types import StreamT

from . import rules
from .erasure_records import handled_as_erasure
from .faust_app import StategateApp, json_table
from .kafka_settings import KafkaSettings
from .order_steps import OrderStep, Seen, is_duplicate, mark_seen
from .records import PASS, Order, RecordError, parse_time, read_object
from .table_output import TableOutput
from .topics import FRAUD_CHECKED, raw_topic

log = logging.getLogger("stategate.streams.fraud")


@dataclass(slots=True)
class CustomerState:
    """One customer's value in the `fraud` table."""

    session: dict[str, Any] | None = None
    seen: Seen = field(default_factory=dict)
    order: Order | None = None
    """The order this value checked, with its FRAUD_CHECK verdict: what the relay forwards."""

    def to_json(self) -> bytes:
        """The value as JSON bytes."""
        order = self.order.as_dict() if self.order is not None else None
        return orjson.dumps({"session": self.session, "seen": self.seen, "order": order})

    @classmethod
    def from_json(cls, data: bytes | None) -> CustomerState:
        """Read a value; None (a customer not seen yet) is an empty state."""
        if data is None:
            return cls()
        value = read_object(data)
        order = value.get("order")
        return cls(value.get("session"), dict(value.get("seen") or {}), Order.from_dict(order) if order else None)


def check(state: CustomerState, step: OrderStep, at: float) -> CustomerState:
    """The customer's state after the step's order is checked at time `at` (epoch seconds).

    The verdict goes into the order's `validations`. An order that already
    failed an earlier check is judged but not counted in the session, so a
    malformed order (say, a negative price) cannot lower a customer's total.
    """
    order = step.order
    result, session = rules.check_fraud(state.session, order, at)
    counted = all(verdict == PASS for verdict in order.validations.values())
    checked = replace(order, validations={**order.validations, "FRAUD_CHECK": result})
    return CustomerState(session if counted else state.session, mark_seen(state.seen, step.source), checked)


def order_time(order: Order, record_timestamp: float | None) -> float:
    """The order's event time: its `created_at`, else the Kafka record's timestamp."""
    if order.created_at:
        try:
            return parse_time(order.created_at)
        except ValueError:
            pass
    return float(record_timestamp or 0.0)


class FraudCheck:
    """The `check-fraud` agent and its `fraud` table, registered on a Faust app."""

    def __init__(self, app: StategateApp, source: faust.types.TopicT, settings: KafkaSettings) -> None:
        count = settings.services_partitions
        changelog = raw_topic(app, FRAUD_CHECKED, settings, internal=True, partitions=count)
        self.table = json_table(app, "fraud", settings, changelog, partitions=count)
        self.output = TableOutput(app, self.table)
        app.agent(source, name="check-fraud")(self._check)

    async def _check(self, stream: StreamT[bytes]) -> None:
        async for event in stream.events():
            if await handled_as_erasure(event, self._forget):
                continue
            try:
                step = OrderStep.from_json(event.value)
            except RecordError as exc:
                log.warning("skipping unreadable order step", extra={"error": str(exc)})
                continue
            key = step.order.customer_id.encode()
            state = CustomerState.from_json(self.table.get(key))
            if is_duplicate(state.seen, step.source):
                continue
            at = order_time(step.order, event.message.timestamp)
            await self.output.write(key, check(state, step, at).to_json())

    async def _forget(self, key: bytes, order_id: str) -> None:
        """An erasure step: the customer's value no longer carries the erased order."""
        state = CustomerState.from_json(self.table.get(key))
        if state.order is not None and state.order.id == order_id:
            await self.output.overwrite(key, CustomerState(state.session, state.seen, None).to_json())
        else:
            await self.output.rewrite(key)  # older values may name it: they leave every copy's files too
