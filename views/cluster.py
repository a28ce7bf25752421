"""`GET /v1/cluster`: the live nodes, their advertised URLs and the partitions they own."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import JSONResponse

from .dependencies import NodeDep
from .openapi import Cluster, answer

router = APIRouter(tags=["cluster"])


@router.get(
    "/v1/cluster",
    summary="The live nodes and the orders-table partitions each owns",
    responses={200: answer("The members and this node's view.", Cluster)},
)
async def cluster(node: NodeDep) -> JSONResponse:
    """`{"self", "partitions", "reply_partitions", "view", "nodes": [{"id", "url", "partitions", "answers"}]}`.

    `partitions` is how many partitions `orders` has (an order id's partition is
    Kafka's murmur2 of the id modulo this; 0 before this node knows).

    Ids of other nodes come from their own /healthz; `answers` is false for a
    member whose /healthz did not answer this node's last probe (it gets no
    redirects); `reply_partitions` are the reply-topic partitions this node reads;
    `view` is this node's own order view: its active and standby partitions of
    `orders` and the offset of the last record it applied from each.
    """
    members = node.ownership.members()
    nodes = [
        {
            "id": await node.peers.node_id(url),
            "url": url,
            "partitions": partitions,
            "answers": not node.peers.is_down(url),
        }
        for url, partitions in sorted(members.items())
    ]
    reply_partitions = sorted(node.service_calls.replies.partitions)
    view = {
        "active": sorted(node.view.active),
        "standby": sorted(node.view.standby),
        "applied": {str(p): offset for p, offset in node.view.applied().items()},
    }
    return JSONResponse(
        {
            "self": node.settings.node_id,
            "partitions": node.feed.partitions,
            "reply_partitions": reply_partitions,
            "view": view,
            "nodes": nodes,
        }
    )
