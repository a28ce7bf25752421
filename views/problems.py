"""Errors as RFC 9457 problem details (`application/problem+json`)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

PROBLEM_JSON = "application/problem+json"

log = logging.getLogger("stategate.views")


class Problem(Exception):
    """Raise to answer with a problem document."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(title)
        self.status = status
        self.title = title
        self.detail = detail
        self.headers = dict(headers or {})
        self.extra = extra


def problem_body(problem: Problem) -> bytes:
    """The problem document as JSON bytes."""
    body: dict[str, Any] = {"type": "about:blank", "title": problem.title, "status": problem.status}
    if problem.detail:
        body["detail"] = problem.detail
    body.update(problem.extra)
    return orjson.dumps(body)


def problem_response(problem: Problem) -> Response:
    """The HTTP response for a problem."""
    return Response(problem_body(problem), status_code=problem.status, headers=problem.headers, media_type=PROBLEM_JSON)


def unavailable(detail: str, retry_after: int) -> Problem:
    """503 with Retry-After."""
    return Problem(503, "Service Unavailable", detail, {"Retry-After": str(retry_after)})


def invalid(errors: list[Any]) -> Problem:
    """422 listing what is wrong, without echoing the (possibly huge) input."""
    listed = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in errors[:20]]
    return Problem(422, "Unprocessable Content", "The request is malformed.", errors=listed)


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
        titles = {404: "Not Found", 405: "Method Not Allowed"}
        return problem_response(
            Problem(exc.status_code, titles.get(exc.status_code, "Error"), str(exc.detail), exc.headers)
        )

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error", extra={"path": request.url.path})
        return problem_response(Problem(500, "Internal Server Error"))

    api.add_exception_handler(Problem, on_problem)
    api.add_exception_handler(RequestValidationError, on_validation)
    api.add_exception_handler(ValidationError, on_validation)
    api.add_exception_handler(StarletteHTTPException, on_http)
    api.add_exception_handler(Exception, on_unexpected)


def response_doc(description: str, **headers: str) -> dict[str, Any]:
    """An OpenAPI response entry with documented headers."""
    return {"description": description, "headers": {k: {"description": v} for k, v in headers.items()}}


PROBLEM_DOCS: dict[int | str, dict[str, Any]] = {
    413: response_doc("Body over 64 KiB (problem+json)."),
    422: response_doc("Malformed body or parameter (problem+json)."),
    503: response_doc("Kafka cannot take the command, or too many parked requests.", **{"Retry-After": "seconds"}),
}
