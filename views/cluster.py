"""`GET /v1/cluster`: the live nodes, their advertised URLs and the partitions they own."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import JSONResponse

from .dependencies import NodeDep

router = APIRouter(tags=["cluster"])


@router.get("/v1/cluster", summary="The live nodes and the orders-table partitions each owns")
async def cluster(node: NodeDep) -> JSONResponse:
    """`{"self", "reply_partitions", "nodes": [{"id", "url", "partitions", "answers"}]}`.

    Ids of other nodes come from their own /healthz; `answers` is false for a
    member whose /healthz did not answer this node's last probe (it gets no
    redirects); `reply_partitions` are the reply-topic partitions this node reads.
    """
    members = node.routing.members()
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
    return JSONResponse({"self": node.settings.node_id, "reply_partitions": reply_partitions, "nodes": nodes})
