"""The WebSocket at /v1/ws: place and watch orders, call services (real broker, services, node, WebSocket client)."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from websockets.sync.client import ClientConnection, connect

from .conftest import System


def ws_url(http_url: str, query: str = "") -> str:
    return http_url.replace("http://", "ws://") + "/v1/ws" + (f"?{query}" if query else "")


def receive(socket: ClientConnection, timeout: float = 15) -> dict[str, Any]:
    message = orjson.loads(socket.recv(timeout=timeout))
    assert isinstance(message, dict)
    return message


def until(socket: ClientConnection, done: Any, timeout: float = 15) -> list[dict[str, Any]]:
    """Messages until `done(message)` holds for one (included)."""
    messages = []
    while True:
        message = receive(socket, timeout)
        messages.append(message)
        if done(message):
            return messages


def test_a_socket_places_an_order_and_is_told_when_it_is_validated(system: System, product: str, customer: str) -> None:
    system.stock(product, 10)
    with connect(ws_url(system.url)) as socket:
        hello = receive(socket)
        assert hello["type"] == "hello" and hello["node"] == "node-1" and hello["session"]
        order = {"customer_id": customer, "product": product, "quantity": 1, "price": 2.0}
        socket.send(orjson.dumps({"op": "place", "ref": "r1", "order": order, "wait_for": "VALIDATED"}).decode())
        messages = until(socket, lambda m: m.get("order", {}).get("state") == "VALIDATED")
    assert all(m["type"] == "order" and m["ref"] == "r1" for m in messages), messages
    assert messages[0]["order"]["state"] == "CREATED" and messages[0]["seq"] == 1  # the placement, as written
    ids = {m["order"]["id"] for m in messages}
    assert len(ids) == 1


def test_a_socket_subscribes_to_an_order_placed_elsewhere(system: System, product: str, customer: str) -> None:
    system.stock(product, 10)
    import httpx

    with connect(ws_url(system.url)) as socket:
        receive(socket)
        order_id = f"ws-{uuid.uuid4().hex[:10]}"
        socket.send(orjson.dumps({"op": "subscribe", "orders": [order_id]}).decode())
        body = {"id": order_id, "customer_id": customer, "product": product, "quantity": 1, "price": 1.0}
        assert httpx.post(f"{system.url}/v1/orders", json=body, timeout=10).status_code == 202
        messages = until(socket, lambda m: m.get("order", {}).get("state") == "VALIDATED")
    assert [m["order"]["version"] for m in messages] == [1, 2]
    assert all("ref" not in m for m in messages)


def test_a_socket_calls_a_service_and_gets_a_streaming_reply_in_parts(system: System) -> None:
    with connect(ws_url(system.url)) as socket:
        receive(socket)
        call = {"op": "call", "ref": "c1", "service": "echo", "method": "POST", "path": "/hi", "body": "hello"}
        socket.send(orjson.dumps(call).decode())
        reply = receive(socket)
        assert reply["type"] == "reply" and reply["ref"] == "c1" and reply["status"] == 200
        assert reply["body"] == {"method": "POST", "path": "/hi", "body": "hello"} and reply["more"] is False
        socket.send(
            orjson.dumps(
                {"op": "call", "ref": "c2", "service": "echo", "method": "GET", "path": "/stream?n=5"}
            ).decode()
        )
        parts = until(socket, lambda m: m.get("more") is False)
    assert all(p["ref"] == "c2" for p in parts)
    records = [p["body"] for p in parts if p["body"] != ""]
    assert [r["i"] for r in _flatten(records)] == [0, 1, 2, 3, 4]
    assert [p["more"] for p in parts][-1] is False and all(p["more"] for p in parts[:-1])


def test_bad_messages_get_problems_and_the_socket_stays_open(system: System) -> None:
    with connect(ws_url(system.url)) as socket:
        receive(socket)
        for bad in (
            "not json",
            "[1]",
            '{"op": "fly"}',
            '{"op": "subscribe", "orders": ["bad id"]}',
            '{"op": "place", "ref": "p", "order": {"customer_id": ""}}',
            '{"op": "place", "order": {}}',
            '{"op": "call", "ref": "c", "service": "echo", "path": "no-slash"}',
            '{"op": "call", "ref": "c", "service": "nope", "path": "/"}',
        ):
            socket.send(bad)
            message = receive(socket)
            assert message["type"] == "error", (bad, message)
            assert message["problem"]["status"] in (404, 422), (bad, message)
        socket.send(orjson.dumps({"op": "call", "ref": "ok", "service": "echo", "path": "/"}).decode())
        assert receive(socket)["status"] == 200


def _flatten(bodies: list[Any]) -> list[dict[str, Any]]:
    flat: list[dict[str, Any]] = []
    for body in bodies:
        flat.extend(body if isinstance(body, list) else [body])
    return flat


def test_a_socket_from_a_foreign_origin_or_with_a_bad_resume_is_refused_at_the_handshake(system: System) -> None:
    from websockets.exceptions import InvalidStatus

    for url, headers, status in (
        (ws_url(system.url), {"Origin": "http://evil.example"}, 403),
        (ws_url(system.url, "seen=-1"), {}, 422),
        (ws_url(system.url, "session=" + "x" * 81), {}, 422),
    ):
        try:
            connect(url, additional_headers=headers).close()
        except InvalidStatus as refused:
            assert refused.response.status_code == status, url
            assert refused.response.headers["content-type"] == "application/problem+json"
        else:
            raise AssertionError(f"{url} was accepted")
    host = system.url.removeprefix("http://")
    with connect(ws_url(system.url), additional_headers={"Origin": f"http://{host}"}) as same_origin:
        assert receive(same_origin)["type"] == "hello"


def test_a_binary_message_closes_the_socket_with_1003_and_an_oversized_one_with_1009(system: System) -> None:
    from websockets.exceptions import ConnectionClosed

    for message, code in ((b"\x00\x01", 1003), ("x" * (64 * 1024 + 1), 1009)):
        with connect(ws_url(system.url), max_size=None) as socket:
            assert receive(socket)["type"] == "hello"
            socket.send(message)
            try:
                socket.recv(timeout=10)
            except ConnectionClosed as closed:
                assert closed.rcvd is not None and closed.rcvd.code == code, message[:10]
            else:
                raise AssertionError("the socket stayed open")
