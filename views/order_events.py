"""`GET /v1/orders/{id}/events` and `GET /v1/events`: live order changes as Server-Sent Events, on any node.

Each route reads what the client watches and where it left off
(`Last-Event-ID`), opens an `OrderStream` (app/order_streams.py) and hands
it to `EventStreamWriter` (views/event_streams.py) to write. Errors come
before the stream starts, as problem+json: 404 for an order that is unknown
and stays unknown for `timeout` seconds, 503 + Retry-After while no node
can be asked for an order, the node holds all the streams it may, or it is
stopping (also for a client still waiting for its order to appear).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Request
from starlette.responses import Response
from starlette.types import Receive

from stategate.app.errors import (
    KafkaUnavailable,
    NoAnswer,
    NodeStopping,
    NoOwner,
    ShuttingDown,
    TooManyCalls,
    TooManyStreams,
)
from stategate.app.event_ids import MAX_EVENT_ID_LENGTH
from stategate.app.node import Node
from stategate.app.order_streams import Interest, OrderStream
from stategate.app.orders import ORDER_ID_PATTERN

from .dependencies import NodeDep
from .disconnect import receive_disconnect
from .event_streams import EventStreamResponse, EventStreamWriter
from .input_limits import MAX_NAME_LENGTH, MAX_ORDER_ID_LENGTH, NAME_PATTERN
from .openapi import MALFORMED, RETRY_AFTER, UNAVAILABLE, problem_answer
from .problems import Problem, invalid, no_such_order, unavailable
from .wait_params import DEFAULT_WAIT_SECONDS, MAX_WAIT_SECONDS

router = APIRouter(tags=["live updates"])

MAX_STREAM_ORDERS = 100
EVENT_STREAM = "text/event-stream"
_ORDER_ID = re.compile(ORDER_ID_PATTERN)
_ONE_ID = ORDER_ID_PATTERN.removeprefix("^").removesuffix("$")
ORDER_IDS_PATTERN = f"^{_ONE_ID}(,{_ONE_ID}){{0,{MAX_STREAM_ORDERS - 1}}}$"
"""1 to 100 order ids, comma-separated, no spaces."""

EVENTS = {
    "description": "Server-Sent Events: `event: order`, `id: <opaque>`, `data: <order JSON>`; the first is the order"
    ' as it stands (a snapshot), then one per new version; `event: erased`, `data: {"order": ID, "reason":'
    ' "order erased"}` in place of an erased order\'s versions; `: keep-alive` comments while idle;'
    " `event: reconnect` when the node stops. Resume on any node with `Last-Event-ID`.",
    "content": {EVENT_STREAM: {"schema": {"type": "string"}}},
}
NOT_ACCEPTABLE = problem_answer("The client does not accept `text/event-stream`.")
LastEventId = Annotated[
    str | None,
    Header(
        alias="Last-Event-ID",
        max_length=MAX_EVENT_ID_LENGTH,
        description="The id of the last event received: the stream resumes after it (an unknown id: fresh snapshots).",
    ),
]


@router.get(
    "/v1/orders/{order_id}/events",
    response_class=Response,
    summary="Watch one order: Server-Sent Events until it reaches a terminal state",
    responses={
        200: EVENTS,
        404: problem_answer("No such order, and none appeared within `timeout` seconds."),
        406: NOT_ACCEPTABLE,
        422: MALFORMED,
        503: UNAVAILABLE,
    },
)
async def order_events(
    request: Request,
    node: NodeDep,
    order_id: Annotated[str, Path(max_length=MAX_ORDER_ID_LENGTH, pattern=ORDER_ID_PATTERN)],
    last_event_id: LastEventId = None,
    timeout: Annotated[
        float, Query(ge=0, le=MAX_WAIT_SECONDS, description="Seconds to wait for an unknown order to appear.")
    ] = DEFAULT_WAIT_SECONDS,
) -> Response:
    """Stream the order's changes, first the order as it stands; the stream ends after VALIDATED or FAILED."""
    _check_accept(request)
    interest = Interest(orders=frozenset({order_id}))
    return EventStreamResponse(await open_order_stream(node, interest, last_event_id, timeout, request.receive))


