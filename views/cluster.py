"""`GET /v1/cluster`: the live nodes, their advertised URLs and the partitions they own."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import JSONResponse

from .dependencies import NodeDep

router = APIRouter(tags=["cluster"])


@router.get("/v1/cluster", summary="The live nodes and the orders-table partitions each owns")
async def cluster(node: NodeDep) -> JSONResponse:
    """`{"self", "reply_partitions", "nodes": [{"id", "url", "partitions"}]}`.

    Ids of other nodes come from their own /healthz; `reply_partitions` are
    the partitions of the gateway's reply topic this node reads.
    """
    members = node.routing.members()
    nodes = [
        {"id": await node.peers.node_id(url), "url": url, "partitions": partitions}
        for url, partitions in sorted(members.items())
    ]
    reply_partitions = sorted(node.service_calls.replies.partitions)
    return JSONResponse({"self": node.settings.node_id, "reply_partitions": reply_partitions, "nodes": nodes})
