"""`/v1/orders`: place an order, read it, and wait for it to change.

Each handler turns HTTP into a call on `app.orders.OrderService` and the
outcome back into a status code, as the README's API table lists them.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote, urlencode

import orjson
from fastapi import APIRouter, Header, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse, RedirectResponse, Response

from stategate.app.customer_orders import orders_of_customer
from stategate.app.erasure import Erasure
from stategate.app.errors import (
    KafkaUnavailable,
    NoAnswer,
    NodeStopping,
    OrderErased,
    OrderMoved,
    ShuttingDown,
    TooManyCalls,
    TooManyWaiters,
    TwoOrderIds,
)
from stategate.app.http_answers import retry_after
from stategate.app.node import Node
from stategate.app.orders import ORDER_ID_PATTERN, Condition, NewOrder, Order, Where, differs_from, reaches

from .bodies import WholeNumber, body_schema, json_body
from .dependencies import NodeDep
from .disconnect import client_disconnect
from .input_limits import (
    MAX_IDEMPOTENCY_KEY_LENGTH,
    MAX_IF_NONE_MATCH_LENGTH,
    MAX_NAME_LENGTH,
    MAX_ORDER_ID_LENGTH,
    MAX_PREFER_LENGTH,
    NAME_PATTERN,
)
from .openapi import (
    ETAG,
    MALFORMED,
    RETRY_AFTER,
    UNAVAILABLE,
    CustomerOrders,
    ErasurePending,
    answer,
    empty_answer,
    header,
    order_answer,
    problem_answer,
    wait_for_parameter,
)
from .problems import Problem, invalid, no_such_order, unavailable, unknown_after_wait
from .proxy import forward, proxying
from .redirects import after_move, to_owner
from .wait_params import (
    DEFAULT_WAIT_SECONDS,
    MAX_WAIT_FOR_LENGTH,
    MAX_WAIT_SECONDS,
    entity_tags,
    prefer_wait,
    wanted_states,
)

router = APIRouter(prefix="/v1/orders", tags=["orders"])

MAX_LISTED_ORDERS = 100


class OrderIn(BaseModel):
    """The body of `POST /v1/orders`."""

    model_config = ConfigDict(extra="forbid")

    customer_id: str = Field(min_length=1, max_length=MAX_NAME_LENGTH, pattern=NAME_PATTERN, strict=True)
    product: str = Field(min_length=1, max_length=MAX_NAME_LENGTH, pattern=NAME_PATTERN, strict=True)
    quantity: WholeNumber = Field(ge=1, le=1_000_000, strict=True)
    price: float = Field(gt=0, le=1_000_000_000, allow_inf_nan=False, strict=True)
    id: str | None = Field(default=None, pattern=ORDER_ID_PATTERN, strict=True)


# Read as the raw comma-separated text (views/wait_params.py `wanted_states`); documented as an array of
# states (`wait_for_parameter`), which FastAPI cannot read from one comma-separated query value.
WaitFor = Annotated[str | None, Query(max_length=MAX_WAIT_FOR_LENGTH, include_in_schema=False)]
Timeout = Annotated[float, Query(ge=0, le=MAX_WAIT_SECONDS, description="Seconds to wait, at most 60.")]
PREFERENCE_APPLIED = header("`wait=N`: the wait of `Prefer: wait=N` that was applied.", required=False)


def order_response(order: Order, status: int, headers: dict[str, str] | None = None) -> Response:
    """The order as JSON, with its ETag."""
    return Response(
        order.to_json(),
        status_code=status,
        media_type="application/json",
        headers={"ETag": order.etag, **(headers or {})},
    )


def waiting_query(request: Request) -> str:
    """The wait parameters of this request, as a query string to pass on."""
    kept = [(k, v) for k, v in request.query_params.multi_items() if k in ("wait_for", "timeout")]
    return "?" + urlencode(kept) if kept else ""


def order_path(order_id: str) -> str:
    """The order's URL path on this node."""
    return f"/v1/orders/{quote(order_id, safe='')}"


