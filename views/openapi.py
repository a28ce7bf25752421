"""The OpenAPI document: body shapes, headers and responses, declared once for every route.

The routes name their answers with `answer`, `problem_answer` and
`empty_answer`, which point at the shapes below by `$ref`; `install_document`
puts those shapes into `components.schemas` and adds what the layers below
FastAPI answer for every operation (views/middleware.py): the node header on
every response and 413 for a body over the limit. The plain-ASGI paths
(views/order_posts.py, long_poll.py, service_requests.py) answer exactly as
their FastAPI routes do, so the routes' documents describe them too.
"""

from __future__ import annotations

import copy
from typing import Annotated, Any, Literal, NotRequired, get_args

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import Field, TypeAdapter
from typing_extensions import TypedDict  # pydantic reads typing.TypedDict only from Python 3.12 on

from stategate.app.http_answers import PROBLEM_JSON

JSON = "application/json"
COMPONENTS = "#/components/schemas/"

OrderState = Literal["CREATED", "VALIDATED", "FAILED"]
"""The states of an order (`stategate.streams.records.ORDER_STATES`; tests/test_openapi.py keeps them equal)."""


class Order(TypedDict):
    """An order as the gateway answers with it (`Order.as_dict` in streams/records.py)."""

    id: str
    customer_id: str
    product: str
    quantity: int
    price: float
    state: OrderState
    version: Annotated[int, Field(description="Grows by one with every change; the ETag is this number in quotes.")]
    validations: Annotated[
        dict[str, str],
        Field(description="Check (ORDER_DETAILS_CHECK, INVENTORY_CHECK, FRAUD_CHECK) to PASS or FAIL, for those done."),
    ]
    created_at: str
    updated_at: str


class FieldError(TypedDict):
    """One thing wrong with a request: where (`loc`), what (`msg`) and its kind (`type`)."""

    loc: list[str | int]
    msg: str
    type: str


class Problem(TypedDict):
    """An error as RFC 9457 problem details (`application/problem+json`)."""

    type: str
    title: str
    status: int
    detail: NotRequired[str]
    errors: NotRequired[Annotated[list[FieldError], Field(description="What is wrong with a malformed request (422).")]]


class StockLevel(TypedDict):
    """A product's stock level as Kafka acknowledged it."""

    product: str
    stock: int


class StockView(TypedDict):
    """A product's units as the inventory check holds them: stock, reserved by validated orders, available."""

    product: str
    stock: int
    reserved: int
    available: int


class CustomerOrders(TypedDict):
    """A customer's newest orders, newest first, and how many order ids the index holds for them."""

    customer_id: str
    known: int
    orders: list[Order]


class ErasurePending(TypedDict):
    """An erasure under way: gone from every answer, its records in Kafka gone within `within_seconds`."""

    erasure: Literal["pending"]
    within_seconds: float


class Health(TypedDict):
    """The process is alive."""

    status: Literal["ok"]
    node: str


class Readiness(TypedDict):
    """The node's partitions are assigned and read to their end."""

    status: Literal["ready"]
    node: str


class ClusterNode(TypedDict):
    """A live member of the node group."""

    id: Annotated[str | None, Field(description="The node id from its /healthz; null while it does not answer.")]
    url: str
    partitions: list[int]
    answers: bool


class OrderViewState(TypedDict):
    """This node's order view: its partitions of `orders` and the last offset applied from each."""

    active: list[int]
    standby: list[int]
    applied: dict[str, int]


class Cluster(TypedDict):
    """The live nodes, the partitions each owns, and this node's own view."""

    self: str
    partitions: Annotated[int, Field(description="How many partitions `orders` has (0 before the node knows).")]
    reply_partitions: list[int]
    view: OrderViewState
    nodes: list[ClusterNode]


SHAPES: tuple[type, ...] = (
    Order,
    Problem,
    StockLevel,
    StockView,
    CustomerOrders,
    ErasurePending,
    Health,
    Readiness,
    Cluster,
)
"""The documented bodies (and, through them, FieldError, ClusterNode and OrderViewState)."""


def ref(shape: type) -> dict[str, str]:
    """A `$ref` to one of the SHAPES."""
    return {"$ref": COMPONENTS + shape.__name__}


