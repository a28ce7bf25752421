"""`/healthz`, `/readyz` and `/metrics`."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import JSONResponse, Response

from stategate.app.http_answers import retry_after

from .dependencies import NodeDep

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process is alive")
async def healthz(node: NodeDep) -> JSONResponse:
    """200 while the process runs."""
    return JSONResponse({"status": "ok", "node": node.settings.node_id})


@router.get(
    "/readyz", summary="Partitions assigned and read to their end", responses={503: {"description": "Not ready."}}
)
async def readyz(node: NodeDep) -> JSONResponse:
    """200 once this node's partitions of `orders` are read to their end and no rebalance is under way; 503 before."""
    ready = node.is_ready()
    return JSONResponse(
        {"status": "ready" if ready else "starting", "node": node.settings.node_id},
        status_code=200 if ready else 503,
        headers=None if ready else retry_after(node.settings.retry_after_seconds),
    )


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(node: NodeDep) -> Response:
    """The node's metrics in Prometheus text format."""
    return Response(node.metrics.render(), media_type="text/plain; version=0.0.4")
