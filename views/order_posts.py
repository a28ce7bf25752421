"""`POST /v1/orders` below FastAPI: the gateway's hot path.

Every order passes here, and in a py-spy profile under load FastAPI's
middleware stack, routing and dependency solving took a third of the node's
CPU per order. So a POST whose query, headers and body are plainly valid is
read here, with the same limits (views/wait_params.py) and the same body
model (`OrderIn`), and answered by the same function as the FastAPI route
(`views.orders.place_and_answer`): the answers cannot drift apart. Anything
doubtful goes on to FastAPI, which answers it as before (a 422 with its
usual detail), and the OpenAPI document stays FastAPI's.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qsl

import orjson
from pydantic import ValidationError
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stategate.app.node import Node

from .input_limits import MAX_IDEMPOTENCY_KEY_LENGTH
from .middleware import replay
from .orders import OrderIn, place_and_answer
from .problems import Problem, problem_response
from .wait_params import read_wait_query

log = logging.getLogger("stategate.views")

PATH = "/v1/orders"


class OrderPosts:
    """ASGI app: places plainly valid orders itself; passes every other request to `app`."""

    def __init__(self, app: ASGIApp, node: Node, route: Any) -> None:
        self.app = app
        self.node = node
        self.route = route
        """FastAPI's route for the same POST: the request metrics name it, as for any route."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != PATH:
            await self.app(scope, receive, send)
            return
        message = await receive()  # the whole body: GatewayMiddleware has read it
        receive = replay(message, receive)
        query = dict(parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True))
        wait = read_wait_query(query)
        plain, key = _idempotency_key(scope)
        body = _order_in(message)
        if wait is None or not plain or body is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = self.route
        request = Request(scope, receive)
        try:
            response = await place_and_answer(request, self.node, body, key, wait.states, wait.timeout)
        except Problem as problem:
            response = problem_response(problem)
        await response(scope, receive, send)


def _idempotency_key(scope: Scope) -> tuple[bool, str | None]:
    """Whether the Idempotency-Key header is plainly valid (or absent), and its value."""
    values = [value for name, value in scope["headers"] if name == b"idempotency-key"]
    if not values:
        return True, None
    if len(values) > 1 or not 0 < len(values[0]) <= MAX_IDEMPOTENCY_KEY_LENGTH or not values[0].isascii():
        return False, None
    key: str = values[0].decode("ascii")
    return True, key


def _order_in(message: Message) -> OrderIn | None:
    """The body as an `OrderIn`, read exactly as views/bodies.py reads it; None on any doubt."""
    if message["type"] != "http.request" or message.get("more_body", False):
        return None
    try:
        return OrderIn.model_validate(orjson.loads(message.get("body", b"")))
    except (orjson.JSONDecodeError, ValidationError):
        return None
