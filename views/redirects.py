"""Sending a request for an order to the node that owns it: a redirect, or (proxy mode) a forward."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from stategate.app.node import Node

from .problems import unavailable
from .proxy import forward, path_and_query, proxying


async def to_owner(request: Request, node: Node, order_id: str, budget: float) -> Response | None:
    """307 to the owner's advertised URL (same path and query), or the owner's answer in proxy mode.

    None when this node owns the order. While no node owns the key (a
    rebalance), 503 + Retry-After. The target is a live member's advertised
    URL from Faust's table metadata; no request header goes into it.
    """
    owner = node.ownership.owner(order_id)
    if owner.is_self:
        return None
    if owner.url is None:
        raise unavailable("The order's partition is moving between nodes.", node.settings.retry_after_seconds)
    return await _send(request, node, owner.url, budget)


async def after_move(request: Request, node: Node, order_id: str, budget: float) -> Response:
    """For a parked request whose order moved: 307 (or forward) to its new home; 503 when there is none."""
    target = node.ownership.new_home(order_id)
    if target is None:
        raise unavailable("The order's partition is moving between nodes.", node.settings.retry_after_seconds)
    return await _send(request, node, target, budget)


async def _send(request: Request, node: Node, target: str, budget: float) -> Response:
    if proxying(node):
        return await forward(request, node, target, budget)
    return RedirectResponse(target + path_and_query(request.scope), status_code=307)
