"""`GET /internal/orders/{id}/snapshot`: an order this node owns, and the offset its state is as of.

A node opening a live stream for an order another node owns asks the owner
here (app/peers.py). The offset lets the asking node fill the gap between
the owner's view and its own order feed without a duplicate or a hole
(app/order_streams.py). It tells no more than `GET /v1/orders/{id}`.
"""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Path
from starlette.responses import Response

from stategate.app.orders import ORDER_ID_PATTERN

from .dependencies import NodeDep
from .input_limits import MAX_ORDER_ID_LENGTH
from .problems import Problem

router = APIRouter(include_in_schema=False)


@router.get("/internal/orders/{order_id}/snapshot")
async def order_snapshot(
    node: NodeDep, order_id: Annotated[str, Path(max_length=MAX_ORDER_ID_LENGTH, pattern=ORDER_ID_PATTERN)]
) -> Response:
    """200 with `{"order": … or null, "partition", "offset"}`; 409 when this node does not own the order now."""
    if not node.ownership.owner(order_id).is_self:
        raise Problem(409, "This node does not own the order right now.")
    snapshot = node.local_snapshot(order_id)
    body = {
        "order": None if snapshot.order is None else snapshot.order.as_dict(),
        "partition": snapshot.partition,
        "offset": snapshot.offset,
    }
    return Response(orjson.dumps(body), media_type="application/json")
