"""`/healthz`, `/readyz` and `/metrics`."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import JSONResponse, Response

from .dependencies import NodeDep
from .openapi import RETRY_AFTER, Health, Readiness, answer, problem_answer
from .problems import unavailable

METRICS_TEXT = "text/plain; version=0.0.4"
TEXT = {"type": "string"}

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process is alive", responses={200: answer("Alive.", Health)})
async def healthz(node: NodeDep) -> JSONResponse:
    """200 while the process runs."""
    return JSONResponse({"status": "ok", "node": node.settings.node_id})


@router.get(
    "/readyz",
    summary="Partitions assigned and read to their end",
    responses={
        200: answer("Ready.", Readiness),
        503: problem_answer("Not ready (yet, or any more).", {"Retry-After": RETRY_AFTER}),
    },
)
async def readyz(node: NodeDep) -> JSONResponse:
    """200 once this node's partitions of `orders` are read to their end and no rebalance is under way; 503 before."""
    if not node.is_ready():
        raise unavailable(
            "The partitions of `orders` are not yet assigned and read to their end, or the node is shutting down.",
            node.settings.retry_after_seconds,
        )
    return JSONResponse({"status": "ready", "node": node.settings.node_id})


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"description": "Prometheus text format.", "content": {"text/plain": {"schema": TEXT}}}},
)
async def metrics(node: NodeDep) -> Response:
    """The node's metrics in Prometheus text format."""
    return Response(node.metrics.render(), media_type=METRICS_TEXT)
