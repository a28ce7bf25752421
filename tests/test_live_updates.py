"""Live updates as Server-Sent Events on one node (real broker, services, node and HTTP)."""

from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import orjson
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from .conftest import System
from .processes import Node, wait_for
from .sse import Reader
from .test_live_cluster import Listener


def order_body(customer: str, product: str, **extra: object) -> dict[str, object]:
    return {"customer_id": customer, "product": product, "quantity": 1, "price": 1.0, **extra}


def test_an_order_stream_sends_the_snapshot_then_each_version_and_ends(
    system: System, product: str, customer: str
) -> None:
    system.stock(product, 10)
    order_id = f"sse-{uuid.uuid4().hex[:10]}"
    placed = httpx.post(f"{system.url}/v1/orders", json=order_body(customer, product, id=order_id), timeout=10)
    assert placed.status_code == 202, placed.text
    with httpx.stream("GET", f"{system.url}/v1/orders/{order_id}/events", timeout=30) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = list(Reader(response))
    states = [event.json()["state"] for event in events]
    versions = [event.json()["version"] for event in events]
    assert all(event.event == "order" for event in events)
    assert states[-1] == "VALIDATED" and states[0] in ("CREATED", "VALIDATED"), states
    assert versions == sorted(set(versions)), versions  # no duplicate, in order
    assert events[-1].id is not None


def test_a_customer_stream_sends_the_customers_orders_then_new_ones_and_no_one_elses(
    system: System, product: str, customer: str
) -> None:
    system.stock(product, 100)
    url = system.url
    before = httpx.post(f"{url}/v1/orders?wait_for=VALIDATED", json=order_body(customer, product), timeout=15).json()
    wait_for(lambda: _indexed(url, customer, before["id"]), 15, "the customer index to list the order")
    someone_else = order_body(f"other-{uuid.uuid4().hex[:8]}", product)
    events: list[dict[str, object]] = []
    with httpx.stream("GET", f"{url}/v1/events", params={"customer_id": customer}, timeout=30) as response:
        assert response.status_code == 200
        reader = iter(Reader(response))
        first = next(reader).json()
        assert (first["id"], first["state"]) == (before["id"], "VALIDATED")  # the snapshot
        other = httpx.post(f"{url}/v1/orders?wait_for=VALIDATED", json=someone_else, timeout=15).json()
        bodies = [order_body(customer, product) for _ in range(2)]
        placed = [httpx.post(f"{url}/v1/orders", json=body, timeout=15).json()["id"] for body in bodies]
        validated: set[str] = set()
        for event in reader:
            order = event.json()
            events.append(order)
            if order["state"] == "VALIDATED":
                validated.add(str(order["id"]))
            if validated == set(placed):
                break
    assert other["id"] not in {e["id"] for e in events}
    assert [(e["id"], e["state"]) for e in events if e["id"] == placed[0]] == [
        (placed[0], "CREATED"),
        (placed[0], "VALIDATED"),
    ]


def _indexed(url: str, customer: str, order_id: str) -> bool:
    listed = httpx.get(f"{url}/v1/orders", params={"customer_id": customer}, timeout=10).json()
    return order_id in {order["id"] for order in listed["orders"]}


def test_a_full_node_refuses_more_streams_and_a_stopping_node_sends_clients_elsewhere(
    kafka: str, tmp_path: Path, product: str, customer: str
) -> None:
    full_node = {"STATEGATE_MAX_STREAMS": "2", "STATEGATE_MAX_SOCKETS": "1"}
    with System(tmp_path, kafka, "full", services=False, **full_node) as alone:
        url = alone.url
        order_id = httpx.post(f"{url}/v1/orders", json=order_body(customer, product), timeout=10).json()["id"]
        stream = Listener(f"{url}/v1/orders/{order_id}/events").start()
        stream.wait_events(1)
        with connect(url.replace("http://", "ws://") + "/v1/ws") as socket:
            socket.send(orjson.dumps({"op": "subscribe", "orders": [order_id]}).decode())
            assert orjson.loads(socket.recv(timeout=10))["type"] == "hello"
            assert orjson.loads(socket.recv(timeout=10))["order"]["id"] == order_id  # the second stream
            full = httpx.get(f"{url}/v1/events?orders={order_id}", timeout=10)
            assert full.status_code == 503 and full.headers["retry-after"] == "1"
            with pytest.raises(InvalidStatus) as refused:
                connect(url.replace("http://", "ws://") + "/v1/ws")
            assert refused.value.response.status_code == 503
            assert refused.value.response.headers["retry-after"] == "1"
            stopping = threading.Thread(target=alone.node.stop)
            stopping.start()
            with pytest.raises(ConnectionClosed) as closed:
                socket.recv(timeout=20)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
            stream.join(timeout=20)
            stopping.join(30)
    assert [e.event for e in stream.events] == ["order", "reconnect"]
    assert stream.events[-1].json() == {"reason": "node stopping"}


def test_a_stream_waiting_for_its_order_ends_when_its_client_leaves_and_gets_503_when_the_node_stops(
    kafka: str, tmp_path: Path
) -> None:
    """A client that leaves frees its place at once, not at the timeout; one still waiting when the node stops gets
    503, not 404: the order may yet appear, and another node can go on waiting for it."""
    with System(tmp_path, kafka, "waiting", services=False) as alone:
        node, address = alone.node, urlsplit(alone.url)
        waiting = node_metric_is(node, "stategate_live_subscriptions", 1)
        with socket.create_connection((address.hostname, address.port), timeout=10) as client:
            client.sendall(
                f"GET /v1/orders/never-{uuid.uuid4().hex[:8]}/events?timeout=60 HTTP/1.1\r\n"
                f"Host: {address.netloc}\r\nAccept: text/event-stream\r\n\r\n".encode()
            )
            wait_for(waiting, 10, "the stream to be registered")
        wait_for(node_metric_is(node, "stategate_live_subscriptions", 0), 5, "the stream to end once its client left")

        listener = Listener(f"{alone.url}/v1/orders/never-{uuid.uuid4().hex[:8]}/events?timeout=60").start()
        wait_for(waiting, 10, "the stream to be registered")
        stopping = threading.Thread(target=node.stop)
        stopping.start()
        listener.join(timeout=20)
        stopping.join(30)
    assert listener.status == 503 and listener.response_headers is not None
    assert listener.response_headers["retry-after"] == "1"


def node_metric_is(node: Node, name: str, value: float) -> Callable[[], bool]:
    """A condition for `wait_for`: the node's metric `name` has this value."""
    return lambda: node.metric(name) == value
