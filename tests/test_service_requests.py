"""Unit tests of the plain-ASGI service-call path: what it takes, and what it leaves to FastAPI."""

from __future__ import annotations

import pytest
from starlette.types import Scope

from stategate.views.service_requests import _read_call


def scope(path: str, query: str = "", method: str = "POST", headers: list[tuple[bytes, bytes]] | None = None) -> Scope:
    return {"type": "http", "method": method, "path": path, "query_string": query.encode(), "headers": headers or []}


@pytest.mark.parametrize(
    ("request_scope", "call"),
    [
        (scope("/v1/services/echo/a/b"), ("echo", "a/b", 10.0)),
        (scope("/v1/services/echo"), ("echo", "", 10.0)),
        (scope("/v1/services/echo/"), ("echo", "", 10.0)),
        (scope("/v1/services/echo/x", "timeout=2.5&n=3"), ("echo", "x", 2.5)),
        (scope("/v1/services/echo/x", headers=[(b"prefer", b"wait=4")]), ("echo", "x", 4.0)),
        (scope("/v1/services/echo/x", method="GET"), ("echo", "x", 10.0)),
    ],
)
def test_plain_calls_are_taken(request_scope: Scope, call: tuple[str, str, float]) -> None:
    assert _read_call(request_scope) == call


@pytest.mark.parametrize(
    "request_scope",
    [
        scope("/v1/services/"),
        scope("/v1/services/" + "s" * 65 + "/x"),
        scope("/v1/services/echo/" + "p" * 2049),
        scope("/v1/services/echo/x", "timeout=abc"),
        scope("/v1/services/echo/x", "timeout=61"),
        scope("/v1/services/echo/x", "timeout=1&timeout=2"),
        scope("/v1/services/echo/x", headers=[(b"prefer", b"wait=1"), (b"prefer", b"wait=2")]),
        scope("/v1/services/echo/x", headers=[(b"prefer", b"x" * 257)]),
        scope("/v1/services/echo/x", "timeout=2", headers=[(b"prefer", b"x" * 257)]),  # found by the fuzzer
        scope("/v1/services/echo/x", method="TRACE"),
        scope("/v1/orders"),
    ],
)
def test_doubtful_calls_are_left_to_fastapi(request_scope: Scope) -> None:
    assert _read_call(request_scope) is None
