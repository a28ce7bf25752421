"""`/v1/services/{service}/{path}` below FastAPI: the service calls' hot path.

Like views/order_posts.py for orders: a call whose service name, path and
wait parameters are plainly valid skips FastAPI's middleware stack, routing
and dependency solving, and is answered by the same function as the FastAPI
route (`views.service_calls.call_and_answer`). Anything doubtful (and every
method the route does not take) goes on to FastAPI, which answers as before.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from stategate.app.node import Node

from .input_limits import MAX_PREFER_LENGTH, MAX_SERVICE_LENGTH, MAX_SERVICE_PATH_LENGTH
from .problems import Problem, problem_response
from .service_calls import METHODS, call_and_answer
from .wait_params import DEFAULT_WAIT_SECONDS, MAX_WAIT_SECONDS, SECONDS, prefer_wait

PREFIX = "/v1/services/"


class ServiceRequests:
    """ASGI app: calls services for plainly valid requests; passes every other request to `app`."""

    def __init__(self, app: ASGIApp, node: Node, route: Any) -> None:
        self.app = app
        self.node = node
        self.route = route
        """FastAPI's route for the same call: the request metrics name it, as for any route."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        call = _read_call(scope) if scope["type"] == "http" else None
        if call is None:
            await self.app(scope, receive, send)
            return
        service, path, wait = call
        scope["route"] = self.route
        try:
            response = await call_and_answer(Request(scope, receive), self.node, service, path, wait)
        except Problem as problem:
            response = problem_response(problem)
        await response(scope, receive, send)


def _read_call(scope: Scope) -> tuple[str, str, float] | None:
    """The service, its path and the seconds to wait; None when FastAPI should judge the request."""
    if scope["method"] not in METHODS or not scope["path"].startswith(PREFIX):
        return None
    service, _, path = scope["path"][len(PREFIX) :].partition("/")
    if not 0 < len(service) <= MAX_SERVICE_LENGTH or len(path) > MAX_SERVICE_PATH_LENGTH:
        return None
    prefers = [value for name, value in scope["headers"] if name == b"prefer"]
    if len(prefers) > 1 or (prefers and len(prefers[0]) > MAX_PREFER_LENGTH):
        return None  # FastAPI answers 422 for an over-long Prefer, with or without a timeout
    timeouts = [value for name, value in parse_qsl(scope["query_string"].decode("latin-1")) if name == "timeout"]
    if timeouts:
        if len(timeouts) > 1 or not SECONDS.fullmatch(timeouts[0]) or not 0 < float(timeouts[0]) <= MAX_WAIT_SECONDS:
            return None  # FastAPI answers 422
        return service, path, float(timeouts[0])
    preferred = prefer_wait(prefers[0].decode("latin-1"), MAX_WAIT_SECONDS) if prefers else None
    return service, path, preferred or DEFAULT_WAIT_SECONDS
