"""The parked half of `GET /v1/orders/{id}`, in plain ASGI.

A long-poll holds memory for as long as it waits, and one node may hold ten
thousand of them. So when a GET on an order this node owns has to wait, it
waits here, below FastAPI: the request's own coroutine listens for the
client to leave, a `ParkedPoll` in the waiter registry stands for the wait
(its deadline included), and a task is made only to send the answer. Everything else (reads answered at
once, redirects, bad parameters, a full waiter registry, proxy mode) goes
on to the FastAPI app in views/orders.py. A wait that ends here is answered
exactly as views/orders.py answers it: 200, 202 + Retry-After, 304, 404,
307 to the order's new owner, or 503 + Retry-After.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

from stategate.app.errors import ShuttingDown, TooManyWaiters
from stategate.app.http_answers import NODE_HEADER, retry_after
from stategate.app.node import Node
from stategate.app.orders import ORDER_ID_PATTERN, Condition, Order, differs_from, reaches
from stategate.app.waiters import Ending, Outcome, Waiter

from .input_limits import MAX_IF_NONE_MATCH_LENGTH, MAX_ORDER_ID_LENGTH, MAX_PREFER_LENGTH
from .problems import Problem, raw_headers, raw_problem, unavailable, unknown_after_wait
from .proxy import FORWARDED_BY, path_and_query
from .wait_params import MAX_WAIT_SECONDS, entity_tags, prefer_wait, read_wait_query

log = logging.getLogger("stategate.views")

ORDERS_PREFIX = "/v1/orders/"
ORDER_ID = re.compile(ORDER_ID_PATTERN)
ROUTE = "/v1/orders/{order_id}"
Headers = list[tuple[bytes, bytes]]


@dataclass(frozen=True, slots=True)
class LongPoll:
    """A GET on one order that asks to wait: for states (`wait_for`) or for a change (`Prefer: wait`)."""

    order_id: str
    condition: Condition
    timeout: float
    preference_applied: str | None
    """`wait=N` for an If-None-Match + Prefer long-poll (answered 200/304); None for `wait_for` (200/202)."""


def parse_long_poll(scope: Scope) -> LongPoll | None:
    """The long-poll this request asks for; None when it is not one or not plainly valid.

    Anything doubtful returns None, so that FastAPI validates it and answers
    with its usual 422.
    """
    if scope["method"] != "GET" or not scope["path"].startswith(ORDERS_PREFIX):
        return None
    order_id: str = scope["path"][len(ORDERS_PREFIX) :]
    if len(order_id) > MAX_ORDER_ID_LENGTH or not ORDER_ID.fullmatch(order_id):
        return None
    headers = dict(scope["headers"])
    if headers.get(b"content-length", b"0") != b"0" or b"transfer-encoding" in headers:
        return None  # a GET with a body: let FastAPI deal with it
    query = dict(parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True))
    if "wait_for" in query:
        wait = read_wait_query(query)
        if wait is None or wait.states is None:
            return None
        return LongPoll(order_id, reaches(wait.states), wait.timeout, None)
    if_none_match, prefer = headers.get(b"if-none-match"), headers.get(b"prefer")
    if if_none_match is None or prefer is None:
        return None
    if len(if_none_match) > MAX_IF_NONE_MATCH_LENGTH or len(prefer) > MAX_PREFER_LENGTH:
        return None
    etags = entity_tags(if_none_match.decode("latin-1"))
    preferred = prefer_wait(prefer.decode("latin-1"), MAX_WAIT_SECONDS)
    if not etags or "*" in etags or preferred is None:
        return None
    return LongPoll(order_id, differs_from(etags), preferred, f"wait={preferred:g}")


class LongPolls:
    """ASGI app: parks long-polls on orders this node owns; passes every other request to `app`."""

    def __init__(self, app: ASGIApp, node: Node) -> None:
        self.app = app
        self.node = node
        self.node_header = (NODE_HEADER.encode(), node.settings.node_id.encode())
        self._answering: set[asyncio.Task[None]] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        poll = parse_long_poll(scope) if scope["type"] == "http" else None
        if poll is None or not self._parks_here(poll, scope):
            await self.app(scope, receive, send)
            return
        parked = ParkedPoll(self, poll, scope, send)
        try:
            self.node.waiters.park(parked, poll.timeout)
        except (TooManyWaiters, ShuttingDown):
            await self.app(scope, receive, send)  # views/orders.py answers 503
            return
        # The answer comes from a task; this coroutine only hears the client
        # leave, or the end of the response (both read as http.disconnect).
        while (await receive())["type"] != "http.disconnect":
            pass
        self.node.waiters.remove(parked)

    def _parks_here(self, poll: LongPoll, scope: Scope) -> bool:
        """This node owns the order, its current version does not answer the poll yet, and it may wait."""
        if self.node.settings.routing == "proxy" and not _was_forwarded(scope):
            return False  # views/orders.py forwards the request if the order moves meanwhile
        if poll.timeout <= 0 or not self.node.ownership.owner(poll.order_id).is_self:
            return False
        current = self.node.orders.lookup(poll.order_id)
        return current is None or not poll.condition(current)

    def answer_soon(self, parked: ParkedPoll, outcome: Outcome) -> None:
        """Send the answer to a parked poll from a task of its own."""
        task = asyncio.get_running_loop().create_task(parked.answer(outcome))
        self._answering.add(task)
        task.add_done_callback(self._answering.discard)


class ParkedPoll(Waiter):
    """One long-poll parked in the waiter registry; told once how the wait ended, it answers."""

    __slots__ = ("polls", "preference_applied", "scope", "send", "started")

    def __init__(self, polls: LongPolls, poll: LongPoll, scope: Scope, send: Send) -> None:
        super().__init__(poll.order_id, poll.condition)
        self.polls = polls
        self.preference_applied = poll.preference_applied
        self.scope = scope
        self.send = send
        self.started = time.perf_counter()

    def notify(self, outcome: Outcome) -> None:
        """The order met the condition, moved, the time ran out, or the node is stopping."""
        self.polls.answer_soon(self, outcome)

    async def answer(self, outcome: Outcome) -> None:
        """Send the HTTP answer for how the wait ended."""
        node = self.polls.node
        try:
            status, headers, body = await self._reply(outcome)
        except Exception:
            log.exception("cannot answer a parked request", extra={"order_id": self.order_id})
            status, headers, body = raw_problem(Problem(500))
        headers.append(self.polls.node_header)
        if status != 304:
            headers.append((b"content-length", str(len(body)).encode()))
        await self.send({"type": "http.response.start", "status": status, "headers": headers})
        await self.send({"type": "http.response.body", "body": body})
        node.metrics.observe_request("GET", ROUTE, status, time.perf_counter() - self.started)

    async def _reply(self, outcome: Outcome) -> tuple[int, Headers, bytes]:
        node = self.polls.node
        applied = [] if self.preference_applied is None else [(b"preference-applied", self.preference_applied.encode())]
        if outcome is Ending.MOVED:
            target = None if _was_forwarded(self.scope) else node.ownership.new_home(self.order_id)
            if target is None:
                return raw_problem(unavailable("The order's partition is moving between nodes.", _retry_after(node)))
            return 307, [(b"location", (target + path_and_query(self.scope)).encode("latin-1"))], b""
        if isinstance(outcome, Order):
            return 200, [*_order_headers(outcome), *applied], outcome.to_json()
        current = node.orders.lookup(self.order_id)  # timed out, or the node is stopping
        if current is None:
            return raw_problem(await unknown_after_wait(node, self.order_id))
        if applied:
            return 304, [(b"etag", current.etag.encode()), *applied], b""
        return 202, [*_order_headers(current), *raw_headers(retry_after(_retry_after(node)))], current.to_json()


def _order_headers(order: Order) -> Headers:
    return [(b"content-type", b"application/json"), (b"etag", order.etag.encode())]


def _retry_after(node: Node) -> int:
    return node.settings.retry_after_seconds


def _was_forwarded(scope: Scope) -> bool:
    return any(name == FORWARDED_BY.encode() for name, _ in scope["headers"])
