"""The HTTP application of one gateway node.

uvicorn ─► CORSMiddleware (only with STATEGATE_CORS_ORIGINS)
        ─► SocketPaths (the WebSocket at /v1/ws, views/websocket.py)
        ─► EventStreamPaths (opens plainly valid event streams, views/event_stream_paths.py)
        ─► LongPolls (parks long-polls, views/long_poll.py)
        ─► GatewayMiddleware (node header, body limit, metrics)
        ─► OrderPosts (places plainly valid orders, views/order_posts.py)
        ─► ServiceRequests (plainly valid service calls, views/service_requests.py)
        ─► FastAPI (every route: views/orders.py, service_calls.py, inventory, cluster, ..., page: GET /)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.middleware.cors import CORSMiddleware

from . import (
    cluster,
    handover,
    inventory,
    operations,
    order_events,
    orders,
    page,
    service_calls,
    session_handover,
    snapshots,
)
from .event_stream_paths import EventStreamPaths
from .long_poll import LongPolls
from .middleware import GatewayMiddleware
from .openapi import install_document, operation_id
from .order_posts import OrderPosts
from .problems import install_problem_handlers
from .service_requests import ServiceRequests
from .websocket import SocketPaths

EXPOSED_HEADERS = ("location", "etag", "retry-after", "preference-applied", "x-stategate-node")
"""Response headers a browser script on an allowed origin may read."""

if TYPE_CHECKING:
    from stategate.app.node import Node


def create_api(node: Node) -> Any:
    """The node's HTTP API, wrapped in the gateway middleware."""
    api = create_routes()
    api.state.node = node
    post_route = next(r for r in orders.router.routes if isinstance(r, APIRoute) and "POST" in (r.methods or ()))
    call_route = next(
        r for r in service_calls.router.routes if isinstance(r, APIRoute) and r.path.endswith("{path:path}")
    )
    calls = ServiceRequests(api, node, call_route)
    posts = OrderPosts(calls, node, post_route)
    order_stream_route, events_route = (
        next(r for r in order_events.router.routes if isinstance(r, APIRoute) and r.path == path)
        for path in ("/v1/orders/{order_id}/events", "/v1/events")
    )
    gateway = GatewayMiddleware(posts, node.settings.node_id, node.settings.max_body_bytes, node.metrics)
    app: Any = EventStreamPaths(LongPolls(gateway, node), node, order_stream_route, events_route)
    app = SocketPaths(app, node)
    origins = [origin.strip() for origin in node.settings.cors_origins.split(",") if origin.strip()]
    if origins:
        app = CORSMiddleware(
            app,
            allow_origins=origins,
            allow_methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["content-type", "idempotency-key", "if-none-match", "prefer"],
            expose_headers=[*EXPOSED_HEADERS],
            max_age=600,
        )
    return app


def create_routes() -> FastAPI:
    """The FastAPI app of every route, its error handlers and its OpenAPI document; `create_api` adds the node."""
    api = FastAPI(
        title="stategate",
        version="0.1.0",
        summary="HTTP request/response over Kafka: place an order and wait for its state.",
        generate_unique_id_function=operation_id,
    )
    api.router.redirect_slashes = False  # its Location would come from the Host header
    install_problem_handlers(api)
    install_document(api)
    api.include_router(order_events.router)
    api.include_router(orders.router)
    api.include_router(inventory.router)
    api.include_router(service_calls.router)
    api.include_router(handover.router)
    api.include_router(snapshots.router)
    api.include_router(session_handover.router)
    api.include_router(cluster.router)
    api.include_router(operations.router)
    api.include_router(page.router)  # GET /: the live page, outside the OpenAPI document
    return api
