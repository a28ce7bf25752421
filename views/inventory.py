"""`/v1/inventory`: the warehouse's stock levels, written to `warehouse-inventory`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse

from streams.commands import KafkaUnavailable

from .dependencies import get_node
from .orders import PROBLEM_DOCS, json_body
from .problems import unavailable

router = APIRouter(prefix="/v1/inventory", tags=["inventory"])


class StockIn(BaseModel):
    """The body of `PUT /v1/inventory/{product}`."""

    model_config = ConfigDict(extra="forbid")

    stock: int = Field(ge=0, le=1_000_000_000, strict=True)


@router.put(
    "/{product}",
    summary="Set a product's stock level",
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": StockIn.model_json_schema()}}}
    },
    responses={200: {"description": "The stock level Kafka acknowledged."}, **PROBLEM_DOCS},
)
async def put_stock(
    request: Request,
    product: Annotated[str, Path(min_length=1, max_length=64, pattern=r"\S")],
    node: Any = Depends(get_node),
) -> JSONResponse:
    """Write `{"stock": N}` for the product to Kafka."""
    body = await json_body(request, StockIn)
    try:
        level = await node.orders.set_stock(product, body.stock)
    except KafkaUnavailable as exc:
        raise unavailable(str(exc), node.settings.retry_after_seconds) from None
    return JSONResponse({"product": level.product, "stock": level.stock})
