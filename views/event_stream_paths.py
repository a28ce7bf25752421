"""The live-update routes below FastAPI, so that an open stream holds as little memory as it can.

A node may hold ten thousand open event streams for hours. Under FastAPI
each one would keep the route's whole call chain alive (its exception
handlers, exit stacks, request and dependencies: about 12 KiB). So a
plainly valid `GET /v1/orders/{id}/events` or `GET /v1/events` is opened
here and written by the same `EventStreamWriter` as the FastAPI routes
(views/order_events.py), which keep anything doubtful, their 422s and the
OpenAPI document, as views/long_poll.py does for long-polls.
"""

from __future__ import annotations

import re
import time
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

from stategate.app.event_ids import MAX_EVENT_ID_LENGTH
from stategate.app.http_answers import NODE_HEADER
from stategate.app.node import Node
from stategate.app.order_streams import Interest
from stategate.app.orders import ORDER_ID_PATTERN

from .input_limits import MAX_NAME_LENGTH, MAX_ORDER_ID_LENGTH, NAME_PATTERN
from .order_events import ORDER_IDS_PATTERN, accepts_event_stream, open_events, open_order_stream
from .problems import Problem, raw_problem
from .wait_params import DEFAULT_WAIT_SECONDS, MAX_WAIT_SECONDS, SECONDS

ORDERS_PREFIX = "/v1/orders/"
EVENTS_SUFFIX = "/events"
EVENTS_PATH = "/v1/events"
_ORDER_ID = re.compile(ORDER_ID_PATTERN)
_ORDER_IDS = re.compile(ORDER_IDS_PATTERN)
_NAME = re.compile(NAME_PATTERN)


class EventStreamPaths:
    """ASGI app: opens plainly valid event streams; passes every other request to `app`.

    It stands first in the stack, so an open stream holds no middleware
    frame: it adds the node header and counts the request itself, as
    views/long_poll.py does.
    """

    def __init__(self, app: ASGIApp, node: Node, order_route: Any, events_route: Any) -> None:
        self.app = app
        self.node = node
        self.order_route = order_route
        self.events_route = events_route
        """FastAPI's routes for the same streams: the request metrics name them."""
        self.node_header = (NODE_HEADER.encode(), node.settings.node_id.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        asked = _read(scope) if scope["type"] == "http" and scope["method"] == "GET" else None
        if asked is None:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        interest, timeout, last_event_id = asked
        single = interest.customer_id is None and timeout is not None
        route = self.order_route if single else self.events_route
        status = 200
        try:
            if single:
                assert timeout is not None
                writer = await open_order_stream(self.node, interest, last_event_id, timeout, receive)
            else:
                writer = await open_events(self.node, interest, last_event_id)
        except Problem as problem:
            status, headers, body = raw_problem(problem)
            headers += [(b"content-length", str(len(body)).encode()), self.node_header]
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
        else:
            await writer(scope, receive, send, [self.node_header])
        finally:
            self.node.metrics.observe_request("GET", route.path, status, time.perf_counter() - started)


def _read(scope: Scope) -> tuple[Interest, float | None, str | None] | None:
    """What the stream watches, the wait for an unknown order (one-order streams) and the client's last
    event id; None when FastAPI should judge the request."""
    path: str = scope["path"]
    headers = scope["headers"]
    accept = last_event_id = None
    for name, value in headers:
        if name == b"accept":
            accept = value.decode("latin-1")
        elif name == b"last-event-id":
            last_event_id = value.decode("latin-1")
        elif name in (b"content-length", b"transfer-encoding") and value != b"0":
            return None  # a GET with a body
    if not accepts_event_stream(accept) or (last_event_id is not None and len(last_event_id) > MAX_EVENT_ID_LENGTH):
        return None
    query = parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)
    if path.startswith(ORDERS_PREFIX) and path.endswith(EVENTS_SUFFIX):
        order_id = path[len(ORDERS_PREFIX) : -len(EVENTS_SUFFIX)]
        if len(order_id) > MAX_ORDER_ID_LENGTH or not _ORDER_ID.fullmatch(order_id):
            return None
        if not query:
            return Interest(orders=frozenset({order_id})), DEFAULT_WAIT_SECONDS, last_event_id
        if len(query) == 1 and query[0][0] == "timeout" and SECONDS.fullmatch(query[0][1]):
            timeout = float(query[0][1])
            if timeout <= MAX_WAIT_SECONDS:
                return Interest(orders=frozenset({order_id})), timeout, last_event_id
        return None
    if path != EVENTS_PATH or len(query) != 1:
        return None
    name, value = query[0]
    if name == "orders" and _ORDER_IDS.fullmatch(value):
        return Interest(orders=frozenset(value.split(","))), None, last_event_id
    if name == "customer_id" and 0 < len(value) <= MAX_NAME_LENGTH and _NAME.fullmatch(value):
        return Interest(customer_id=value), None, last_event_id
    return None
