"""The example services behind `/v1/services/{service}/…`, built with the service SDK.

| service | request topic | state |
|---|---|---|
| `echo` | `echo-requests` | none |
| `customers` | `customers-requests` | table `customers`: id -> the customer's JSON object |
| `basket` | `basket-requests` | table `baskets`: user -> `{"items": [{"product", "quantity"}, …]}` |

The gateway keys each request by the first path segment (the customer id, the
user), so the table rows of one id live on the partition its requests arrive on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, MutableMapping
from functools import partial
from typing import Any

import faust
import orjson
from faust.types import TableT

from .admin import TopicSpec, topics_of
from .faust_app import json_table
from .kafka_settings import KafkaSettings
from .service_sdk import Reply, Service, ServiceError, ServiceRequest
from .topics import raw_topic

EXAMPLE_SERVICES: dict[str, str] = {
    "echo": "echo-requests",
    "customers": "customers-requests",
    "basket": "basket-requests",
}
"""Service name -> request topic name, before the namespace is applied."""

EXAMPLES_APP_ID = "stategate-examples"
"""The example services' own Faust app (consumer group, changelog prefix)."""

MAX_STREAM_RECORDS = 1000
MAX_QUANTITY = 1_000_000

Rows = MutableMapping[bytes, bytes]


class ExampleServices:
    """The example services' topics, tables and agents, registered on a Faust app."""

    def __init__(self, app: faust.App, settings: KafkaSettings) -> None:
        self.app = app
        self.settings = settings
        count = settings.services_partitions  # read only by services processes: they scale with those
        self.request_topics = {
            name: raw_topic(app, topic, settings, partitions=count) for name, topic in EXAMPLE_SERVICES.items()
        }
        self.customers = self._table("customers")
        self.baskets = self._table("baskets")

        def service(name: str) -> Service:
            return Service(app, name, self.request_topics[name])

        service("echo").handler(echo)
        service("customers").handler(partial(customers, rows=self.customers))
        service("basket").handler(partial(basket, rows=self.baskets))

    def _table(self, name: str) -> TableT[bytes, bytes]:
        # keyed like the request topics, and partitioned like them
        return json_table(self.app, name, self.settings, partitions=self.settings.services_partitions)

    @property
    def topic_specs(self) -> list[TopicSpec]:
        """The request topics, the tables' compacted changelogs and the app's assignor topic."""
        return topics_of(self.app, self.request_topics.values(), self.settings)


async def echo(request: ServiceRequest) -> Reply | AsyncIterator[dict[str, int]]:
    """Any method and path: the request back. `GET /stream?n=N`: N records `{"i": k}`."""
    if request.method == "GET" and request.path == "/stream":
        return count_to(stream_length(request.query.get("n")))
    body = request.body.decode("utf-8", errors="replace")
    return Reply(200, {"method": request.method, "path": request.target, "body": body})


def stream_length(n: str | None) -> int:
    """The `n` query parameter: a whole number from 0 to MAX_STREAM_RECORDS."""
    if n is None or not n.isdecimal() or int(n) > MAX_STREAM_RECORDS:
        raise ServiceError(422, f"n must be a whole number from 0 to {MAX_STREAM_RECORDS}.")
    return int(n)


async def count_to(n: int) -> AsyncIterator[dict[str, int]]:
    """`{"i": 0}` … `{"i": n - 1}`."""
    for i in range(n):
        yield {"i": i}


async def customers(request: ServiceRequest, rows: Rows) -> Reply:
    """`PUT /{id}` stores a JSON object; `GET /{id}` returns it."""
    if len(request.segments) != 1:
        raise ServiceError(404, "Customers live at /{id}.")
    key = request.segments[0].encode()
    if request.method == "GET":
        stored = rows.get(key)
        if stored is None:
            raise ServiceError(404, "No such customer.")
        return Reply(200, stored)
    if request.method == "PUT":
        if not isinstance(request.json(), dict):
            raise ServiceError(422, "A customer is a JSON object.")
        rows[key] = request.body  # stored as sent: it is valid JSON
        return Reply(200, request.body)
    raise ServiceError(405, headers={"allow": "GET, PUT"})


async def basket(request: ServiceRequest, rows: Rows) -> Reply:
    """`POST /{user}/items` adds an item; `GET /{user}` reads; `DELETE /{user}` empties.

    Adding a product already in the basket adds up its quantity, so each
    product appears once, in the order it was first added.
    """
    match request.segments:
        case (user, "items"):
            if request.method != "POST":
                raise ServiceError(405, headers={"allow": "POST"})
            product, quantity = basket_item(request.json())
            items = add_item(read_items(rows.get(user.encode())), product, quantity)
            rows[user.encode()] = encode_items(items)
            return Reply(200, {"items": items})
        case (user,):
            if request.method == "GET":
                return Reply(200, {"items": read_items(rows.get(user.encode()))})
            if request.method == "DELETE":
                rows.pop(user.encode(), None)
                return Reply(200, {"items": []})
            raise ServiceError(405, headers={"allow": "GET, DELETE"})
        case _:
            raise ServiceError(404, "Baskets live at /{user} and /{user}/items.")


def basket_item(body: Any) -> tuple[str, int]:
    """The `{"product": str, "quantity": int > 0}` of a POST, or a 422."""
    if not isinstance(body, dict):
        raise ServiceError(422, 'An item is a JSON object {"product", "quantity"}.')
    product, quantity = body.get("product"), body.get("quantity")
    if not isinstance(product, str) or not product.strip():
        raise ServiceError(422, "product must be a non-empty string.")
    if isinstance(quantity, bool) or not isinstance(quantity, int) or not 0 < quantity <= MAX_QUANTITY:
        raise ServiceError(422, f"quantity must be a whole number from 1 to {MAX_QUANTITY}.")
    return product, quantity


def add_item(items: list[dict[str, Any]], product: str, quantity: int) -> list[dict[str, Any]]:
    """The items with `quantity` more of `product`."""
    for item in items:
        if item["product"] == product:
            return [{**i, "quantity": i["quantity"] + quantity} if i is item else i for i in items]
    return [*items, {"product": product, "quantity": quantity}]


def read_items(stored: bytes | None) -> list[dict[str, Any]]:
    """A basket row's items (none when there is no row)."""
    if stored is None:
        return []
    items: list[dict[str, Any]] = orjson.loads(stored)["items"]
    return items


def encode_items(items: list[dict[str, Any]]) -> bytes:
    """A basket row."""
    return orjson.dumps({"items": items})


__all__ = ["EXAMPLE_SERVICES", "ExampleServices"]
