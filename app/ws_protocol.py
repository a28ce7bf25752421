"""A small WebSocket server protocol (RFC 6455) for uvicorn: what `/v1/ws` needs, at a few hundred bytes a socket.

A node may hold ten thousand open WebSockets, almost all idle. uvicorn's
protocols cost 10 KiB or more each before the application holds anything:
the `websockets` one keeps three tasks per socket; the wsproto one keeps a
wsproto connection with its h11 handshake state, an `asyncio.Queue` and an
`asyncio.Event` (each with an empty 760-byte deque), a message buffer and
two timers. This protocol keeps one object with slots (and the ASGI scope
only until the socket is accepted); one timer pings all sockets. The server
side of RFC 6455 is small enough to read in one sitting:

- The handshake: uvicorn's HTTP protocol hands over the request it parsed
  (as bytes, the way it does for any `ws=` class); a request that is not a
  valid version-13 upgrade gets 400 (426 for another version).
- Frames from the client must be masked, carry no RSV bits (no extension is
  ever agreed) and use known opcodes; control frames are unfragmented and at
  most 125 bytes; text is valid UTF-8; a message is at most `ws_max_size`
  bytes. Anything else closes the socket with 1002, 1007 or 1009.
- Frames to the client are unmasked, one frame per message.
- Reading pauses while a whole message waits for the application, so a
  socket buffers at most one message it has not been asked for.
- Keep-alive: a ping every `ws_ping_interval` seconds, from one timer for
  all sockets (`Pinger`); a socket that has not answered by the next round
  is closed with 1011.
- ASGI: `websocket.connect`/`receive`/`disconnect` in, and `accept`, `send`,
  `close` and the denial-response extension (`websocket.http.response.*`) out,
  as ASGI 3 spec 2.4 describes them.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import hashlib
import logging
import struct
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

from uvicorn.protocols.utils import ClientDisconnected, get_local_addr, get_remote_addr, is_ssl

from .lean_event import LeanEvent

log = logging.getLogger("uvicorn.error")

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
"""RFC 6455's constant for Sec-WebSocket-Accept."""
MAX_HANDSHAKE_BYTES = 32 * 1024
CLOSE_TIMEOUT_SECONDS = 10.0

CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
PROTOCOL_ERROR, INVALID_DATA, TOO_BIG, INTERNAL_ERROR, RESTART = 1002, 1007, 1009, 1011, 1012
NO_STATUS, ABNORMAL = 1005, 1006


def accept_key(key: bytes) -> bytes:
    """The Sec-WebSocket-Accept answer to a client's Sec-WebSocket-Key."""
    return base64.b64encode(hashlib.sha1(key + GUID).digest())


def frame(opcode: int, payload: bytes) -> bytes:
    """One final, unmasked frame (the server side never masks)."""
    length = len(payload)
    if length < 126:
        return bytes((0x80 | opcode, length)) + payload
    if length < 1 << 16:
        return struct.pack("!BBH", 0x80 | opcode, 126, length) + payload
    return struct.pack("!BBQ", 0x80 | opcode, 127, length) + payload


def close_payload(code: int, reason: str = "") -> bytes:
    """A close frame's payload: the code, and as much of the reason as fits in 123 bytes of UTF-8."""
    return struct.pack("!H", code) + reason.encode()[:123].decode(errors="ignore").encode()