@router.get(
    "/v1/events",
    response_class=Response,
    summary="Watch several orders, or every order of a customer, on one stream",
    responses={
        200: EVENTS,
        406: NOT_ACCEPTABLE,
        422: MALFORMED,
        503: UNAVAILABLE,
        504: problem_answer(
            "The customer index did not answer in time.", {"Retry-After": {**RETRY_AFTER, "required": False}}
        ),
    },
)
async def events(
    request: Request,
    node: NodeDep,
    orders: Annotated[
        str | None,
        Query(
            max_length=MAX_STREAM_ORDERS * (MAX_ORDER_ID_LENGTH + 1),
            pattern=ORDER_IDS_PATTERN,
            description=f"Comma-separated order ids, at most {MAX_STREAM_ORDERS}; the stream ends once each reached a"
            " terminal state.",
        ),
    ] = None,
    customer_id: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=MAX_NAME_LENGTH,
            pattern=NAME_PATTERN,
            description="Every order of this customer: its newest 100 as they stand, then every change, new orders"
            " included; the stream stays open.",
        ),
    ] = None,
    last_event_id: LastEventId = None,
) -> Response:
    """One stream of order changes for several orders (`orders`) or a customer (`customer_id`): exactly one of them."""
    _check_accept(request)
    if (orders is None) == (customer_id is None):
        raise invalid([{"loc": ["query"], "msg": "give either orders or customer_id", "type": "missing"}])
    if orders is not None:
        interest = Interest(orders=_order_ids(orders))
    else:
        interest = Interest(customer_id=customer_id)
    return EventStreamResponse(await open_events(node, interest, last_event_id))


def _order_ids(text: str) -> frozenset[str]:
    ids = text.split(",")
    bad = [i for i in ids if len(i) > MAX_ORDER_ID_LENGTH or not _ORDER_ID.fullmatch(i)]
    if not ids or bad or len(ids) > MAX_STREAM_ORDERS:
        msg = f"1 to {MAX_STREAM_ORDERS} order ids, comma-separated, each matching {ORDER_ID_PATTERN}"
        raise invalid([{"loc": ["query", "orders"], "msg": msg, "type": "value_error"}])
    return frozenset(ids)


def _check_accept(request: Request) -> None:
    if not accepts_event_stream(request.headers.get("accept")):
        raise Problem(406, "This resource is a stream of Server-Sent Events: accept text/event-stream.")


async def open_order_stream(
    node: Node, interest: Interest, last_event_id: str | None, timeout: float, receive: Receive
) -> EventStreamWriter:
    """The stream of one order, its response ready to write; raises Problem (404 when it never appears).

    `receive` tells when the client leaves while it waits for the order to appear.
    """
    stream = await _open(node, interest, last_event_id, timeout)
    if not stream.resumed and not len(stream.outbox) and not await _appears(stream, timeout, receive):
        node.streams.close(stream)
        if stream.ended == "stopping":
            raise unavailable("This node is stopping; try another node.", node.settings.retry_after_seconds)
        (order_id,) = interest.orders
        raise no_such_order(order_id)
    return _respond(node, stream)


async def open_events(node: Node, interest: Interest, last_event_id: str | None) -> EventStreamWriter:
    """The stream of several orders or a customer's, its response ready to write; raises Problem."""
    stream = await _open(node, interest, last_event_id, node.settings.produce_timeout_seconds)
    return _respond(node, stream)


def accepts_event_stream(accept: str | None) -> bool:
    """Whether an `Accept` header (None: absent) allows `text/event-stream`."""
    if accept is None:
        return True
    kinds = {part.split(";")[0].strip().lower() for part in accept.split(",")}
    return bool(kinds & {EVENT_STREAM, "text/*", "*/*"})


async def _open(node: Node, interest: Interest, last_event_id: str | None, timeout: float) -> OrderStream:
    retry = node.settings.retry_after_seconds
    try:
        return await node.streams.open(interest, last_event_id, timeout)
    except (TooManyStreams, ShuttingDown):
        raise unavailable("This node holds all the live streams it may; try another node.", retry) from None
    except NoOwner as exc:
        raise unavailable(f"The order cannot be read right now: {exc}.", retry) from None
    except NoAnswer:
        raise Problem(504, "The customer index did not answer in time.") from None
    except (KafkaUnavailable, TooManyCalls, NodeStopping):
        raise unavailable("The customer index cannot be asked right now.", retry) from None


async def _appears(stream: OrderStream, timeout: float, receive: Receive) -> bool:
    """Wait until an unknown order's first version is queued; False after `timeout` seconds or when the stream
    ends (the node stops, or the client leaves: its stream must not hold a place until the timeout).

    `ready` also wakes for the node's heartbeats, which mean nothing before
    the response starts: they must not end the wait.
    """

    def end_if_left(gone: asyncio.Future[None]) -> None:
        if not gone.cancelled():
            stream.lost()

    async with receive_disconnect(receive) as gone:
        gone.add_done_callback(end_if_left)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while not len(stream.outbox) and stream.ended is None:
                    stream.ready.clear()
                    await stream.ready.wait()
    return bool(len(stream.outbox))


def _respond(node: Node, stream: OrderStream) -> EventStreamWriter:
    settings = node.settings
    return EventStreamWriter(
        stream,
        node.streams,
        node.metrics,
        slow_seconds=settings.slow_client_seconds,
        retry_ms=int(settings.retry_after_seconds * 1000),
    )
