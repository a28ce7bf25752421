"""The `inventory` service: a product's stock, reserved and available units, read where they live.

The inventory check owns that state (its `inventory` table). Rather than
copy it into the gateway, the gateway asks this service over its own
request/response path (`GET /v1/inventory/{product}` → `GET /{product}` on
`inventory-requests`). The request topic is keyed by product, like the
table, so a request reaches the process that holds the product's partition.
"""

from __future__ import annotations

import faust

from .inventory_check import InventoryCheck
from .service_sdk import Reply, Service, ServiceError, ServiceRequest, read_key

INVENTORY_SERVICE = "inventory"
INVENTORY_REQUESTS = "inventory-requests"


def stock_reply(product: str, stock: int, reserved: int) -> Reply:
    """The answer for one product."""
    return Reply(200, {"product": product, "stock": stock, "reserved": reserved, "available": stock - reserved})


class InventoryReads:
    """The `inventory` service's agent, registered on the Faust app that holds the `inventory` table."""

    def __init__(self, app: faust.App, requests: faust.types.TopicT, inventory: InventoryCheck) -> None:
        self.inventory = inventory
        Service(app, INVENTORY_SERVICE, requests).handler(self.handle)

    async def handle(self, request: ServiceRequest) -> Reply:
        """`GET /{product}`: 200 with the levels; 404 for a product the warehouse never stocked."""
        product = read_key(request, "/{product}")
        state = self.inventory.state(product)
        if not state.stock and not state.reserved and not state.seen:
            raise ServiceError(404, f"No stock level for {product!r}.")
        return stock_reply(product, state.stock, state.reserved)
