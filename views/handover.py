"""`POST /internal/replies`: a reply another node read for a request parked here (see app/handover.py)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from stategate.app.handover import HANDOVER_PATH, SIGNATURE_HEADER, read_handover, verify

from .dependencies import NodeDep
from .problems import Problem

router = APIRouter(include_in_schema=False)


@router.post(HANDOVER_PATH)
async def receive_handover(request: Request, node: NodeDep) -> Response:
    """204 when the waiting request got the reply; 404 when none waits (late); 403 unless signed."""
    body = await request.body()
    if not verify(node.service_calls.cluster_secret, body, request.headers.get(SIGNATURE_HEADER)):
        raise Problem(403, "Not signed with this cluster's secret.")
    try:
        correlation_id, part = read_handover(body)
    except ValueError:
        raise Problem(422, "Not a reply hand-over.") from None
    if not node.service_calls.deliver(correlation_id, part):
        raise Problem(404, "No request waits for this reply here.")
    node.metrics.reply_handovers.labels("received").inc()
    return Response(status_code=204)