def component_schemas() -> dict[str, Any]:
    """The JSON Schemas of SHAPES and the shapes they use, by name."""
    _, schemas = TypeAdapter.json_schemas(
        [(shape.__name__, "serialization", TypeAdapter(shape)) for shape in SHAPES],
        ref_template=COMPONENTS + "{model}",
    )
    defs: dict[str, Any] = schemas["$defs"]
    return defs


def header(description: str, kind: Literal["string", "integer"] = "string", required: bool = True) -> dict[str, Any]:
    """A response header."""
    return {"description": description, "required": required, "schema": {"type": kind}}


ETAG = header('The order\'s version as a strong entity tag: `"2"`.')
RETRY_AFTER = header("Seconds to wait before asking again.", "integer")
NODE = header("The node that answered (on every response).")


def answer(
    description: str,
    shape: type | None = None,
    media_type: str = JSON,
    headers: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A documented response: a body of `shape` (any body for `media_type` `*/*`), and headers."""
    documented: dict[str, Any] = {"description": description}
    if shape is not None or media_type == "*/*":
        documented["content"] = {media_type: {"schema": {} if shape is None else ref(shape)}}
    if headers:
        documented["headers"] = headers
    return documented


def empty_answer(description: str, headers: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A documented response without a body (redirects, 304)."""
    return {"description": description, "headers": headers}


def problem_answer(description: str, headers: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """A documented error: a problem document."""
    return answer(description, Problem, PROBLEM_JSON, headers)


def order_answer(description: str, headers: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A documented response with the order as its body and its ETag."""
    return answer(description, Order, headers={"ETag": ETAG, **headers})


MALFORMED = problem_answer("A malformed body or parameter.")
UNAVAILABLE = problem_answer(
    "Kafka did not acknowledge within 5 s, too many requests are parked on this node, no node owns the order right"
    " now (a rebalance), or the node is shutting down.",
    {"Retry-After": RETRY_AFTER},
)
TOO_LARGE = problem_answer("The request body is over 64 KiB (views/middleware.py answers it for every path).")
URI_TOO_LONG = problem_answer("The request line is over 8 KiB (app/http_protocol.py answers it before routing).")
HEADERS_TOO_LARGE = problem_answer("The headers are over 16 KiB (app/http_protocol.py answers it before routing).")


def wait_for_parameter() -> dict[str, Any]:
    """`wait_for`: states as a comma-separated list (`wait_for=VALIDATED,FAILED`), an array of enum values."""
    return {
        "name": "wait_for",
        "in": "query",
        "required": False,
        "style": "form",
        "explode": False,
        "description": "States to wait for, comma-separated (`wait_for=VALIDATED,FAILED`): the answer comes once"
        " the order is in one of them, or in a terminal state that rules them out.",
        # Repeated states and longer lists are taken too; the document promises what always fits the 64
        # characters the raw text may have.
        "schema": {
            "type": "array",
            "items": {"type": "string", "enum": list(get_args(OrderState))},
            "minItems": 1,
            "maxItems": 3,
            "uniqueItems": True,
        },
    }


def operation_id(route: APIRoute) -> str:
    """An operation's id: its route's name (the endpoint's function name unless the route names itself)."""
    return route.name


def install_document(api: FastAPI) -> None:
    """Serve the document built by `document` as /openapi.json (and in /docs)."""

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is None:
            api.openapi_schema = document(api)
        return api.openapi_schema

    api.openapi = openapi  # type: ignore[method-assign]


def document(api: FastAPI) -> dict[str, Any]:
    """FastAPI's document of the routes, with the shapes and the answers every operation shares."""
    spec = get_openapi(title=api.title, version=api.version, summary=api.summary, routes=api.routes)
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    shapes = component_schemas()
    clash = schemas.keys() & shapes.keys()
    assert not clash, f"two schemas named {clash}"
    schemas.update(shapes)
    for path in spec["paths"].values():
        for operation in path.values():
            responses = operation["responses"]
            responses.setdefault("413", copy.deepcopy(TOO_LARGE))
            responses.setdefault("414", copy.deepcopy(URI_TOO_LONG))
            responses.setdefault("431", copy.deepcopy(HEADERS_TOO_LARGE))
            for response in responses.values():
                response["headers"] = {**response.get("headers", {}), "X-Stategate-Node": NODE}
    return spec
