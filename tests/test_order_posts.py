"""Unit tests of the plain-ASGI `POST /v1/orders` path: what it takes, and what it leaves to FastAPI.

Whatever it takes is answered by the same function as the FastAPI route
(tests of the whole system cover those answers); these tests pin down the
dispatch: a doubtful request reaches FastAPI with its body intact.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from stategate.views import order_posts
from stategate.views.order_posts import OrderPosts

GOOD = {"customer_id": "c", "product": "P", "quantity": 1, "price": 2.5}


class FastApiStandIn:
    """Records what reaches it, and the body it could read."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        self.bodies.append(message.get("body", b""))
        await Response(b"fastapi", 299)(scope, receive, send)


def post(body: bytes, query: str = "", headers: list[tuple[bytes, bytes]] | None = None) -> tuple[int, bytes, Any]:
    """Send one POST through OrderPosts; returns the status, the body and the stand-in."""
    fastapi = FastApiStandIn()
    posts = OrderPosts(fastapi, node=None, route=None)  # type: ignore[arg-type]
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/orders",
        "query_string": query.encode(),
        "headers": headers or [],
    }
    messages: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[Message] = []

    async def receive() -> Message:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(posts(scope, receive, send))
    return sent[0]["status"], sent[1]["body"], fastapi


@pytest.fixture(autouse=True)
def placed_here(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    calls: list[tuple[Any, ...]] = []

    async def place_and_answer(request: Any, node: Any, body: Any, key: Any, states: Any, wait: float) -> Response:
        calls.append((body.customer_id, key, states, wait))
        return Response(b"placed", 201)

    monkeypatch.setattr(order_posts, "place_and_answer", place_and_answer)
    return calls


def test_a_plain_order_is_placed_here(placed_here: list[tuple[Any, ...]]) -> None:
    status, body, fastapi = post(orjson.dumps(GOOD), "wait_for=VALIDATED&timeout=2.5", [(b"idempotency-key", b"k1")])
    assert (status, body, fastapi.bodies) == (201, b"placed", [])
    assert placed_here == [("c", "k1", frozenset({"VALIDATED"}), 2.5)]


def test_no_wait_for_and_no_key_is_placed_here_with_the_default_timeout(placed_here: list[tuple[Any, ...]]) -> None:
    assert post(orjson.dumps(GOOD))[0] == 201
    assert placed_here == [("c", None, None, 10.0)]


@pytest.mark.parametrize(
    ("body", "query", "headers"),
    [
        (b"not json", "", []),
        (orjson.dumps({**GOOD, "quantity": 0}), "", []),
        (orjson.dumps({**GOOD, "extra": 1}), "", []),
        (orjson.dumps({**GOOD, "price": "2.5"}), "", []),
        (orjson.dumps(GOOD), "wait_for=SHIPPED", []),
        (orjson.dumps(GOOD), "timeout=abc", []),
        (orjson.dumps(GOOD), "timeout=61", []),
        (orjson.dumps(GOOD), "", [(b"idempotency-key", b"")]),
        (orjson.dumps(GOOD), "", [(b"idempotency-key", b"k" * 256)]),
        (orjson.dumps(GOOD), "", [(b"idempotency-key", b"a"), (b"idempotency-key", b"b")]),
    ],
    ids=[
        "not json",
        "quantity 0",
        "extra field",
        "price as text",
        "unknown state",
        "timeout text",
        "timeout too long",
        "empty key",
        "long key",
        "two keys",
    ],
)
def test_a_doubtful_request_goes_to_fastapi_with_its_body(
    body: bytes, query: str, headers: list[tuple[bytes, bytes]], placed_here: list[tuple[Any, ...]]
) -> None:
    status, _, fastapi = post(body, query, headers)
    assert status == 299 and fastapi.bodies == [body]
    assert placed_here == []
