"""Orders on their way through the checks, and how a check knows one it has already applied.

Each stateful check (fraud, inventory) writes its verdict and its new state
as ONE record: the new value of its table, whose changelog topic is also the
check's output (`fraud-checked`, `inventory-checked`); a relay copies each
order from there on to the next topic. A check's state and its output can
therefore never disagree, whatever kills the process between two writes.

What remains is duplicates: records replayed after a crash (a source's
committed offset lags what was processed) and records relayed twice. Every
order on its way carries the partition and offset of the record it was made
from (its `Source`), and every table value keeps, per source partition, the
highest offset it has applied (`seen`). One source partition's records reach
a given key in offset order (they are read in order and sent in order by one
producer to one partition, and what a crash loses is always a suffix), so a
record at or below that offset is a duplicate, and the check skips it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import orjson

from .records import Order, RecordError, read_object

__all__ = ["OrderStep", "Seen", "Source", "is_duplicate", "mark_seen"]

Seen = dict[str, int]
"""Per source partition (a JSON object's keys are strings), the highest offset applied."""


@dataclass(frozen=True, slots=True)
class Source:
    """Where an order on its way came from: a partition and offset of the previous topic."""

    partition: int
    offset: int


@dataclass(slots=True)
class OrderStep:
    """An order between two checks, on `orders-by-customer` or `orders-by-product`."""

    order: Order
    source: Source

    def to_json(self) -> bytes:
        """`{"order": {...}, "source": {"partition": p, "offset": o}}` as JSON bytes."""
        source = {"partition": self.source.partition, "offset": self.source.offset}
        return orjson.dumps({"order": self.order.as_dict(), "source": source})

    @classmethod
    def from_json(cls, data: bytes) -> OrderStep:
        """Read a step; raises RecordError if it is not one."""
        value = read_object(data)
        order, source = value.get("order"), value.get("source")
        if not isinstance(order, dict) or not isinstance(source, dict):
            raise RecordError("not an order step")
        partition, offset = source.get("partition"), source.get("offset")
        if not isinstance(partition, int) or not isinstance(offset, int) or partition < 0 or offset < 0:
            raise RecordError("the step's source is not a partition and offset")
        return cls(Order.from_dict(order), Source(partition, offset))


def is_duplicate(seen: Mapping[str, int], source: Source) -> bool:
    """True when a record from `source` was already applied to this key."""
    return source.offset <= seen.get(str(source.partition), -1)


def mark_seen(seen: Mapping[str, int], source: Source) -> Seen:
    """`seen` with `source` applied."""
    return {**seen, str(source.partition): source.offset}
