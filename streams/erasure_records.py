"""The records that erase an order, on `orders` and on the topics the checks read.

An erasure travels through Kafka like any other change, so that every node
and every service that holds the order hears of it, in order with the
order's versions on its partition. Two records, told apart from orders by
the header `stategate-erasure`:

- **the request** (`order`): key = the order id with a GUID of its own,
  value `{"id", "customer_id", "product", "marker"}`. Readers drop the order
  (the gateway's views, the checks' tables) and keep its marker. The request
  names the order, so it is itself erased once the erasure is done.
- **the marker** (`done`): key = `~erased` with a GUID, written to the
  order's partition once nothing of the order is left in Kafka; value
  `{"marker"}` only. It stays (compaction keeps unique keys), so that a node
  that rebuilds its view from the topic still refuses the erased id.

The marker is a keyed hash of the id (the cluster secret is the key): it
proves nothing about the id to whoever does not have both, and it lets a
node refuse a retried POST of an erased order without keeping the id.

On `orders-by-customer` and `orders-by-product` the erasing node sends an
erasure step (`order` header, key the customer or product, value `{"id"}`)
to the fraud, inventory and customer-orders tables, which drop the order
from their values (streams/erasure_pass.py).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from .records import RecordError, read_object

HEADER = "stategate-erasure"
REQUEST = b"order"
DONE = b"done"
log = logging.getLogger("stategate.streams.erasure")

MARKER_KEY = "~erased"
"""The business key of `done` markers: `~` never occurs in an order id."""


def erasure_kind(headers: Iterable[tuple[str, bytes]] | Mapping[str, bytes] | None) -> bytes | None:
    """`REQUEST`, `DONE`, or None for a record that is not part of an erasure (headers as pairs or a mapping)."""
    if isinstance(headers, Mapping):
        return headers.get(HEADER)
    for name, value in headers or ():
        if name == HEADER:
            return value
    return None


def marker_of(secret: bytes, order_id: str) -> str:
    """The erased order's marker: a keyed BLAKE2b hash of its id, 32 hex characters."""
    return hashlib.blake2b(order_id.encode(), key=secret[:64], digest_size=16).hexdigest()


@dataclass(frozen=True, slots=True)
class ErasureRequest:
    """An order to erase: its id, the keys it is filed under on the checks' topics, and its marker."""

    order_id: str
    customer_id: str
    product: str
    marker: str

    def to_json(self) -> bytes:
        """The request's record value."""
        return orjson.dumps(
            {"id": self.order_id, "customer_id": self.customer_id, "product": self.product, "marker": self.marker}
        )

    @classmethod
    def from_json(cls, data: bytes | None) -> ErasureRequest:
        """Read a request; RecordError when it is not one."""
        value = read_object(data or b"")
        try:
            return cls(str(value["id"]), str(value["customer_id"]), str(value["product"]), str(value["marker"]))
        except KeyError as exc:
            raise RecordError(f"an erasure request has no {exc.args[0]!r}") from None


def done_value(marker: str) -> bytes:
    """The value of a `done` marker."""
    return orjson.dumps({"marker": marker})


def marker_in(data: bytes | None) -> str:
    """The marker of a `done` record; RecordError when there is none."""
    marker = read_object(data or b"").get("marker")
    if not isinstance(marker, str) or not marker:
        raise RecordError("a done marker has no marker")
    return marker


def erasure_step(order_id: str) -> bytes:
    """The value of an erasure step on the checks' topics."""
    return orjson.dumps({"id": order_id})


def erased_id_in(data: bytes | None) -> str:
    """The order id of an erasure step on the checks' topics (`{"id"}`); RecordError when there is none."""
    order_id = read_object(data or b"").get("id")
    if not isinstance(order_id, str) or not order_id:
        raise RecordError("an erasure step has no id")
    return order_id


Forget = Callable[[bytes, str], Awaitable[None]]
"""A table's agent dropping an erased order from the value under a key: `forget(key, order_id)`."""


class Event(Protocol):
    """What `handled_as_erasure` reads of a Faust event (this module does not import Faust)."""

    key: Any
    value: Any
    headers: Any


async def handled_as_erasure(event: Event, forget: Forget) -> bool:
    """Whether an event on the checks' topics is part of an erasure, not a step to check; hands erasure steps on.

    A tombstone (an erased step, or a segment roll of streams/erasure_pass.py)
    is skipped; an erasure step goes to `forget` with its key and order id.
    """
    if event.value is None:
        return True
    if erasure_kind(event.headers) is None:
        return False
    try:
        order_id = erased_id_in(event.value)
    except RecordError as exc:
        log.warning("skipping unreadable erasure step", extra={"error": str(exc)})
        return True
    if event.key is not None:
        await forget(event.key, order_id)
    return True
