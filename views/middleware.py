"""ASGI middleware: the node header, the body-size bound, HEAD, and request metrics.

Written as plain ASGI (not BaseHTTPMiddleware) so that the views can still
hear `http.disconnect` from the client while a request is parked.
"""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stategate.app.http_answers import NODE_HEADER
from stategate.app.metrics import Metrics

from .problems import Problem, raw_problem

HEAD = "stategate.head"
"""Set in the scope of a HEAD request passed on as a GET, for responses that would otherwise never end."""

SERVICE_CALLS = "/v1/services/"
"""Service calls pass every method, HEAD included, on to the service."""


class GatewayMiddleware:
    """Adds `X-Stategate-Node`, answers 413 past `max_body` bytes, HEAD as a GET without body; counts requests."""

    def __init__(self, app: ASGIApp, node_id: str, max_body: int, metrics: Metrics) -> None:
        self.app = app
        self.node_header = (NODE_HEADER.encode(), node_id.encode())
        self.max_body = max_body
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        method = scope["method"]
        if method == "HEAD" and not scope["path"].startswith(SERVICE_CALLS):
            # Every GET route answers HEAD: same status and headers, no body (a live stream ends at once).
            scope = {**scope, "method": "GET", HEAD: True}

        async def send_with_header(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), self.node_header]
            elif method == "HEAD" and message.get("body"):
                message = {**message, "body": b""}
            await send(message)

        body = await self._read_body(scope, receive)
        if body is None:
            await self._too_large(send_with_header)
        else:
            whole_body = {"type": "http.request", "body": body, "more_body": False}
            await self.app(scope, replay(whole_body, receive), send_with_header)
        route = scope.get("route")
        path = getattr(route, "path", "unmatched")
        self.metrics.observe_request(method, path, status, time.perf_counter() - started)

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes | None:
        """The whole request body, or None when it is larger than allowed."""
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            return None
        if length is None and b"transfer-encoding" not in headers:
            return b""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    async def _too_large(self, send: Send) -> None:
        status, headers, body = raw_problem(Problem(413, f"The request body is larger than {self.max_body} bytes."))
        headers += [(b"content-length", str(len(body)).encode()), (b"connection", b"close")]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def replay(first: Message, receive: Receive) -> Receive:
    """A receive that yields `first` (a message already read) once, then the client's next messages."""
    replayed = False

    async def replaying() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return first
        return await receive()

    return replaying
