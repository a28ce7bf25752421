"""Sending a request for an order to the node that owns it."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from app.node import Node

from .problems import unavailable


def redirect_to_owner(request: Request, node: Node, order_id: str) -> Response | None:
    """307 to the owner's advertised URL, same path and query; None when this node owns the order.

    While no node owns the key (a rebalance), 503 + Retry-After. The target
    is a live member's advertised URL from Faust's table metadata, and the
    path and query are this request's own: no header goes into it.
    """
    owner = node.routing.owner(order_id)
    if owner.is_self:
        return None
    if owner.url is None:
        raise unavailable("The order's partition is moving between nodes.", node.settings.retry_after_seconds)
    return RedirectResponse(owner.url + path_and_query(request), status_code=307)


def new_home(node: Node, order_id: str) -> str | None:
    """Where a request parked here goes once the order has moved: its new owner, else another live node."""
    owner = node.routing.owner(order_id, during_rebalance=True)
    if owner.url is not None and not owner.is_self:
        return owner.url
    return node.routing.another_member()


def redirect_after_move(request: Request, node: Node, order_id: str) -> Response:
    """307 for a parked GET whose order moved to another node; 503 + Retry-After when there is none."""
    target = new_home(node, order_id)
    if target is None:
        raise unavailable("The order's partition is moving between nodes.", node.settings.retry_after_seconds)
    return RedirectResponse(target + path_and_query(request), status_code=307)


def path_and_query(request: Request) -> str:
    """This request's path and query string, from the ASGI scope."""
    path: str = request.scope["path"]
    query = request.scope.get("query_string", b"").decode("latin-1")
    return path + (f"?{query}" if query else "")
