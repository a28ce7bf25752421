"""`/v1/inventory`: the warehouse's stock levels, written to `warehouse-inventory`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse

from stategate.app.errors import KafkaUnavailable

from .bodies import WholeNumber, body_schema, json_body
from .dependencies import NodeDep
from .openapi import MALFORMED, UNAVAILABLE, StockLevel, answer
from .problems import unavailable

router = APIRouter(prefix="/v1/inventory", tags=["inventory"])


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
async def put_stock(
    request: Request,
    node: NodeDep,
    product: Annotated[str, Path(min_length=1, max_length=64, pattern=r"\S")],
) -> JSONResponse:
    """Write `{"stock": N}` for the product to Kafka."""
    body = await json_body(request, StockIn)
    try:
        level = await node.orders.set_stock(product, body.stock)
    except KafkaUnavailable as exc:
        raise unavailable(str(exc), node.settings.retry_after_seconds) from None
    return JSONResponse({"product": level.product, "stock": level.stock})
