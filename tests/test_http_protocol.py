"""The lean uvicorn protocol still speaks HTTP/1.1: pipelining, streamed bodies, back-pressure.

Each test runs uvicorn with `LeanHttpToolsProtocol` on a free port and
talks to it over a real socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
import uvicorn

from stategate.app.broker import free_port
from stategate.app.http_protocol import LeanHttpToolsProtocol, node_http_protocol

BIG = 8 * 1024 * 1024


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """`/size` answers the request body's length; `/big` answers BIG bytes; anything else its path."""
    if scope["type"] != "http":
        return
    body = bytearray()
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    if scope["path"] == "/big":
        payload = b"x" * BIG
    elif scope["path"] == "/size":
        payload = str(len(body)).encode()
    else:
        payload = scope["path"].encode()
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", str(len(payload)).encode())]}
    )
    await send({"type": "http.response.body", "body": payload})


@contextlib.contextmanager
def serving(protocol: type[LeanHttpToolsProtocol] = LeanHttpToolsProtocol, **options: Any) -> Iterator[str]:
    """uvicorn with the lean protocol on a free port, in a thread, for the duration of the block."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, http=protocol, log_config=None, lifespan="off", **options)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with serving() as base_url:
        yield base_url


def test_pipelined_requests_are_answered_in_order(url: str) -> None:
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"".join(f"GET /r{i} HTTP/1.1\r\nHost: x\r\n\r\n".encode() for i in range(5)))
        received = b""
        deadline = time.monotonic() + 5
        while received.count(b"HTTP/1.1 200") < 5 or not received.endswith(b"/r4"):
            assert time.monotonic() < deadline, received
            received += sock.recv(65536)
    bodies = [part.rsplit(b"\r\n\r\n", 1)[1] for part in received.split(b"HTTP/1.1 200")[1:]]
    assert bodies == [f"/r{i}".encode() for i in range(5)]


def test_a_body_sent_in_chunks_arrives_whole(url: str) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(64):
            yield b"y" * 16384

    response = httpx.post(f"{url}/size", content=chunks(), timeout=10)
    assert response.text == str(64 * 16384)


def test_a_slow_reader_gets_a_large_response_whole(url: str) -> None:
    async def slow_read() -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", int(url.rsplit(":", 1)[1]))
        writer.write(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(0.3)  # the server fills the socket and must wait for it to drain
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        body = await reader.readexactly(BIG)
        writer.close()
        return len(body)

    assert asyncio.run(asyncio.wait_for(slow_read(), 20)) == BIG


def test_past_the_connection_limit_the_answer_is_problem_json_with_retry_after() -> None:
    with serving(node_http_protocol(retry_after_seconds=7), limit_concurrency=1) as base_url:
        port = int(base_url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as busy:
            busy.sendall(b"POST /size HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n")  # body never comes
            answer = httpx.get(f"{base_url}/r", timeout=5)
    assert answer.status_code == 503
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["retry-after"] == "7"
    assert answer.json()["status"] == 503


def raw_exchange(base_url: str, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes, read the answer until the server closes: status, headers, body."""
    port = int(base_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-Big: " + b"b" * 17000 + b"\r\n\r\n", 431),
        (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(3000)) + b"\r\n", 431),
        (b"NOT HTTP AT ALL\r\n\r\n", 400),
    ],
    ids=["long-url", "long-header", "many-headers", "garbage"],
)
def test_requests_the_parser_refuses_get_problem_json_from_the_node(request_bytes: bytes, status: int) -> None:
    with serving(node_http_protocol(retry_after_seconds=1, node_id="node-7")) as base_url:
        answered, headers, body = raw_exchange(base_url, request_bytes)
    assert answered == status
    assert headers["content-type"] == "application/problem+json"
    assert headers["x-stategate-node"] == "node-7"
    assert orjson.loads(body)["status"] == status