def unmask(payload: bytes | bytearray, mask: bytes | bytearray) -> bytes:
    """XOR a client's payload with its 4-byte mask (as one big integer: C speed, no loop in Python)."""
    length = len(payload)
    if not length:
        return b""
    repeated = (bytes(mask) * (length // 4 + 1))[:length]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(length, "big")


class HandshakeError(Exception):
    """The request is not a WebSocket upgrade this server can accept: answered with `status` and closed."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status


class FrameError(Exception):
    """The client broke the protocol: the socket is closed with `code`."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code


class LeanWSProtocol(asyncio.Protocol):
    """One WebSocket connection, for uvicorn's `ws=` setting."""

    __slots__ = (
        "app",
        "app_state",
        "buffer",
        "close_sent",
        "close_timer",
        "config",
        "connections",
        "default_headers",
        "disconnected",
        "fragments",
        "fragments_opcode",
        "handshake_complete",
        "inbox",
        "loop",
        "ping_payload",
        "read_paused",
        "reader",
        "response_started",
        "scope",
        "tasks",
        "transport",
        "writable",
    )

    def __init__(
        self,
        config: Any,
        server_state: Any,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        if not config.loaded:
            config.load()
        self.config = config
        self.app = config.loaded_app
        self.app_state = app_state
        self.loop = _loop or asyncio.get_event_loop()
        self.connections = server_state.connections
        self.tasks = server_state.tasks
        self.default_headers: list[tuple[bytes, bytes]] = server_state.default_headers
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.scope: dict[str, Any] = {}
        self.buffer = bytearray()
        self.fragments: bytearray | None = None
        self.fragments_opcode = TEXT
        self.inbox: collections.deque[dict[str, Any]] | None = None  # made when a message waits for the app
        self.reader: asyncio.Future[dict[str, Any]] | None = None
        self.handshake_complete = False
        self.response_started = False
        self.close_sent = False
        self.disconnected = False
        self.read_paused = False
        self.close_timer: asyncio.TimerHandle | None = None
        self.ping_payload: bytes | None = None
        self.writable = LeanEvent()
        self.writable.set()

    # -- asyncio.Protocol ---------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.connections.add(self)
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not asyncio.Transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        self.connections.discard(self)
        if self.handshake_complete and not self.close_sent and not self.disconnected:
            self._deliver({"type": "websocket.disconnect", "code": ABNORMAL})
        elif not self.handshake_complete and self.scope:
            self._deliver({"type": "websocket.disconnect", "code": ABNORMAL})
        self.handshake_complete = True
        self.disconnected = True
        self.writable.set()  # asyncio never resumes writing on a lost transport
        if self.reader is not None and not self.reader.done():
            self.reader.set_result({"type": "websocket.disconnect", "code": ABNORMAL})

    def data_received(self, data: bytes) -> None:
        if self.response_started:
            return  # a refused handshake: nothing more is read
        self.buffer += data
        if self.handshake_complete:
            self._read_buffered_frames()
        elif not self.scope:
            self._read_handshake()
        elif len(self.buffer) > self.config.ws_max_size + 14:
            self.transport.close()  # frames sent before the handshake's answer: kept until then, within reason

    def _read_buffered_frames(self) -> None:
        try:
            self._read_frames()
        except FrameError as exc:
            self._fail(exc.code, str(exc))

    def eof_received(self) -> None:
        pass

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    def shutdown(self) -> None:
        """uvicorn is stopping: close with 1012 (or answer 500 to a handshake still in progress)."""
        self._cancel_timers()
        if self.close_sent:
            self.transport.close()
            return
        if self.handshake_complete:
            self._deliver({"type": "websocket.disconnect", "code": RESTART})
            self.transport.write(frame(CLOSE, close_payload(RESTART)))
            self.close_sent = True
        else:
            self._write_response(500, [(b"content-type", b"text/plain; charset=utf-8")], b"Internal Server Error")
        self.transport.close()

    # -- the handshake ------------------------------------------------------------------------------------

    def _read_handshake(self) -> None:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buffer) > MAX_HANDSHAKE_BYTES:
                self._refuse_handshake(HandshakeError(431, "The handshake's headers are too large."))
            return
        request, self.buffer = bytes(self.buffer[:end]), self.buffer[end + 4 :]
        try:
            self.scope = self._handshake_scope(request)
        except HandshakeError as exc:
            self._refuse_handshake(exc)
            return
        self.inbox = collections.deque([{"type": "websocket.connect"}])
        task = self.loop.create_task(self._run_asgi())
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)

    def _handshake_scope(self, request: bytes) -> dict[str, Any]:
        lines = request.split(b"\r\n")
        parts = lines[0].split(b" ")
        if len(parts) != 3 or parts[0] != b"GET" or parts[2] != b"HTTP/1.1":
            raise HandshakeError(400, "A WebSocket handshake is a GET request over HTTP/1.1.")
        headers: list[tuple[bytes, bytes]] = []
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon:
                raise HandshakeError(400, "A header line has no colon.")
            headers.append((name.strip().lower(), value.strip()))
        fields = {name: value for name, value in headers}
        connection = {token.strip().lower() for token in fields.get(b"connection", b"").split(b",")}
        if fields.get(b"upgrade", b"").lower() != b"websocket" or b"upgrade" not in connection:
            raise HandshakeError(400, "A WebSocket handshake asks for Upgrade: websocket.")
        if fields.get(b"sec-websocket-version") != b"13":
            raise HandshakeError(426, "This server speaks WebSocket version 13.")
        key = fields.get(b"sec-websocket-key", b"")
        try:
            valid_key = len(base64.b64decode(key, validate=True)) == 16
        except ValueError:
            valid_key = False
        if not valid_key:
            raise HandshakeError(400, "Sec-WebSocket-Key is 16 bytes in base64.")
        target = parts[1].decode("latin-1")
        raw_path, _, query = target.partition("?")
        root_path = self.config.root_path
        subprotocols = fields.get(b"sec-websocket-protocol", b"").decode("latin-1")
        return {
            "type": "websocket",
            "asgi": {"version": self.config.asgi_version, "spec_version": "2.4"},
            "http_version": "1.1",
            "scheme": "wss" if is_ssl(self.transport) else "ws",
            "server": get_local_addr(self.transport),
            "client": get_remote_addr(self.transport),
            "root_path": root_path,
            "path": root_path + unquote(raw_path),
            "raw_path": root_path.encode("ascii") + raw_path.encode("latin-1"),
            "query_string": query.encode("latin-1"),
            "headers": headers,
            "subprotocols": [p.strip() for p in subprotocols.split(",") if p.strip()],
            "state": self.app_state.copy(),
            "extensions": {"websocket.http.response": {}},
        }

    def _refuse_handshake(self, exc: HandshakeError) -> None:
        headers = [(b"content-type", b"text/plain; charset=utf-8")]
        if exc.status == 426:
            headers.append((b"sec-websocket-version", b"13"))
        self._write_response(exc.status, headers, str(exc).encode())
        self.handshake_complete = self.close_sent = True
        self.transport.close()

    def _write_response(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        """A whole HTTP response that ends the connection (a refused handshake)."""
        self.transport.write(self._head(status, headers, length=len(body)) + body)

    def _head(self, status: int, headers: list[tuple[bytes, bytes]], length: int | None) -> bytes:
        lines = [f"HTTP/1.1 {status} {_reason(status)}".encode()]
        lines += [name + b": " + value for name, value in [*self.default_headers, *headers]]
        if length is not None:
            lines += [b"content-length: " + str(length).encode(), b"connection: close"]
        return b"\r\n".join(lines) + b"\r\n\r\n"

    # -- reading frames -----------------------------------------------------------------------------------

    def _read_frames(self) -> None:
        buffer = self.buffer
        while len(buffer) >= 2 and not self.read_paused and not self.transport.is_closing():
            first, second = buffer[0], buffer[1]
            fin, opcode, length, start = first & 0x80, first & 0x0F, second & 0x7F, 2
            if first & 0x70:
                raise FrameError(PROTOCOL_ERROR, "no extension was agreed: RSV bits must be 0")
            if not second & 0x80:
                raise FrameError(PROTOCOL_ERROR, "a client masks its frames")
            if length == 126:
                if len(buffer) < 4:
                    return
                length, start = int.from_bytes(buffer[2:4], "big"), 4
            elif length == 127:
                if len(buffer) < 10:
                    return
                length, start = int.from_bytes(buffer[2:10], "big"), 10
            if opcode >= CLOSE and (not fin or length > 125):
                raise FrameError(PROTOCOL_ERROR, "a control frame is final and at most 125 bytes")
            waiting = len(self.fragments) if self.fragments is not None else 0
            if waiting + length > self.config.ws_max_size:
                raise FrameError(TOO_BIG, f"a message is at most {self.config.ws_max_size} bytes")
            if len(buffer) < start + 4 + length:
                return
            payload = unmask(buffer[start + 4 : start + 4 + length], buffer[start : start + 4])
            del buffer[: start + 4 + length]
            self._on_frame(opcode, bool(fin), payload)

    def _on_frame(self, opcode: int, fin: bool, payload: bytes) -> None:
        if self.close_sent and opcode != CLOSE:
            return  # after our close, only the client's answering close matters
        if opcode in (TEXT, BINARY):
            if self.fragments is not None:
                raise FrameError(PROTOCOL_ERROR, "a new message began before the last one ended")
            if fin:
                self._on_message(opcode, payload)
            else:
                self.fragments, self.fragments_opcode = bytearray(payload), opcode
        elif opcode == CONTINUATION:
            if self.fragments is None:
                raise FrameError(PROTOCOL_ERROR, "a continuation frame with no message to continue")
            self.fragments += payload
            if fin:
                message, self.fragments = bytes(self.fragments), None
                self._on_message(self.fragments_opcode, message)
        elif opcode == CLOSE:
            self._on_close(payload)
        elif opcode == PING:
            self.transport.write(frame(PONG, payload))
        elif opcode == PONG:
            if payload == self.ping_payload:
                self.ping_payload = None
        else:
            raise FrameError(PROTOCOL_ERROR, f"unknown opcode {opcode}")

    def _on_message(self, opcode: int, payload: bytes) -> None:
        if opcode == TEXT:
            try:
                text = payload.decode()
            except UnicodeDecodeError:
                raise FrameError(INVALID_DATA, "a text message is UTF-8") from None
            self._deliver({"type": "websocket.receive", "text": text})
        else:
            self._deliver({"type": "websocket.receive", "bytes": payload})
        if self.inbox and not self.read_paused:
            self.read_paused = True  # resumed when the application has taken what waits
            self.transport.pause_reading()

    def _on_close(self, payload: bytes) -> None:
        if self.close_sent:
            self.transport.close()  # the client answered our close: done
            return
        code, reason = NO_STATUS, ""
        if len(payload) == 1:
            raise FrameError(PROTOCOL_ERROR, "a close frame's code is two bytes")
        if payload:
            code = int.from_bytes(payload[:2], "big")
            if code < 1000 or code in (1004, NO_STATUS, ABNORMAL, 1015) or 1015 < code < 3000 or code >= 5000:
                raise FrameError(PROTOCOL_ERROR, f"{code} is not a close code a client may send")
            try:
                reason = payload[2:].decode()
            except UnicodeDecodeError:
                raise FrameError(INVALID_DATA, "a close reason is UTF-8") from None
        self.transport.write(frame(CLOSE, payload[:2]))
        self.close_sent = True
        self._deliver({"type": "websocket.disconnect", "code": code, "reason": reason})
        self.transport.close()

    def _fail(self, code: int, reason: str) -> None:
        """The client broke the protocol: close at once with `code`, and tell the application."""
        if self.close_sent:
            self.transport.close()
            return
        if not self.transport.is_closing():
            self.transport.write(frame(CLOSE, close_payload(code, reason)))
            self.transport.close()
        self.close_sent = True
        self._deliver({"type": "websocket.disconnect", "code": code, "reason": reason})

    # -- keep-alive -----------------------------------------------------------------------------------------

    def _ping(self, payload: bytes) -> None:
        """Called each round by the `Pinger`: close a socket that left the last ping unanswered, else ping."""
        if self.close_sent or self.transport.is_closing():
            return
        if self.ping_payload is not None:
            self._fail(INTERNAL_ERROR, "keepalive ping timeout")
            return
        self.ping_payload = payload
        self.transport.write(frame(PING, payload))

    def _cancel_timers(self) -> None:
        Pinger.of(self.loop, self.config).discard(self)
        if self.close_timer is not None:
            self.close_timer.cancel()
            self.close_timer = None

    # -- ASGI -----------------------------------------------------------------------------------------------

    async def _run_asgi(self) -> None:
        try:
            await self.app(self.scope, self.receive, self.send)
        except ClientDisconnected:
            pass
        except BaseException:
            log.exception("Exception in ASGI application\n")
            if not self.handshake_complete:
                self._write_response(500, [(b"content-type", b"text/plain; charset=utf-8")], b"Internal Server Error")
        else:
            if not self.handshake_complete:
                log.error("ASGI callable returned without completing handshake.")
                self._write_response(500, [(b"content-type", b"text/plain; charset=utf-8")], b"Internal Server Error")
        if self.close_timer is None:
            self.transport.close()

    def _deliver(self, message: dict[str, Any]) -> None:
        """Hand a message to the application: to its waiting `receive`, or keep it until it asks."""
        if self.reader is not None and not self.reader.done():
            self.reader.set_result(message)
            self.reader = None
            return
        if self.inbox is None:
            self.inbox = collections.deque()
        self.inbox.append(message)

    async def receive(self) -> dict[str, Any]:
        """ASGI `receive`: the next message from the client, or its disconnect."""
        if self.inbox:
            message = self.inbox.popleft()
            if not self.inbox:
                self.inbox = None
                if self.read_paused:
                    self.read_paused = False
                    self.transport.resume_reading()
                    self._read_buffered_frames()
            return message
        if self.disconnected:
            return {"type": "websocket.disconnect", "code": ABNORMAL}
        self.reader = self.loop.create_future()
        try:
            return await self.reader
        finally:
            self.reader = None

    async def send(self, message: dict[str, Any]) -> None:
        """ASGI `send`: accept, refuse, send or close."""
        if not self.writable.is_set():
            await self.writable.wait()
        if self.disconnected:
            raise ClientDisconnected()
        kind = message["type"]
        if not self.handshake_complete:
            if kind == "websocket.accept":
                self._accept(message)
            elif kind == "websocket.close":
                self._refuse(403, [], b"")
            elif kind == "websocket.http.response.start":
                status = message["status"]
                if not 100 <= status < 600:
                    raise RuntimeError(f"Invalid HTTP status code '{status}' in response.")
                log.info('%s - "WebSocket %s" %d', self._client(), self.scope["path"], status)
                self.handshake_complete = self.response_started = True
                self.transport.write(self._head(status, list(message.get("headers", [])), length=None))
            else:
                raise RuntimeError(
                    "Expected ASGI message 'websocket.accept', 'websocket.close' "
                    f"or 'websocket.http.response.start' but got '{kind}'."
                )
        elif self.response_started:
            if kind != "websocket.http.response.body":
                raise RuntimeError(f"Expected ASGI message 'websocket.http.response.body' but got '{kind}'.")
            self.transport.write(message.get("body", b""))
            if not message.get("more_body", False):
                self._end_response()
        elif self.close_sent:
            raise RuntimeError(f"Unexpected ASGI message '{kind}', after sending 'websocket.close'.")
        elif kind == "websocket.send":
            data = message.get("bytes")
            if data is None:
                self.transport.write(frame(TEXT, message["text"].encode()))
            else:
                self.transport.write(frame(BINARY, data))
        elif kind == "websocket.close":
            code, reason = message.get("code") or 1000, message.get("reason") or ""
            self.transport.write(frame(CLOSE, close_payload(code, reason)))
            self.close_sent = True
            self._deliver({"type": "websocket.disconnect", "code": code, "reason": reason})
            if self.read_paused:  # the client's answering close frame must be read
                self.read_paused = False
                self.transport.resume_reading()
                self._read_buffered_frames()
            self.close_timer = self.loop.call_later(CLOSE_TIMEOUT_SECONDS, self.transport.close)
        else:
            raise RuntimeError(f"Expected ASGI message 'websocket.send' or 'websocket.close', but got '{kind}'.")

    def _accept(self, message: dict[str, Any]) -> None:
        fields = dict(self.scope["headers"])
        headers = [
            (b"upgrade", b"websocket"),
            (b"connection", b"Upgrade"),
            (b"sec-websocket-accept", accept_key(fields[b"sec-websocket-key"])),
        ]
        subprotocol = message.get("subprotocol")
        if subprotocol:
            headers.append((b"sec-websocket-protocol", subprotocol.encode()))
        headers += list(message.get("headers", []))
        log.info('%s - "WebSocket %s" [accepted]', self._client(), self.scope["path"])
        self.handshake_complete = True
        self.transport.write(self._head(101, headers, length=None))
        self.scope = {}  # the application has what it needs: an open socket keeps no copy of its handshake
        Pinger.of(self.loop, self.config).add(self)
        self._read_buffered_frames()  # frames that came with the handshake, if any

    def _refuse(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        log.info('%s - "WebSocket %s" %d', self._client(), self.scope["path"], status)
        self.handshake_complete = self.response_started = True
        self._write_response(status, headers, body)
        self._end_response()

    def _end_response(self) -> None:
        self.close_sent = True
        self._deliver({"type": "websocket.disconnect", "code": ABNORMAL})
        self.transport.close()

    def _client(self) -> str:
        client = self.scope.get("client")
        return f"{client[0]}:{client[1]}" if client else ""


class Pinger:
    """Pings every open socket of an event loop from one timer, instead of one timer per socket.

    Each round, every `ws_ping_interval` seconds, writes a ping to each open
    socket; a socket that has not answered the previous round's ping by then
    is closed with 1011. So a dead peer is noticed within one to two intervals
    (`ws_ping_timeout` is read as "at least one interval").
    """

    _by_loop: dict[asyncio.AbstractEventLoop, Pinger] = {}

    def __init__(self, loop: asyncio.AbstractEventLoop, interval: float | None) -> None:
        self.loop = loop
        self.interval = interval
        self.sockets: set[LeanWSProtocol] = set()
        self.rounds = 0
        self.timer: asyncio.TimerHandle | None = None

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop, config: Any) -> Pinger:
        """The loop's pinger (a loop runs one uvicorn server)."""
        pinger = cls._by_loop.get(loop)
        if pinger is None or pinger.interval != config.ws_ping_interval:
            pinger = cls._by_loop[loop] = cls(loop, config.ws_ping_interval)
        return pinger

    def add(self, socket: LeanWSProtocol) -> None:
        """Ping this socket from the next round on."""
        if not self.interval:
            return
        self.sockets.add(socket)
        if self.timer is None:
            self.timer = self.loop.call_later(self.interval, self._round)

    def discard(self, socket: LeanWSProtocol) -> None:
        """The socket is closing: no more pings."""
        self.sockets.discard(socket)
        if not self.sockets and self.timer is not None:
            self.timer.cancel()
            self.timer = None
            if Pinger._by_loop.get(self.loop) is self:
                del Pinger._by_loop[self.loop]

    def _round(self) -> None:
        self.rounds += 1
        payload = struct.pack("!I", self.rounds)
        for socket in list(self.sockets):
            socket._ping(payload)
        self.timer = self.loop.call_later(self.interval, self._round) if self.sockets and self.interval else None


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""