@router.post(
    "",
    status_code=202,
    response_class=Response,
    summary="Place an order, optionally waiting for a state",
    openapi_extra={**body_schema(OrderIn), "parameters": [wait_for_parameter()]},
    responses={
        201: order_answer(
            "The order reached a wanted state, or a terminal state that rules them out.",
            {"Location": header("The order's URL.")},
        ),
        202: order_answer(
            "Written: without wait_for, or the wait timed out or could not be parked; the order as it stands.",
            {
                "Location": header("The order's URL (on the owner, when another node owns it)."),
                "Retry-After": {**RETRY_AFTER, "required": False},
            },
        ),
        303: empty_answer(
            "Written; another node owns the order: wait there.",
            {"Location": header("The order's GET URL on its owner, wait_for and timeout kept.")},
        ),
        410: problem_answer("The id (in the body, or the Idempotency-Key's) names an erased order: never again."),
        422: MALFORMED,
        503: UNAVAILABLE,
    },
)
async def place_order(
    request: Request,
    node: NodeDep,
    wait_for: WaitFor = None,
    timeout: Timeout = DEFAULT_WAIT_SECONDS,
    idempotency_key: Annotated[
        str | None,
        Header(
            min_length=1,
            max_length=MAX_IDEMPOTENCY_KEY_LENGTH,
            description="Names the order: a retry with the same key answers with the first order, never a second"
            " one. Not together with an `id` in the body (422: one key, one order).",
        ),
    ] = None,
) -> Response:
    """Write the order to Kafka, then (with `wait_for`) park until it reaches a wanted state."""
    states = wanted_states(wait_for)
    body = await json_body(request, OrderIn)
    return await place_and_answer(request, node, body, idempotency_key, states, timeout)


async def place_and_answer(
    request: Request,
    node: Node,
    body: OrderIn,
    idempotency_key: str | None,
    states: frozenset[str] | None,
    wait: float,
) -> Response:
    """Everything `POST /v1/orders` does once its parameters are read; shared with views/order_posts.py."""
    orders = node.orders
    new = NewOrder(body.customer_id, body.product, body.quantity, body.price, body.id)
    try:
        if proxying(node) and (owner_url := orders.owner_elsewhere(new, idempotency_key)) is not None:
            return await forward(request, node, owner_url, wait)  # the owner writes it and waits
        placement = await orders.place_order(new, idempotency_key)
    except TwoOrderIds as exc:
        raise invalid([{"loc": ["header", "idempotency-key"], "msg": str(exc), "type": "conflict"}]) from None
    except OrderErased as exc:
        raise Problem(410, str(exc)) from None
    except KafkaUnavailable as exc:
        node.metrics.commands_failed.inc()
        raise unavailable(str(exc), node.settings.retry_after_seconds) from None
    order = placement.order
    if placement.where is Where.OWNER and placement.owner_url is not None:
        # The owner's table shows the order: send the client there to wait.
        if states is None:
            return order_response(order, 202, {"Location": placement.owner_url + order_path(order.id)})
        return await _wait_elsewhere(request, node, placement.owner_url, order.id, wait)
    location = {"Location": order_path(order.id)}
    if states is None or placement.where is Where.NOBODY:
        retry = {} if states is None else retry_after(node.settings.retry_after_seconds)
        return order_response(order, 202, {**location, **retry})
    try:
        async with client_disconnect(request) as gone:
            current, reached = await orders.wait_until(order.id, reaches(states), wait, gone)
    except (TooManyWaiters, ShuttingDown):
        current, reached = None, False  # the order is written: answer 202 and let the client poll
    except OrderMoved:
        target = node.ownership.new_home(order.id)
        if target is not None:
            return await _wait_elsewhere(request, node, target, order.id, wait)
        current, reached = None, False
    if reached and current is not None:
        return order_response(current, 201, location)
    retry = retry_after(node.settings.retry_after_seconds)
    return order_response(current or order, 202, {**location, **retry})


