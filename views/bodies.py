"""Reading JSON request bodies into Pydantic models, with problem+json on failure."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

import orjson
from fastapi import Request
from pydantic import BaseModel, BeforeValidator, ValidationError

from .problems import invalid

Body = TypeVar("Body", bound=BaseModel)


def whole_float_as_int(value: Any) -> Any:
    """`13.0` as `13`: JSON numbers have no int/float kinds, and JSON Schema's `integer` includes 13.0."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


WholeNumber = Annotated[int, BeforeValidator(whole_float_as_int)]
"""An integer field that takes 13 and 13.0 but not 13.5, "13" or true (with `strict=True`)."""


async def json_body(request: Request, model: type[Body]) -> Body:
    """The body read as `model`.

    JSON is read whatever the Content-Type says, because `curl -d` sends
    `application/x-www-form-urlencoded`; anything that is not JSON is a 422.
    """
    try:
        data = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        raise invalid([{"loc": ["body"], "msg": "the body is not JSON", "type": "json_invalid"}]) from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid([{**e, "loc": ["body", *e["loc"]]} for e in exc.errors()]) from None


def body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI `openapi_extra` declaring `model` as the JSON request body."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}}
