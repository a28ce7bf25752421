"""`/v1/inventory`: the warehouse's stock levels, written to `warehouse-inventory`, read from the inventory service."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse, Response

from stategate.app.errors import KafkaUnavailable
from stategate.app.service_calls import INVENTORY_SERVICE

from .bodies import WholeNumber, body_schema, json_body
from .dependencies import NodeDep
from .input_limits import MAX_NAME_LENGTH, NAME_PATTERN
from .openapi import MALFORMED, UNAVAILABLE, StockLevel, StockView, answer, problem_answer
from .problems import unavailable
from .service_calls import call_and_answer
from .wait_params import DEFAULT_WAIT_SECONDS

router = APIRouter(prefix="/v1/inventory", tags=["inventory"])

Product = Annotated[str, Path(min_length=1, max_length=MAX_NAME_LENGTH, pattern=NAME_PATTERN)]


class StockIn(BaseModel):
    """The body of `PUT /v1/inventory/{product}`."""

    model_config = ConfigDict(extra="forbid")

    stock: WholeNumber = Field(ge=0, le=1_000_000_000, strict=True)


@router.put(
    "/{product}",
    summary="Set a product's stock level",
    openapi_extra=body_schema(StockIn),
    response_class=JSONResponse,
    responses={200: answer("The stock level Kafka acknowledged.", StockLevel), 422: MALFORMED, 503: UNAVAILABLE},
)
async def put_stock(request: Request, node: NodeDep, product: Product) -> JSONResponse:
    """Write `{"stock": N}` for the product to Kafka."""
    body = await json_body(request, StockIn)
    try:
        level = await node.orders.set_stock(product, body.stock)
    except KafkaUnavailable as exc:
        raise unavailable(str(exc), node.settings.retry_after_seconds) from None
    return JSONResponse({"product": level.product, "stock": level.stock})


@router.get(
    "/{product}",
    summary="Read a product's stock, reserved and available units",
    response_class=JSONResponse,
    responses={
        200: answer("The product's units, as the inventory service holds them.", StockView),
        404: problem_answer("The warehouse never stocked the product."),
        422: MALFORMED,
        503: UNAVAILABLE,
        504: problem_answer("The inventory service did not answer in time."),
    },
)
async def get_stock(request: Request, node: NodeDep, product: Product) -> Response:
    """Asked of the inventory service, which owns this state, over the gateway's own request/response path."""
    return await call_and_answer(request, node, INVENTORY_SERVICE, quote(product, safe=""), DEFAULT_WAIT_SECONDS)
