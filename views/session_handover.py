"""The internal, signed paths through which nodes hand a WebSocket session over (see app/sessions.py).

`POST /internal/sessions/{id}/takeover` `{"seen", "to"}`: the node the client
reconnected to asks for the session; the answer is the messages after
`seen`, and this node forwards later ones to `to` (a live member only).
`POST /internal/sessions/{id}/messages` `{"messages": […]}`: those later
ones. Both are signed with the cluster secret, like reply hand-overs.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from stategate.app.handover import SIGNATURE_HEADER, verify
from stategate.app.sessions import FORWARD_PATH, MAX_SESSION_ID_LENGTH, TAKEOVER_PATH

from .dependencies import NodeDep
from .problems import Problem

router = APIRouter(include_in_schema=False)


async def _signed_body(request: Request, node: NodeDep, session_id: str) -> dict[str, Any]:
    body = await request.body()
    if not verify(node.service_calls.cluster_secret, body, request.headers.get(SIGNATURE_HEADER)):
        raise Problem(403, "Not signed with this cluster's secret.")
    if len(session_id) > MAX_SESSION_ID_LENGTH:
        raise Problem(404, "No such session here.")
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise Problem(422, "Not a session hand-over.")
    return value


@router.post(TAKEOVER_PATH.replace("{id}", "{session_id}"))
async def take_over(request: Request, node: NodeDep, session_id: str) -> Response:
    """200 with the messages after `seen`; 404 when this node does not hold the session."""
    value = await _signed_body(request, node, session_id)
    seen, to = value.get("seen"), value.get("to")
    if not isinstance(seen, int) or not isinstance(to, str):
        raise Problem(422, "Not a session hand-over.")
    handed = node.sessions.hand_over(session_id, seen, to)
    if handed is None:
        raise Problem(404, "No such session here, or it cannot go there.")
    messages, complete = handed
    return Response(orjson.dumps({"messages": messages, "complete": complete}), media_type="application/json")


@router.post(FORWARD_PATH.replace("{id}", "{session_id}"))
async def forwarded(request: Request, node: NodeDep, session_id: str) -> Response:
    """204 when the session took the messages; 404 when this node no longer holds it."""
    value = await _signed_body(request, node, session_id)
    messages = value.get("messages")
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise Problem(422, "Not a session hand-over.")
    if not node.sessions.receive_forwarded(session_id, messages):
        raise Problem(404, "No such session here.")
    return Response(status_code=204)
