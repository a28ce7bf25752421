"""`GET /v1/ws`: one WebSocket to watch orders, place them and call services, on any node.

Client → node (JSON text messages):
    {"op": "subscribe", "orders": ["ID", …]}            every change of those orders
    {"op": "unsubscribe", "orders": ["ID", …]}
    {"op": "place", "ref": "R", "order": {…}, "wait_for": "VALIDATED"}
    {"op": "call", "ref": "R", "service": "echo", "method": "POST", "path": "/x", "headers": {…}, "body": "…"}
Node → client:
    {"type": "hello", "node", "session", "resumed"}     first, on every connection
    {"type": "order", "order": {…}, "node"}             a change of a subscribed or placed order
    {"type": "order", "ref": "R", "order": {…}, "seq"}  a placed order, as written
    {"type": "reply", "ref": "R", "status", "headers", "body", "more", "seq"}
    {"type": "error", "ref": "R", "problem": {…}, "seq"}
    {"type": "erased", "order": "ID"}                   a watched order was erased (its subscription ends)

Answers to a client's requests (`ref`) go through its session
(app/sessions.py): numbered, kept, and delivered after a reconnect to
this node or another (`/v1/ws?session=ID&seen=N`). Order changes come from
live streams (app/order_streams.py) that share one outbox per socket; a
subscription ends by itself once its order is terminal (or, for a placed
order, reached `wait_for`). A client too slow to take what it is sent is
closed with 1008; a stopping node closes every socket with 1012.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

import orjson
from pydantic import ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from stategate.app.errors import (
    KafkaUnavailable,
    NodeStopping,
    NoOwner,
    ShuttingDown,
    TooManyCalls,
    TooManyStreams,
    TwoOrderIds,
    UnknownService,
)
from stategate.app.handover import ReplyPart
from stategate.app.http_answers import problem_document
from stategate.app.lean_event import LeanEvent
from stategate.app.node import Node
from stategate.app.order_streams import Interest, OrderStream
from stategate.app.orders import ORDER_ID_PATTERN, ORDER_STATES, NewOrder
from stategate.app.outbox import Outbox
from stategate.app.sessions import MAX_SESSION_ID_LENGTH, Message, Session

from .input_limits import MAX_ORDER_ID_LENGTH, MAX_SERVICE_LENGTH, MAX_SERVICE_PATH_LENGTH
from .orders import OrderIn
from .problems import Problem, invalid, problem_response, unavailable
from .wait_params import DEFAULT_WAIT_SECONDS

log = logging.getLogger("stategate.views")

PATH = "/v1/ws"

MAX_SUBSCRIPTIONS = 100
MAX_CALLS = 100
MAX_REF_LENGTH = 100
MAX_WAITING_REPLIES = 1_000
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
GOING_AWAY = 1012  # service restart: reconnect elsewhere
POLICY = 1008
UNSUPPORTED_DATA = 1003
CLOSED = (1000, "closed")  # close_reason once the close frame is sent
_ORDER_ID = re.compile(ORDER_ID_PATTERN)
_SEEN = re.compile(r"\d{1,12}")


class BadMessage(Exception):
    """A client message this node cannot act on: answered with a 422 problem."""


class SocketPaths:
    """ASGI app: serves `/v1/ws`; passes every other request to `app`.

    It stands first in the stack, below FastAPI's routing, so that an open
    socket holds no frame but its own (FastAPI would keep its whole call
    chain alive for as long as the socket is open).
    """

    def __init__(self, app: ASGIApp, node: Node) -> None:
        self.app = app
        self.node = node

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # A plain callable, not a coroutine: every other request (ten thousand open event streams) goes on
        # without a frame of this layer under it.
        if scope["type"] != "websocket" or scope["path"] != PATH:
            return self.app(scope, receive, send)
        return live_socket(scope, receive, send, self.node)


async def live_socket(scope: Scope, receive: Receive, send: Send, node: Node) -> None:
    """Accept the socket, or refuse the handshake: 403 for a foreign origin, 503 + Retry-After when full,
    422 for a malformed `session` or `seen`."""
    websocket = WebSocket(scope, receive, send)
    query = dict(parse_qsl(websocket.scope["query_string"].decode("latin-1")))
    session, seen_text = query.get("session"), query.get("seen", "0")
    if (session is not None and not 0 < len(session) <= MAX_SESSION_ID_LENGTH) or not _SEEN.fullmatch(seen_text):
        await _refuse(websocket, Problem(422, "session is an id from a hello; seen a whole number."))
        return
    seen = int(seen_text)
    if not _origin_allowed(websocket, node.settings.cors_origins):
        await _refuse(websocket, Problem(403, "This origin may not open a socket here (STATEGATE_CORS_ORIGINS)."))
        return
    if node.draining or len(node.sockets) >= node.settings.max_sockets:
        detail = "This node holds all the sockets it may, or is stopping; try another node."
        await _refuse(websocket, unavailable(detail, node.settings.retry_after_seconds))
        return
    await websocket.accept()
    del websocket, scope  # an open socket keeps no copy of its handshake (nor does app/ws_protocol.py)
    await LiveSocket(receive, send, node).serve(session, seen)


class LiveSocket:
    """One open WebSocket: its subscriptions, its session, and a writer task while it has something to write.

    Most sockets sit idle for minutes, so the writer is not a task that
    waits: setting `ready` (a change in the outbox, a reply, a stop) starts
    one, and it ends once everything is written.
    """

    __slots__ = (
        "close_reason",
        "closed",
        "node",
        "outbox",
        "placed",
        "ready",
        "receive",
        "replies",
        "send",
        "session",
        "subscriptions",
        "writer",
    )

    def __init__(self, receive: Receive, send: Send, node: Node) -> None:
        self.receive = receive
        self.send = send
        self.node = node
        self.ready: asyncio.Event = Doorbell(self._start_writer)
        self.writer: asyncio.Task[None] | None = None
        self.outbox = Outbox(node.settings.stream_backlog)
        self.replies: collections.deque[Message] | None = None  # made when a reply waits: most sockets idle
        self.subscriptions: dict[str, OrderStream] = {}
        self.placed: dict[str, tuple[str, frozenset[str]]] = {}  # order id -> ref, states that end the watch
        self.close_reason: tuple[int, str] | None = None
        self.closed = False
        self.session: Session | None = None

    async def serve(self, session_id: str | None, seen: int) -> None:
        """Hello, the messages a resumed session is owed, then requests until the socket closes."""
        node = self.node
        node.sockets.add(self)
        node.metrics.live_streams.labels("ws").inc()
        sessions = node.sessions
        if session_id:
            session, owed, resumed = await sessions.resume(session_id, seen)
        else:
            session, owed, resumed = sessions.new(), [], False
        self.session = session
        self._push_reply({"type": "hello", "node": node.settings.node_id, "session": session.id, "resumed": resumed})
        for message in owed:
            self._push_reply(message)
        sessions.attach(session, self._push_reply)
        try:
            await self._read()
        finally:
            self.closed = True  # a placement still running subscribes no more
            writer, self.writer = self.writer, None
            if writer is not None:
                writer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await writer
            sessions.detach(session, self._push_reply)
            for stream in self.subscriptions.values():
                node.streams.close(stream)
            node.metrics.live_conflated.inc(self.outbox.conflated)
            node.metrics.live_streams.labels("ws").dec()
            node.sockets.discard(self)
            if self.close_reason is not None:
                await self._close()

    def stop(self, code: int, reason: str) -> None:
        """Close the socket soon (the node stops, or the client is too slow)."""
        if self.close_reason is None:
            self.close_reason = (code, reason)
            if code == POLICY:
                self.node.metrics.live_dropped.labels("ws").inc()
            self.ready.set()

    def _too_slow(self) -> None:
        self.stop(POLICY, "too slow")

    # -- reading ----------------------------------------------------------------------------------------

    async def _read(self) -> None:
        while self.close_reason is None:
            received = await self.receive()
            if received["type"] != "websocket.receive":
                return  # the client left, or the socket was closed
            text = received.get("text")
            if text is None:
                self.stop(UNSUPPORTED_DATA, "messages are JSON text")
                return
            try:
                message = orjson.loads(text)
            except orjson.JSONDecodeError:
                message = None
            if not isinstance(message, dict):
                self._error(None, 422, "A message is a JSON object.")
                continue
            try:
                await self._handle(message)
            except BadMessage as exc:
                self._error(_text_or_none(message.get("ref")), 422, str(exc))

    async def _handle(self, message: dict[str, Any]) -> None:
        op = message.get("op")
        if op == "subscribe":
            await self._subscribe(_order_ids(message.get("orders")), _text_or_none(message.get("ref")))
        elif op == "unsubscribe":
            for order_id in _order_ids(message.get("orders")):
                self._unsubscribe(order_id)
        elif op == "place":
            self._spawn(self._place(_ref(message), message, _states(message.get("wait_for"))))
        elif op == "call":
            self._spawn(self._call(_ref(message), message))
        else:
            raise BadMessage("op is one of subscribe, unsubscribe, place, call")

    def _spawn(self, work: Any) -> None:
        assert self.session is not None
        if len(self.session.tasks) >= MAX_CALLS:
            work.close()
            raise BadMessage(f"at most {MAX_CALLS} places and calls at once")
        task = asyncio.get_running_loop().create_task(work)
        self.session.tasks.add(task)
        task.add_done_callback(self.session.tasks.discard)

    # -- orders -----------------------------------------------------------------------------------------

    async def _subscribe(self, order_ids: list[str], ref: str | None) -> None:
        new = [order_id for order_id in dict.fromkeys(order_ids) if order_id not in self.subscriptions]
        if len(self.subscriptions) + len(new) > MAX_SUBSCRIPTIONS:
            raise BadMessage(f"at most {MAX_SUBSCRIPTIONS} orders per socket")
        for order_id in new:
            try:
                stream = await self.node.streams.open(
                    Interest(orders=frozenset({order_id})), None, DEFAULT_WAIT_SECONDS, self.outbox, self.ready
                )
            except (TooManyStreams, ShuttingDown, NoOwner) as exc:
                self._error(ref, 503, f"cannot watch order {order_id!r} right now: {exc or 'try again'}")
                continue
            if self.closed:
                self.node.streams.close(stream)
                return
            stream.on_slow = self._too_slow
            self.subscriptions[order_id] = stream

    def _unsubscribe(self, order_id: str) -> None:
        stream = self.subscriptions.pop(order_id, None)
        if stream is not None:
            self.node.streams.close(stream)
        self.placed.pop(order_id, None)

    async def _place(self, ref: str, message: dict[str, Any], wanted: frozenset[str]) -> None:
        try:
            body = OrderIn.model_validate(message.get("order"))
        except ValidationError as exc:
            self._error(ref, 422, "the order is malformed", errors=invalid(list(exc.errors())).extra["errors"])
            return
        new = NewOrder(body.customer_id, body.product, body.quantity, body.price, body.id)
        try:
            placement = await self.node.orders.place_order(new, _text_or_none(message.get("idempotency_key")))
        except KafkaUnavailable as exc:
            self.node.metrics.commands_failed.inc()
            self._error(ref, 503, str(exc))
            return
        except TwoOrderIds as exc:
            self._error(ref, 422, str(exc))
            return
        order = placement.order
        self._emit({"type": "order", "ref": ref, "order": order.as_dict(), "node": self.node.settings.node_id})
        if order.state in wanted or order.is_terminal:
            return
        self.placed[order.id] = (ref, wanted)
        with contextlib.suppress(BadMessage):
            await self._subscribe([order.id], ref)

    # -- service calls ----------------------------------------------------------------------------------

    async def _call(self, ref: str, message: dict[str, Any]) -> None:
        service = message.get("service")
        method = str(message.get("method") or "GET").upper()
        path = message.get("path") or "/"
        headers = message.get("headers") or {}
        body = message.get("body") or ""
        problem = _call_problem(service, method, path, headers, body, self.node.settings.max_body_bytes)
        if problem is not None:
            self._error(ref, 422, problem)
            return
        assert isinstance(service, str) and isinstance(path, str) and isinstance(body, str)
        content_type = str(headers.get("content-type") or headers.get("Content-Type") or "application/json")
        timeout = float(message.get("timeout") or DEFAULT_WAIT_SECONDS)
        calls = self.node.service_calls
        try:
            call = await calls.send(service, method, path, content_type, body.encode())
        except UnknownService:
            self._error(ref, 404, f"No service {service!r}.")
            return
        except (TooManyCalls, NodeStopping, KafkaUnavailable) as exc:
            self._error(ref, 503, str(exc) or "The service cannot be called right now.")
            return
        try:
            while True:
                part = await call.next_part(min(max(timeout, 0.1), 60.0))
                if part is None:
                    self._error(ref, 504, "No reply within the timeout.")
                    return
                self._emit(_reply_message(ref, part))
                if part.ends:
                    return
        finally:
            calls.finish(call)

    # -- writing ----------------------------------------------------------------------------------------

    def _emit(self, message: Message) -> None:
        """A message answering a request: through the session, so that a reconnect finds it."""
        assert self.session is not None
        self.session.emit(message)

    def _error(self, ref: str | None, status: int, detail: str, **extra: Any) -> None:
        problem = orjson.loads(problem_document(status, detail=detail, **extra))
        message: Message = {"type": "error", "ref": ref, "problem": problem}
        if ref is None:
            self._push_reply(message)
        else:
            self._emit(message)

    def _push_reply(self, message: Message) -> None:
        if self.replies is None:
            self.replies = collections.deque()
        self.replies.append(message)
        if len(self.replies) > MAX_WAITING_REPLIES:
            self.stop(POLICY, "too slow")
        self.ready.set()

    def _start_writer(self) -> None:
        if self.writer is None and not self.closed:
            self.writer = asyncio.get_running_loop().create_task(self._write())

    async def _write(self) -> None:
        """Write what waits, then end (`ready` starts the next writer)."""
        try:
            await self._write_waiting()
        finally:
            self.writer = None
        if self.close_reason is not None:
            await self._close()

    async def _write_waiting(self) -> None:
        node_id = self.node.settings.node_id
        sent = self.node.metrics.live_events.labels("ws")
        while self.close_reason is None:
            if self.replies:
                await self._send(self.replies.popleft())
                if not self.replies:
                    self.replies = None
                continue
            pending = self.outbox.take()
            if pending is None:
                self.ready.clear()
                return
            order = pending.order
            if order is None:  # the order was erased: say so, and watch it no more
                await self._send({"type": "erased", "order": pending.change.order_id})
                self._unsubscribe(pending.change.order_id)
                continue
            message: Message = {"type": "order", "order": order.as_dict(), "node": node_id}
            placed = self.placed.get(order.id)
            if placed is not None:
                message["ref"] = placed[0]
            await self._send(message)
            sent.inc()
            if order.is_terminal or (placed is not None and order.state in placed[1]):
                self._unsubscribe(order.id)

    async def _send(self, message: Message) -> None:
        try:
            await asyncio.wait_for(
                self.send({"type": "websocket.send", "text": orjson.dumps(message).decode()}),
                self.node.settings.slow_client_seconds,
            )
        except TimeoutError:
            self.stop(POLICY, "too slow")
        except OSError:  # the client is gone: the reader sees its disconnect
            self.stop(GOING_AWAY, "gone")

    async def _close(self) -> None:
        """Send the close frame of `stop` (once: the writer or the end of `serve`, whichever comes first)."""
        if self.close_reason is None or self.close_reason is CLOSED:
            return
        code, reason = self.close_reason
        self.close_reason = CLOSED
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.send({"type": "websocket.close", "code": code, "reason": reason}), 1.0)


class Doorbell(LeanEvent):
    """An event that also rings: `set` calls `ring` (it starts a socket's writer)."""

    def __init__(self, ring: Callable[[], None]) -> None:
        super().__init__()
        self.ring = ring

    def set(self) -> None:
        super().set()
        self.ring()


async def _refuse(websocket: WebSocket, problem: Problem) -> None:
    """Answer the handshake with a problem document (servers without the denial extension: close 1008)."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(problem_response(problem))
    else:
        await websocket.close(POLICY, problem.detail)


def _reply_message(ref: str, part: ReplyPart) -> Message:
    body: Any = part.body.decode("utf-8", "replace")
    if part.content_type.split(";")[0].strip().endswith("json") and part.body:
        with contextlib.suppress(orjson.JSONDecodeError):
            body = orjson.loads(part.body)
    headers = {"content-type": part.content_type, **dict(part.headers)}
    return {"type": "reply", "ref": ref, "status": part.status, "headers": headers, "body": body, "more": not part.ends}


def _call_problem(service: Any, method: str, path: Any, headers: Any, body: Any, max_body: int) -> str | None:
    if not isinstance(service, str) or not 0 < len(service) <= MAX_SERVICE_LENGTH:
        return f"service is a name of 1 to {MAX_SERVICE_LENGTH} characters"
    if method not in METHODS:
        return f"method is one of {', '.join(sorted(METHODS))}"
    if not isinstance(path, str) or not path.startswith("/") or len(path) > MAX_SERVICE_PATH_LENGTH:
        return f"path starts with / and has at most {MAX_SERVICE_PATH_LENGTH} characters"
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()) or len(headers) > 20:
        return "headers is an object of at most 20 strings"
    if not isinstance(body, str) or len(body.encode()) > max_body:
        return f"body is a string of at most {max_body} bytes"
    return None


def _order_ids(value: Any) -> list[str]:
    if not isinstance(value, list) or not value or len(value) > MAX_SUBSCRIPTIONS:
        raise BadMessage(f"orders is a list of 1 to {MAX_SUBSCRIPTIONS} order ids")
    for order_id in value:
        if not isinstance(order_id, str) or len(order_id) > MAX_ORDER_ID_LENGTH or not _ORDER_ID.fullmatch(order_id):
            raise BadMessage(f"order ids match {ORDER_ID_PATTERN}")
    return list(value)


def _ref(message: dict[str, Any]) -> str:
    ref = message.get("ref")
    if not isinstance(ref, str) or not 0 < len(ref) <= MAX_REF_LENGTH:
        raise BadMessage(f"ref is a string of 1 to {MAX_REF_LENGTH} characters")
    return ref


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= MAX_REF_LENGTH else None


def _states(value: Any) -> frozenset[str]:
    if value is None:
        return frozenset()
    states = value.split(",") if isinstance(value, str) else value
    if not isinstance(states, list) or not all(isinstance(s, str) and s in ORDER_STATES for s in states):
        raise BadMessage(f"wait_for names states among {', '.join(ORDER_STATES)}")
    return frozenset(states)


def _origin_allowed(websocket: WebSocket, cors_origins: str) -> bool:
    """Browsers name the page's origin: only the node's own origin or one in STATEGATE_CORS_ORIGINS may connect."""
    origin = websocket.headers.get("origin")
    if origin is None:
        return True  # not a browser
    allowed = {o.strip().rstrip("/") for o in cors_origins.split(",") if o.strip()}
    host = websocket.headers.get("host", "")
    return origin.rstrip("/") in allowed or origin.split("://", 1)[-1].rstrip("/") == host
