"""Writing a live stream to its client as Server-Sent Events, in plain ASGI.

A stream can stay open for hours and a node may hold ten thousand, so what
each one holds is kept small: the request's own coroutine writes the
stream, the node's HTTP protocol tells the stream when the client leaves
(`on_lost`: no task listens), and one timer for all streams makes the
heartbeats (`OrderStreams.beat`). The writer sends each change the outbox
hands it (app/outbox.py), a comment line at each heartbeat when it has
nothing else, so that proxies keep the connection, and a last event when
the stream ends:

    complete   the watched orders reached a terminal state: the response ends
    stopping   the node is shutting down: `event: reconnect`, then the end
    slow       the client fell too far behind, or its connection took no byte
               for `slow_seconds`: the connection is cut (nothing more can be
               written to it); the client resumes with Last-Event-ID
    gone       the client left
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import orjson
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from stategate.app.http_protocol import TRANSPORT
from stategate.app.metrics import Metrics
from stategate.app.order_streams import OrderStream, OrderStreams
from stategate.app.outbox import Pending

from .middleware import HEAD

log = logging.getLogger("stategate.views")

SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),  # nginx: pass events on at once
]
KEEP_ALIVE = b": keep-alive\n\n"
Headers = list[tuple[bytes, bytes]] | tuple[()]


def order_event(pending: Pending, retry_ms: int | None = None) -> bytes:
    """One `order` event: its id (when it has one) and the order's JSON on one data line.

    An erased order's event is `erased` instead, naming only the order:
    `{"order": ID, "reason": "order erased"}`.
    """
    order = pending.order
    lines = [b"event: order" if order is not None else b"event: erased"]
    if pending.event_id is not None:
        lines.append(b"id: " + pending.event_id.encode())
    if retry_ms is not None:
        lines.append(b"retry: " + str(retry_ms).encode())
    if order is not None:
        lines.append(b"data: " + order.to_json())
    else:
        lines.append(b"data: " + orjson.dumps({"order": pending.change.order_id, "reason": "order erased"}))
    return b"\n".join(lines) + b"\n\n"


def reconnect_event(reason: str, retry_ms: int) -> bytes:
    """The last event of a stream whose node stops: reconnect (to any node) with Last-Event-ID."""
    data = orjson.dumps({"reason": reason})
    return b"event: reconnect\nretry: " + str(retry_ms).encode() + b"\ndata: " + data + b"\n\n"


class EventStreamWriter:
    """Writes one open `OrderStream` as an SSE response; closes the stream however the response ends."""

    __slots__ = ("metrics", "retry_ms", "slow_seconds", "stream", "streams", "transport")

    def __init__(
        self, stream: OrderStream, streams: OrderStreams, metrics: Metrics, slow_seconds: float, retry_ms: int
    ) -> None:
        self.stream = stream
        self.streams = streams
        self.metrics = metrics
        self.slow_seconds = slow_seconds
        self.retry_ms = retry_ms
        self.transport: Any = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send, headers: Headers = ()) -> None:
        stream = self.stream
        transport: Any = scope.get(TRANSPORT)
        self.transport = transport
        protocol: Any = transport.get_protocol() if transport is not None else None
        hears_loss = hasattr(protocol, "on_lost")
        if hears_loss:
            protocol.on_lost = stream.lost  # the node's HTTP protocol says when the client leaves
        if transport is not None:
            stream.on_slow = transport.abort
        gauge = self.metrics.live_streams.labels("sse")
        gauge.inc()
        try:
            await send({"type": "http.response.start", "status": 200, "headers": [*SSE_HEADERS, *headers]})
            if scope.get(HEAD):
                await send({"type": "http.response.body", "body": b""})
            elif hears_loss:
                await self.write(send)
            else:
                await self._write_while_listening(receive, send)
        finally:
            if hears_loss and protocol.on_lost is not None:
                protocol.on_lost = None  # the connection may serve another request
            gauge.dec()
            self.metrics.live_conflated.inc(stream.outbox.conflated)
            if stream.ended == "slow":
                self.metrics.live_dropped.labels("sse").inc()
                log.info("dropped a slow live client", extra={"orders": len(stream.interest.orders)})
            self.streams.close(stream)

    async def write(self, send: Send) -> None:
        """Send changes, and keep-alives when a heartbeat finds nothing else to send, until the stream ends."""
        stream = self.stream
        first = True
        sent = self.metrics.live_events.labels("sse")
        while stream.ended != "gone":
            pending = stream.take()
            if pending is None:
                if stream.ended is not None:
                    break
                if not stream.beat_due:
                    await stream.ready.wait()
                    continue
                stream.beat_due = False
                if not await self._send(send, KEEP_ALIVE):
                    return
                continue
            stream.beat_due = False  # an event keeps the connection alive as well as a comment
            if not await self._send(send, order_event(pending, self.retry_ms if first else None)):
                return
            first = False
            sent.inc()
            stream.sent(pending)
        if stream.ended == "stopping":
            await self._send(send, reconnect_event("node stopping", self.retry_ms))
        if stream.ended not in ("slow", "gone"):
            await self._send(send, b"", more=False)

    async def _write_while_listening(self, receive: Receive, send: Send) -> None:
        """Under another server: a task writes while this coroutine listens for the client to leave."""
        writer = asyncio.get_running_loop().create_task(self.write(send))
        try:
            while not writer.done():
                message = await _either(receive(), writer)
                if message is not None and message["type"] == "http.disconnect":
                    break
        finally:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer

    async def _send(self, send: Send, chunk: bytes, more: bool = True) -> bool:
        """Write one chunk; False (and the stream ended as slow) when the client stops taking bytes.

        Slow means no progress: the connection's write buffer has not shrunk
        for `slow_seconds`. A timer alone would also fire when this node's
        event loop was busy (the bytes had no chance to go), and drop
        clients that did nothing wrong.
        """
        message = {"type": "http.response.body", "body": chunk, "more_body": more}
        transport = self.transport
        if transport is None or not transport.get_write_buffer_size():
            if transport is not None:
                await send(message)  # nothing waits in the buffer: this write does not block
                return True
            try:
                await asyncio.wait_for(send(message), self.slow_seconds)
            except TimeoutError:
                self.stream.end("slow")
                return False
            return True
        sending = asyncio.ensure_future(send(message))
        buffered = transport.get_write_buffer_size()
        while True:
            done, _ = await asyncio.wait({sending}, timeout=self.slow_seconds)
            if done:
                sending.result()
                return True
            now = transport.get_write_buffer_size()
            if now >= buffered:
                sending.cancel()
                self.stream.end("slow")
                return False
            buffered = now


class EventStreamResponse(Response):
    """An `EventStreamWriter` as a Starlette response, for the FastAPI routes (views/order_events.py)."""

    def __init__(self, writer: EventStreamWriter) -> None:
        super().__init__(status_code=200)
        self.writer = writer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.writer(scope, receive, send)


async def _either(receiving: Any, writer: asyncio.Task[None]) -> Any:
    """The client's next message, or None when the writer finished first."""
    listener = asyncio.ensure_future(receiving)
    done, _ = await asyncio.wait({listener, writer}, return_when=asyncio.FIRST_COMPLETED)
    if listener in done:
        return listener.result()
    listener.cancel()
    return None
