"""uvicorn's httptools protocol with lighter objects for each connection.

A node holds up to `max_waiters` parked long-polls, each on its own
connection, so what uvicorn keeps per connection is most of what a parked
request costs. Three of those objects are empty `collections.deque`s of
760 bytes each: the pipeline of queued requests, and the waiter queues of
two `asyncio.Event`s (the response's flow control and the request body's
arrival). They almost never hold anything; lists of 56 bytes do the same
job.

Past uvicorn's `limit_concurrency`, requests get this gateway's 503
(problem+json with Retry-After) instead of uvicorn's plain-text one. A
request line over `MAX_URL_BYTES` gets 414, headers over `MAX_HEADER_BYTES`
431, and anything httptools cannot parse 400: problem+json with the node
header, instead of uvicorn's plain-text 400 (and before such a request
costs more memory). Everything else is uvicorn's own code, unchanged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.http.flow_control import service_unavailable
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .http_answers import NODE_HEADER, PROBLEM_JSON, problem_document, title_of
from .lean_event import LeanEvent

OVERLOADED = problem_document(503, detail="Too many open requests.")
TRANSPORT = "stategate.transport"
"""The scope key of the connection's transport: a live stream cuts a client that stopped reading with it
(asyncio's `close` would wait for the unread bytes to be sent first)."""
MAX_URL_BYTES = 8 * 1024
MAX_HEADER_BYTES = 16 * 1024


class RequestRefused(Exception):
    """Raised from a parser callback to stop reading a request this node will not take."""


class Pipeline(list[Any]):
    """The queue of pipelined requests, as a list with the deque methods uvicorn calls."""

    def appendleft(self, item: Any) -> None:
        self.insert(0, item)

    def popleft(self) -> Any:
        return self.pop(0)


class LeanHttpToolsProtocol(HttpToolsProtocol):
    """`HttpToolsProtocol` with `LeanEvent`s and a list pipeline instead of deques."""

    # Slots, not instance attributes: uvicorn's protocol is near CPython's 30-key limit for dicts
    # that share their keys, and two more keys made every parked connection 1.3 KiB bigger.
    __slots__ = ("header_bytes", "on_lost", "refusal")

    retry_after_seconds = 1
    node_id = b""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pipeline = Pipeline()  # type: ignore[assignment]
        self.header_bytes = 0
        self.refusal: tuple[int, str] | None = None
        self.on_lost: Callable[[], None] | None = None
        """Called once when the client's connection is lost: a live stream ends without a task listening."""

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.header_bytes = 0
        self.scope[TRANSPORT] = self.transport  # type: ignore[literal-required]

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > MAX_URL_BYTES:
            self.refusal = (414, f"The request target is longer than {MAX_URL_BYTES} bytes.")
            raise RequestRefused()

    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_bytes += len(name) + len(value)
        if self.header_bytes > MAX_HEADER_BYTES:
            self.refusal = (431, f"The request's headers are larger than {MAX_HEADER_BYTES} bytes.")
            raise RequestRefused()
        super().on_header(name, value)

    def send_400_response(self, msg: str) -> None:
        """Answer a request httptools could not read, or one refused above, with problem+json; then close."""
        status, detail = self.refusal or (400, "The request is not valid HTTP/1.1.")
        body = problem_document(status, detail=detail)
        head = [
            f"HTTP/1.1 {status} {title_of(status)}".encode(),
            b"content-type: " + PROBLEM_JSON.encode(),
            b"content-length: " + str(len(body)).encode(),
            NODE_HEADER.encode() + b": " + self.node_id,
            b"connection: close",
        ]
        self.transport.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
        self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        on_lost, self.on_lost = self.on_lost, None
        if on_lost is not None:
            on_lost()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        writable = LeanEvent()
        writable.set()
        self.flow._is_writable_event = writable

    def on_headers_complete(self) -> None:
        previous = self.cycle
        super().on_headers_complete()
        if self.cycle is not previous:
            # A new request's cycle: its task is created but has not run yet
            # and no body has arrived, so nothing waits on or has set its event.
            self.cycle.message_event = LeanEvent()

    def _start_asgi_task(self, cycle: Any, app: Any) -> None:
        super()._start_asgi_task(cycle, self._overloaded if app is service_unavailable else app)

    async def _overloaded(self, scope: Any, receive: Any, send: Any) -> None:
        headers = [
            (b"content-type", PROBLEM_JSON.encode()),
            (b"content-length", str(len(OVERLOADED)).encode()),
            (b"retry-after", str(self.retry_after_seconds).encode()),
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": OVERLOADED})


def node_http_protocol(retry_after_seconds: int, node_id: str = "") -> type[LeanHttpToolsProtocol]:
    """The protocol class a node gives uvicorn: overload answered with this Retry-After, answers named by node."""

    class NodeHttpProtocol(LeanHttpToolsProtocol):
        pass

    NodeHttpProtocol.retry_after_seconds = retry_after_seconds
    NodeHttpProtocol.node_id = node_id.encode()
    return NodeHttpProtocol
