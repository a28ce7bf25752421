"""app/ws_protocol.py against real clients: uvicorn on a port, the `websockets` client and raw sockets.

The application here echoes what it receives, so each test checks the
protocol alone: handshake, framing, limits, keep-alive, closing.
"""

from __future__ import annotations

import base64
import os
import socket
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from stategate.app.broker import free_port
from stategate.app.http_protocol import node_http_protocol
from stategate.app.ws_protocol import Pinger, accept_key, unmask

MAX_SIZE = 64 * 1024
PING_SECONDS = 0.5


async def echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Accept; echo each message; `/refuse` refuses, `/close-after-one` closes with 4001 after one message."""
    assert scope["type"] == "websocket"
    assert (await receive())["type"] == "websocket.connect"
    if scope["path"] == "/refuse":
        await send({"type": "websocket.close"})
        return
    await send({"type": "websocket.accept", "subprotocol": (scope["subprotocols"] or [None])[0]})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if "text" in message and message["text"] is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})
        if scope["path"] == "/close-after-one":
            await send({"type": "websocket.close", "code": 4001, "reason": "enough"})


class Server:
    """uvicorn with stategate's HTTP and WebSocket protocols, in a thread of its own."""

    def __init__(self) -> None:
        self.port = free_port()
        config = uvicorn.Config(
            echo,
            host="127.0.0.1",
            port=self.port,
            http=node_http_protocol(1),
            ws="stategate.app.ws_protocol:LeanWSProtocol",
            ws_max_size=MAX_SIZE,
            ws_ping_interval=PING_SECONDS,
            ws_ping_timeout=PING_SECONDS,
            lifespan="off",
            log_level="warning",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        assert not self.thread.is_alive()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with Server() as running:
        yield running


class RawSocket:
    """A client that writes whatever bytes a test wants, valid or not."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.buffer = b""

    def handshake(self, path: str = "/", **headers: str) -> bytes:
        """Send an upgrade request (headers override the valid defaults); return the response head."""
        fields = {
            "Host": "127.0.0.1",
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
            "Sec-WebSocket-Version": "13",
        }
        fields.update({name.replace("_", "-"): value for name, value in headers.items()})
        request = f"GET {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items() if v) + "\r\n"
        self.sock.sendall(request.encode())
        while b"\r\n\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            self.buffer += chunk
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        return head

    def send_frame(self, opcode: int, payload: bytes, fin: bool = True, masked: bool = True, rsv: int = 0) -> None:
        first = (0x80 if fin else 0) | rsv | opcode
        length = len(payload)
        mask_bit = 0x80 if masked else 0
        if length < 126:
            head = bytes((first, mask_bit | length))
        elif length < 1 << 16:
            head = struct.pack("!BBH", first, mask_bit | 126, length)
        else:
            head = struct.pack("!BBQ", first, mask_bit | 127, length)
        if masked:
            mask = os.urandom(4)
            self.sock.sendall(head + mask + unmask(payload, mask))
        else:
            self.sock.sendall(head + payload)

    def read_frame(self) -> tuple[int, bytes]:
        """The next frame from the server: (opcode, payload); (-1, b"") when the connection ends."""
        while True:
            if len(self.buffer) >= 2:
                length, start = self.buffer[1] & 0x7F, 2
                if length == 126 and len(self.buffer) >= 4:
                    length, start = struct.unpack("!H", self.buffer[2:4])[0], 4
                elif length == 127 and len(self.buffer) >= 10:
                    length, start = struct.unpack("!Q", self.buffer[2:10])[0], 10
                if length < 126 or start > 2:
                    if len(self.buffer) >= start + length:
                        opcode, payload = self.buffer[0] & 0x0F, self.buffer[start : start + length]
                        self.buffer = self.buffer[start + length :]
                        return opcode, payload
            chunk = self.sock.recv(65536)
            if not chunk:
                return -1, b""
            self.buffer += chunk

    def close_code(self) -> int:
        """Read until the server's close frame; its code."""
        while True:
            opcode, payload = self.read_frame()
            if opcode == 0x8:
                return int(struct.unpack("!H", payload[:2])[0])
            assert opcode != -1, "the connection ended without a close frame"

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def raw(server: Server) -> Iterator[RawSocket]:
    client = RawSocket(server.port)
    yield client
    client.close()


def test_the_accept_key_is_rfc_6455s_example() -> None:
    assert accept_key(b"dGhlIHNhbXBsZSBub25jZQ==") == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_text_and_binary_messages_of_every_length_encoding_round_trip(server: Server) -> None:
    with connect(server.url + "/", compression=None, max_size=None) as client:
        for text in ("", "hello", "é" * 100, "x" * MAX_SIZE):  # 7-bit, 16-bit and 64-bit lengths
            client.send(text)
            assert client.recv() == text
        client.send(b"\x00\x01\x02")
        assert client.recv() == b"\x00\x01\x02"


def test_a_fragmented_message_arrives_whole(raw: RawSocket) -> None:
    assert raw.handshake().startswith(b"HTTP/1.1 101")
    raw.send_frame(0x1, b"frag", fin=False)
    raw.send_frame(0x9, b"between")  # a control frame may come between fragments
    raw.send_frame(0x0, b"men", fin=False)
    raw.send_frame(0x0, b"ted")
    assert raw.read_frame() == (0xA, b"between")
    assert raw.read_frame() == (0x1, b"fragmented")


def test_a_subprotocol_the_application_picks_is_named_in_the_answer(raw: RawSocket) -> None:
    head = raw.handshake(**{"Sec-WebSocket-Protocol": "stategate.v1, other"})
    assert b"sec-websocket-protocol: stategate.v1" in head.lower()


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ({"opcode": 0x1, "payload": b"x", "masked": False}, 1002),
        ({"opcode": 0x1, "payload": b"x", "rsv": 0x40}, 1002),
        ({"opcode": 0x3, "payload": b"x"}, 1002),
        ({"opcode": 0x0, "payload": b"x"}, 1002),
        ({"opcode": 0x9, "payload": b"x", "fin": False}, 1002),
        ({"opcode": 0x9, "payload": b"x" * 126}, 1002),
        ({"opcode": 0x1, "payload": b"\xff\xfe"}, 1007),
        ({"opcode": 0x8, "payload": b"\x03"}, 1002),
        ({"opcode": 0x8, "payload": struct.pack("!H", 1005)}, 1002),
        ({"opcode": 0x8, "payload": struct.pack("!H", 1000) + b"\xff"}, 1007),
    ],
    ids=[
        "unmasked",
        "rsv-bit",
        "unknown-opcode",
        "continuation-of-nothing",
        "fragmented-ping",
        "long-ping",
        "bad-utf8",
        "one-byte-close",
        "reserved-close-code",
        "bad-utf8-close-reason",
    ],
)
def test_a_frame_that_breaks_the_protocol_closes_the_socket_with_the_right_code(
    raw: RawSocket, frame: dict[str, Any], code: int
) -> None:
    assert raw.handshake().startswith(b"HTTP/1.1 101")
    raw.send_frame(**frame)
    assert raw.close_code() == code


