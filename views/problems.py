"""Errors as RFC 9457 problem details (`application/problem+json`)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from stategate.app.http_answers import PROBLEM_JSON, problem_document, retry_after
from stategate.app.node import Node

RawAnswer = tuple[int, list[tuple[bytes, bytes]], bytes]

log = logging.getLogger("stategate.views")


class Problem(Exception):
    """Raise to answer with a problem document."""

    def __init__(
        self,
        status: int,
        detail: str | None = None,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = dict(headers or {})
        self.extra = extra


def problem_body(problem: Problem) -> bytes:
    """The problem document as JSON bytes."""
    return problem_document(problem.status, detail=problem.detail, **problem.extra)


def problem_response(problem: Problem) -> Response:
    """The HTTP response for a problem (FastAPI routes)."""
    return Response(problem_body(problem), status_code=problem.status, headers=problem.headers, media_type=PROBLEM_JSON)


def raw_headers(headers: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
    """Headers as ASGI sends them: lower-case names, latin-1 bytes."""
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]


def raw_problem(problem: Problem) -> RawAnswer:
    """Status, raw headers (no content-length) and body of a problem, for the plain ASGI paths."""
    return (
        problem.status,
        [(b"content-type", PROBLEM_JSON.encode()), *raw_headers(problem.headers)],
        problem_body(problem),
    )


def unavailable(detail: str, seconds: int) -> Problem:
    """503 with Retry-After."""
    return Problem(503, detail, retry_after(seconds))


async def unknown_after_wait(node: Node, order_id: str) -> Problem:
    """What a long-poll answers when its wait ended without the order.

    404 when the order was erased or surely does not exist (this node has
    read its partition to Kafka's end); otherwise 503 + Retry-After: it may
    have been written and acknowledged but not read here yet.
    """
    erased = node.view.is_erased(order_id)
    if erased or await node.orders.surely_absent(order_id):
        return no_such_order(order_id, erased)
    detail = f"Order {order_id!r} is not here yet, and Kafka cannot say that it will not be: try again."
    return unavailable(detail, node.settings.retry_after_seconds)


def no_such_order(order_id: str, erased: bool = False) -> Problem:
    """404 for an order this node's view does not hold; `"erased": true` for one that was erased."""
    if erased:
        return Problem(404, f"Order {order_id!r} was erased.", erased=True)
    return Problem(404, f"No order {order_id!r}.")


def invalid(errors: list[Any]) -> Problem:
    """422 listing what is wrong, without echoing the (possibly huge) input."""
    listed = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in errors[:20]]
    return Problem(422, "The request is malformed.", errors=listed)


def install_problem_handlers(api: FastAPI) -> None:
    """Answer every error, expected or not, with a problem document."""

    async def on_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Problem)
        return problem_response(exc)

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, (RequestValidationError, ValidationError))
        return problem_response(invalid(list(exc.errors())))

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        return problem_response(Problem(exc.status_code, str(exc.detail), exc.headers))

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error", extra={"path": request.url.path})
        return problem_response(Problem(500))

    api.add_exception_handler(Problem, on_problem)
    api.add_exception_handler(RequestValidationError, on_validation)
    api.add_exception_handler(ValidationError, on_validation)
    api.add_exception_handler(StarletteHTTPException, on_http)
    api.add_exception_handler(Exception, on_unexpected)
