"""The records that travel through the topics, and their JSON form.

Every topic carries UTF-8 keys (no JSON quoting) and JSON values, so any
producer in any language can take part. The formats are documented in the
README ("Topics and record formats").
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from .erasable_keys import business_key

ORDER_STATES: tuple[str, ...] = ("CREATED", "VALIDATED", "FAILED")
TERMINAL_STATES: frozenset[str] = frozenset({"VALIDATED", "FAILED"})

CHECK_TYPES: tuple[str, ...] = ("ORDER_DETAILS_CHECK", "INVENTORY_CHECK", "FRAUD_CHECK")
PASS, FAIL = "PASS", "FAIL"


ORDER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,63}$"
"""An order id a client can name in a URL: 1–64 characters, no `/`, no spaces."""
_ORDER_ID = re.compile(ORDER_ID_PATTERN)

REJECTIONS: dict[str, str] = {
    "unreadable": "the value is not an order",
    "no-key": "the record has no key: every version of an order must be keyed by its id",
    "key-not-id": "the record's key is not the order's id",
    "bad-id": "the order id is not 1-64 letters, digits or ._:-",
}
"""Why a record on `orders` is rejected, by the short name /metrics counts it under."""


class RecordError(ValueError):
    """A record that cannot be read as the type its topic carries."""


def utc_now() -> str:
    """The current time as an ISO 8601 UTC timestamp with milliseconds."""
    return iso_time(datetime.now(UTC).timestamp())


def iso_time(epoch_seconds: float) -> str:
    """An ISO 8601 UTC timestamp with milliseconds."""
    moment = datetime.fromtimestamp(epoch_seconds, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(text: str) -> float:
    """Seconds since the epoch of an ISO 8601 timestamp (naive means UTC)."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def read_object(data: bytes | str | None) -> dict[str, Any]:
    """A JSON object from a record's value; raises RecordError if it is not one."""
    if data is None:
        raise RecordError("no value")
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise RecordError(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise RecordError("not a JSON object")
    return value


def _integer(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RecordError(f"{name} is not a number")
    if isinstance(value, float) and not value.is_integer():
        raise RecordError(f"{name} is not a whole number")
    return int(value)


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise RecordError(f"{name} is not a finite number")
    return float(value)


def _text(value: Any, name: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise RecordError(f"{name} is not a string")
    return value


@dataclass(slots=True)
class Order:
    """An order as it is written to the `orders` topic and kept in the gateway's order view."""

    id: str
    customer_id: str
    product: str
    quantity: int
    price: float
    state: str = "CREATED"
    version: int = 1
    validations: dict[str, str] = field(default_factory=dict)
    created_at: str = ""
    updated_at: str = ""

    @property
    def is_terminal(self) -> bool:
        """True once the order is VALIDATED or FAILED."""
        return self.state in TERMINAL_STATES

    @property
    def etag(self) -> str:
        """The strong entity tag of this version of the order."""
        return f'"{self.version}"'

    def as_dict(self) -> dict[str, Any]:
        """The order's JSON object."""
        return {
            "id": self.id,
            "customer_id": self.customer_id,
            "product": self.product,
            "quantity": self.quantity,
            "price": self.price,
            "state": self.state,
            "version": self.version,
            "validations": self.validations,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }

    def to_json(self) -> bytes:
        """The order as JSON bytes."""
        return orjson.dumps(self.as_dict())

    @classmethod
    def from_dict(cls, value: dict[str, Any], key: str | None = None) -> Order:
        """Read an order from a JSON object; `key` stands in for a missing id."""
        order_id = _text(value.get("id") or key, "id")
        if not order_id:
            raise RecordError("order has no id")
        state = value.get("state") or "CREATED"
        if state not in ORDER_STATES:
            raise RecordError(f"unknown order state {state!r}")
        validations = value.get("validations") or {}
        if not isinstance(validations, dict):
            raise RecordError("validations is not an object")
        created_at = _text(value.get("created_at"), "created_at")
        return cls(
            id=order_id,
            customer_id=_text(value.get("customer_id"), "customer_id"),
            product=_text(value.get("product"), "product"),
            quantity=_integer(value.get("quantity", 0), "quantity"),
            price=_number(value.get("price", 0), "price"),
            state=state,
            version=_integer(value.get("version", 1), "version"),
            validations={str(k): str(v) for k, v in validations.items()},
            created_at=created_at,
            updated_at=_text(value.get("updated_at"), "updated_at") or created_at,
        )

    @classmethod
    def from_json(cls, data: bytes | str, key: str | None = None) -> Order:
        """Read an order from JSON bytes; raises RecordError if it is not one."""
        return cls.from_dict(read_object(data), key)

    @classmethod
    def from_record(cls, value: bytes, key: bytes | None, timestamp: float | None) -> Order:
        """Read an order from a Kafka record; the record's time stands in for a missing `created_at`."""
        try:
            order = cls.from_json(value, business_key(key).decode() if key else None)
        except UnicodeDecodeError:
            raise RecordError("the key is not UTF-8") from None
        if not order.created_at and timestamp:
            order.created_at = order.updated_at = iso_time(timestamp)
        return order


def order_record_rejection(key: bytes | None, order: Order) -> str | None:
    """Why every reader of `orders` rejects this record (a key of REJECTIONS), or None.

    Orders may come from any producer (a console producer, another service).
    The gateway's view and the services' first check apply this one rule, so
    a record is either taken by all and processed to a terminal state, or
    rejected by all: never shown CREATED by one while another reserves stock
    for it. The key must be the id, so that every version of an order lands
    on one partition, in order, and the owner lookup finds it.
    """
    if key is None:
        return "no-key"
    if business_key(key) != order.id.encode():
        return "key-not-id"
    if not _ORDER_ID.fullmatch(order.id):
        return "bad-id"
    return None


@dataclass(slots=True, frozen=True)
class StockLevel:
    """How many units of a product the warehouse holds, on `warehouse-inventory`."""

    product: str
    stock: int

    def to_json(self) -> bytes:
        """The stock level as JSON bytes."""
        return orjson.dumps({"product": self.product, "stock": self.stock})

    @classmethod
    def from_json(cls, data: bytes, key: str | None = None) -> StockLevel:
        """Read a stock level; raises RecordError if it is not one."""
        value = read_object(data)
        product = _text(value.get("product") or key, "product")
        return cls(product, _integer(value.get("stock"), "stock"))
