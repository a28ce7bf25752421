"""`GET /v1/cluster`: the live nodes, their advertised URLs and the partitions they own."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import JSONResponse

from .dependencies import NodeDep

router = APIRouter(tags=["cluster"])


@router.get("/v1/cluster", summary="The live nodes and the orders-table partitions each owns")
async def cluster(node: NodeDep) -> JSONResponse:
    """`{"self": id, "nodes": [{"id", "url", "partitions"}]}`; ids of other nodes come from their own /healthz."""
    members = node.routing.members()
    nodes = [
        {"id": await node.peers.node_id(url), "url": url, "partitions": partitions}
        for url, partitions in sorted(members.items())
    ]
    return JSONResponse({"self": node.settings.node_id, "nodes": nodes})
