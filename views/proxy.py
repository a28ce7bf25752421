"""Proxy mode (`STATEGATE_ROUTING=proxy`): forward a request to the owning node instead of redirecting.

For clients that cannot follow redirects. The answer says which node it came
from in `X-Stategate-Forwarded-To`. The method, headers and body go
through unchanged (Faust's own table_route drops the body), with the wait
the client asked for plus a margin as the time budget. A request that was
already forwarded once is never forwarded again: ownership is moving, so
the answer is 503 + Retry-After, not a loop.
"""

from __future__ import annotations

import httpx
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope

from stategate.app.http_answers import HOP_BY_HOP, NODE_HEADER
from stategate.app.node import Node

from .problems import unavailable

FORWARDED_BY = "x-stategate-forwarded-by"
NOT_FORWARDED = HOP_BY_HOP | {NODE_HEADER}
MARGIN_SECONDS = 5.0


def path_and_query(scope: Scope) -> str:
    """A request's path and query string, from its ASGI scope."""
    path: str = scope["path"]
    query = scope.get("query_string", b"").decode("latin-1")
    return path + (f"?{query}" if query else "")


def proxying(node: Node) -> bool:
    """True when this node forwards requests to owners instead of redirecting."""
    return node.settings.routing == "proxy"


async def forward(request: Request, node: Node, target: str, budget: float, path: str | None = None) -> Response:
    """Send this request to `target` (a live node's URL) and answer with its response."""
    if FORWARDED_BY in request.headers:
        raise unavailable("The order's owner is changing.", node.settings.retry_after_seconds)
    headers = {k: v for k, v in request.headers.items() if k.lower() not in NOT_FORWARDED}
    headers[FORWARDED_BY] = node.settings.node_id
    method = request.method if path is None else "GET"
    body = await request.body() if path is None else b""
    try:
        upstream = await node.peers.client.request(
            method,
            target + (path or path_and_query(request.scope)),
            headers=headers,
            content=body,
            timeout=budget + MARGIN_SECONDS,
        )
    except httpx.HTTPError:
        raise unavailable("The order's owner did not answer.", node.settings.retry_after_seconds) from None
    kept = [(k, v) for k, v in upstream.headers.multi_items() if k.lower() not in NOT_FORWARDED]
    response = Response(upstream.content, status_code=upstream.status_code)
    response.raw_headers = [
        *[(k.encode("latin-1"), v.encode("latin-1")) for k, v in kept],
        (b"content-length", str(len(upstream.content)).encode()),
        (b"x-stategate-forwarded-to", target.encode("latin-1")),
    ]
    return response