def test_a_message_over_the_limit_is_refused_with_1009_before_it_is_all_sent(raw: RawSocket) -> None:
    assert raw.handshake().startswith(b"HTTP/1.1 101")
    first = struct.pack("!BBQ", 0x81, 0x80 | 127, MAX_SIZE + 1) + os.urandom(4)
    raw.sock.sendall(first + b"x" * 100)  # the header alone announces too much
    assert raw.close_code() == 1009


def test_fragments_over_the_limit_together_are_refused_with_1009(raw: RawSocket) -> None:
    assert raw.handshake().startswith(b"HTTP/1.1 101")
    raw.send_frame(0x2, b"x" * (MAX_SIZE // 2 + 1), fin=False)
    raw.send_frame(0x0, b"x" * (MAX_SIZE // 2 + 1))
    assert raw.close_code() == 1009


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Sec-WebSocket-Version": "8"}, 426),
        ({"Sec-WebSocket-Key": "not-base64-of-16-bytes"}, 400),
        ({"Sec-WebSocket-Key": ""}, 400),
    ],
    ids=["old-version", "bad-key", "no-key"],
)
def test_a_handshake_that_is_not_a_version_13_upgrade_is_answered_with_an_http_error(
    raw: RawSocket, headers: dict[str, str], status: int
) -> None:
    head = raw.handshake(**headers)
    assert head.startswith(f"HTTP/1.1 {status}".encode())
    if status == 426:
        assert b"sec-websocket-version: 13" in head.lower()


def test_an_application_that_closes_before_accepting_gets_403(raw: RawSocket) -> None:
    assert raw.handshake("/refuse").startswith(b"HTTP/1.1 403")


def test_the_client_closing_is_answered_with_its_code(raw: RawSocket) -> None:
    assert raw.handshake().startswith(b"HTTP/1.1 101")
    raw.send_frame(0x8, struct.pack("!H", 4321) + b"bye")
    assert raw.close_code() == 4321
    assert raw.read_frame() == (-1, b"")  # and the server ends the connection


def test_the_application_closing_sends_its_code_and_reason(server: Server) -> None:
    with connect(server.url + "/close-after-one", compression=None) as client:
        client.send("one")
        assert client.recv() == "one"
        with pytest.raises(ConnectionClosed) as closed:
            client.recv()
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4001, "enough")


def test_a_client_ping_gets_a_pong_with_the_same_payload(raw: RawSocket) -> None:
    assert raw.handshake().startswith(b"HTTP/1.1 101")
    raw.send_frame(0x9, b"are you there")
    assert raw.read_frame() == (0xA, b"are you there")


def test_a_client_that_answers_pings_stays_open_and_one_that_does_not_is_closed_with_1011(
    server: Server, raw: RawSocket
) -> None:
    with connect(server.url + "/", compression=None) as answering:  # websockets answers pings itself
        assert raw.handshake().startswith(b"HTTP/1.1 101")
        opcode, _ = raw.read_frame()
        assert opcode == 0x9, "the server pings"
        started = time.monotonic()
        assert raw.close_code() == 1011  # the ping above went unanswered
        assert time.monotonic() - started < 3 * PING_SECONDS
        answering.send("still here")
        assert answering.recv(timeout=2) == "still here"


def test_messages_sent_faster_than_the_application_reads_all_arrive_in_order(server: Server) -> None:
    with connect(server.url + "/", compression=None) as client:
        for number in range(500):
            client.send(str(number))
        assert [client.recv(timeout=5) for _ in range(500)] == [str(n) for n in range(500)]


def test_a_stopping_server_closes_open_sockets_with_1012() -> None:
    with Server() as own:
        with connect(own.url + "/", compression=None) as client:
            client.send("x")
            assert client.recv() == "x"
            own.server.should_exit = True
            with pytest.raises(ConnectionClosed) as closed:
                client.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012


def test_the_pinger_forgets_sockets_once_they_are_gone(server: Server) -> None:
    for _ in range(3):
        with connect(server.url + "/", compression=None) as client:
            client.send("x")
            assert client.recv() == "x"
    deadline = time.monotonic() + 5
    while any(p.sockets for p in Pinger._by_loop.values()):
        assert time.monotonic() < deadline, "the pinger still holds closed sockets"
        time.sleep(0.02)


def test_unmask_is_its_own_inverse() -> None:
    data, mask = os.urandom(1000), os.urandom(4)
    assert unmask(unmask(data, mask), mask) == data
    assert unmask(b"", mask) == b""