async def _wait_elsewhere(request: Request, node: Node, target: str, order_id: str, wait: float) -> Response:
    """303 to the order's GET URL on `target`, wait parameters kept; in proxy mode, that GET's answer."""
    path = order_path(order_id) + waiting_query(request)
    if not proxying(node):
        return RedirectResponse(target + path, status_code=303)
    answer = await forward(request, node, target, wait, path=path)
    if answer.status_code in (200, 202):
        answer.headers["Location"] = order_path(order_id)  # the POST's answers carry the order's URL
    if answer.status_code == 200:
        answer.status_code = 201  # reached, as the POST would have answered
    return answer


@router.get(
    "/{order_id}",
    response_class=Response,
    summary="Read an order, or long-poll it",
    openapi_extra={"parameters": [wait_for_parameter()]},
    responses={
        200: order_answer(
            "The order: at once, or once it reached a wanted (or terminal) state, or once it changed.",
            {"Preference-Applied": PREFERENCE_APPLIED},
        ),
        202: order_answer("The wait for wait_for timed out: the order as it stands.", {"Retry-After": RETRY_AFTER}),
        304: empty_answer(
            "If-None-Match still matches (after Prefer: wait=N, when asked).",
            {"ETag": ETAG, "Preference-Applied": PREFERENCE_APPLIED},
        ),
        307: empty_answer(
            "Another node owns the order.", {"Location": header("The owner's URL, with the same path and query.")}
        ),
        404: problem_answer(
            "No such order (after the wait, for a long-poll: an order may appear meanwhile; and only once this node"
            " has read the order's partition to Kafka's end, else 503)."
        ),
        422: MALFORMED,
        503: UNAVAILABLE,
    },
)
async def get_order(
    request: Request,
    node: NodeDep,
    order_id: Annotated[str, Path(min_length=1, max_length=MAX_ORDER_ID_LENGTH, pattern=ORDER_ID_PATTERN)],
    wait_for: WaitFor = None,
    timeout: Timeout = DEFAULT_WAIT_SECONDS,
    if_none_match: Annotated[
        str | None,
        Header(
            max_length=MAX_IF_NONE_MATCH_LENGTH,
            description='Entity tags (`"2"`): 304 while the order\'s ETag is one of them.',
        ),
    ] = None,
    prefer: Annotated[
        str | None,
        Header(
            max_length=MAX_PREFER_LENGTH,
            description="`wait=N`: with If-None-Match, wait up to N seconds (at most 60) for the order to change.",
        ),
    ] = None,
) -> Response:
    """The order; with `wait_for`, or `If-None-Match` and `Prefer: wait=N`, a long-poll."""
    states = wanted_states(wait_for)
    etags = entity_tags(if_none_match)
    wait_preference = prefer_wait(prefer, MAX_WAIT_SECONDS)
    budget = timeout if states else (wait_preference or 0.0)
    elsewhere = await to_owner(request, node, order_id, budget)
    if elsewhere is not None:
        return elsewhere
    try:
        return await _read_or_wait(request, node, order_id, states, timeout, etags, wait_preference)
    except OrderMoved:
        return await after_move(request, node, order_id, budget)


async def _read_or_wait(
    request: Request,
    node: Node,
    order_id: str,
    states: frozenset[str] | None,
    timeout: float,
    etags: frozenset[str],
    wait_preference: float | None,
) -> Response:
    orders = node.orders
    settings = node.settings
    if states is not None:
        current, reached = await _wait(request, node, order_id, reaches(states), timeout)
        if current is None:
            raise await unknown_after_wait(node, order_id)
        if reached:
            return order_response(current, 200)
        return order_response(current, 202, retry_after(settings.retry_after_seconds))

    current = orders.lookup(order_id)
    if etags and (current is None or current.etag in etags or "*" in etags):
        if wait_preference is not None and "*" not in etags:
            changed, reached = await _wait(request, node, order_id, differs_from(etags), wait_preference)
            applied = {"Preference-Applied": f"wait={wait_preference:g}"}
            if reached and changed is not None:
                return order_response(changed, 200, applied)
            current = changed
            if current is None:
                raise await unknown_after_wait(node, order_id)
            return Response(status_code=304, headers={"ETag": current.etag, **applied})
        elif current is not None:
            return Response(status_code=304, headers={"ETag": current.etag})
    if current is None:
        raise no_such_order(order_id, node.view.is_erased(order_id))
    return order_response(current, 200)


async def _wait(
    request: Request, node: Node, order_id: str, condition: Condition, timeout: float
) -> tuple[Order | None, bool]:
    try:
        async with client_disconnect(request) as gone:
            result: tuple[Order | None, bool] = await node.orders.wait_until(order_id, condition, timeout, gone)
            return result
    except TooManyWaiters:
        raise unavailable("Too many parked requests on this node.", node.settings.retry_after_seconds) from None
    except ShuttingDown:
        raise unavailable("This node is shutting down.", node.settings.retry_after_seconds) from None


@router.delete(
    "/{order_id}",
    status_code=202,
    response_class=Response,
    summary="Erase an order",
    responses={
        202: answer(
            "Erased from every node's answers (GET: 404); its records in Kafka are being erased.", ErasurePending
        ),
        204: empty_answer("Erased, and nothing of it is left in Kafka (erasing again changes nothing).", {}),
        307: empty_answer(
            "Another node owns the order.", {"Location": header("The owner's URL, with the same path and query.")}
        ),
        404: problem_answer("No such order."),
        422: MALFORMED,
        503: UNAVAILABLE,
    },
)
async def erase_order(
    request: Request,
    node: NodeDep,
    order_id: Annotated[str, Path(min_length=1, max_length=MAX_ORDER_ID_LENGTH, pattern=ORDER_ID_PATTERN)],
) -> Response:
    """Erase the order: its state on every node, and every record about it in Kafka (README, Erasure)."""
    elsewhere = await to_owner(request, node, order_id, node.settings.produce_timeout_seconds)
    if elsewhere is not None:
        return elsewhere
    try:
        outcome = await node.erasure.erase(order_id)
    except KafkaUnavailable as exc:
        node.metrics.commands_failed.inc()
        raise unavailable(str(exc), node.settings.retry_after_seconds) from None
    if outcome is Erasure.UNKNOWN:
        raise no_such_order(order_id)
    if outcome is Erasure.COMPLETE:
        return Response(status_code=204)
    body = {"erasure": "pending", "within_seconds": node.erasure.bound_seconds()}
    return JSONResponse(body, status_code=202)


@router.get(
    "",
    summary="List a customer's orders, newest first",
    response_class=JSONResponse,
    responses={
        200: answer("The customer's newest orders and how many order ids the index holds.", CustomerOrders),
        422: MALFORMED,
        503: UNAVAILABLE,
        504: problem_answer("The customer index did not answer in time."),
    },
)
async def list_customer_orders(
    node: NodeDep,
    customer_id: Annotated[str, Query(min_length=1, max_length=MAX_NAME_LENGTH, pattern=NAME_PATTERN)],
    limit: Annotated[int, Query(ge=1, le=MAX_LISTED_ORDERS, description="At most this many orders.")] = 20,
) -> Response:
    """The customer's orders, each as its owning node holds it; an order still on its way is left out."""
    try:
        listed = await orders_of_customer(node.service_calls, node.orders, customer_id, limit, DEFAULT_WAIT_SECONDS)
    except NoAnswer:
        raise Problem(504, "The customer index did not answer in time.") from None
    except (KafkaUnavailable, TooManyCalls, NodeStopping):
        raise unavailable("The customer index cannot be asked right now.", node.settings.retry_after_seconds) from None
    body = {"customer_id": listed.customer_id, "known": listed.known, "orders": [o.as_dict() for o in listed.orders]}
    return Response(orjson.dumps(body), media_type="application/json")
