"""Write a request/response service behind the gateway in a few lines.

    orders = Service(app, "orders", "orders-requests")

    @orders.handler
    async def handle(request: ServiceRequest) -> Reply:
        return Reply(200, {"id": request.segments[0]})

The decorator turns the handler into a Faust agent on the request topic. The
topic contract, which services in any language can follow:

- Request record: headers `:method`, `:path` (the path after
  `/v1/services/{service}`, with its query string, always starting with `/`),
  `content-type`, `correlation-id`, `reply-to`; value = the HTTP body; key =
  the first path segment (the correlation id when the path is empty).
- Reply record, on the `reply-to` topic: key = the correlation id, default
  partitioner; headers `:status` and `content-type` (plus the reply's own
  headers); value = the body. A streaming reply is one record per chunk with
  header `batch: more` (value = one JSON document), then a record with
  `batch: end` and an empty value.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote

import faust
import orjson
from faust.types import StreamT, TopicT

from .problem_documents import PROBLEM_JSON, problem_document, title_of

REPLY_TIMEOUT_SECONDS = 10.0
JSON = "application/json"
NDJSON = "application/x-ndjson"

Chunks = AsyncIterator[Any]
Handler = Callable[["ServiceRequest"], Awaitable["Reply | Chunks"] | Chunks]
H = TypeVar("H", bound=Handler)

log = logging.getLogger("stategate.streams.service_sdk")


class UnanswerableRequest(ValueError):
    """A request record without `correlation-id` or `reply-to`: nobody to reply to."""


@dataclass(frozen=True)
class ServiceRequest:
    """One HTTP request, as the gateway wrote it to the service's request topic."""

    method: str
    target: str  # the `:path` header as received: path and query string
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # the record's other headers, names in lower case
    body: bytes
    correlation_id: str
    reply_to: str
    key: bytes

    @classmethod
    def from_record(cls, headers: Mapping[str, bytes | None], value: bytes | None, key: bytes | None) -> ServiceRequest:
        """Read a request record; raise UnanswerableRequest when it says nowhere to reply."""
        text = {name.lower(): (raw or b"").decode("utf-8", errors="replace") for name, raw in headers.items()}
        correlation_id, reply_to = text.get("correlation-id", ""), text.get("reply-to", "")
        if not correlation_id or not reply_to:
            raise UnanswerableRequest("the record has no correlation-id or reply-to header")
        target = text.get(":path") or "/"
        if not target.startswith("/"):
            target = "/" + target
        path, _, query_string = target.partition("?")
        return cls(
            method=text.get(":method", "").upper(),
            target=target,
            path=path,
            query=dict(parse_qsl(query_string, keep_blank_values=True)),
            headers={name: v for name, v in text.items() if not name.startswith(":")},
            body=value or b"",
            correlation_id=correlation_id,
            reply_to=reply_to,
            key=key or b"",
        )

    @property
    def segments(self) -> tuple[str, ...]:
        """The path's segments, as sent: `/42/items` is `("42", "items")`."""
        inner = self.path.strip("/")
        return tuple(inner.split("/")) if inner else ()

    def json(self) -> Any:
        """The body parsed as JSON; a 422 reply when it is not JSON."""
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError:
            raise ServiceError(422, "The body is not JSON.") from None


@dataclass
class Reply:
    """A single reply. `body` is bytes or text as is, or any value sent as JSON."""

    status: int = 200
    body: Any = b""
    content_type: str = JSON
    headers: dict[str, str] = field(default_factory=dict)

    def body_bytes(self) -> bytes:
        """The body as the record's value."""
        return encode(self.body)


class ServiceError(Exception):
    """Raise in a handler to reply with a problem document (RFC 9457)."""

    def __init__(self, status: int, detail: str | None = None, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail or title_of(status))
        self.status = status
        self.detail = detail
        self.headers = dict(headers or {})

    def reply(self) -> Reply:
        """The problem reply."""
        return problem(self.status, self.detail, self.headers)


def read_key(request: ServiceRequest, where: str) -> str:
    """The one key of a `GET /{key}` request, URL-decoded; a 405 reply for another method, 404 for another path.

    `where` tells a client what lives there: `/{product}`.
    """
    if request.method != "GET":
        raise ServiceError(405, headers={"allow": "GET"})
    if len(request.segments) != 1:
        raise ServiceError(404, f"Read {where}.")
    return unquote(request.segments[0])


def problem(status: int, detail: str | None = None, headers: Mapping[str, str] | None = None) -> Reply:
    """An `application/problem+json` reply."""
    return Reply(status, problem_document(status, detail=detail), PROBLEM_JSON, dict(headers or {}))


def encode(body: Any) -> bytes:
    """Bytes as they are, text as UTF-8, anything else as JSON."""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    return orjson.dumps(body)


class Service:
    """A request/response service: one Faust agent on the service's request topic.

    `topic` is a Faust topic, or a topic name (used as is: apply any namespace
    before). The handler takes a `ServiceRequest` and returns a `Reply`, or an
    async iterator of chunks (e.g. it is an async generator) for a streaming
    reply. `concurrency` above 1 handles requests in parallel, at the cost of
    the per-key ordering that read-modify-write on a table relies on.
    """

    def __init__(
        self,
        app: faust.App,
        name: str,
        topic: TopicT | str,
        *,
        concurrency: int = 1,
        reply_timeout: float = REPLY_TIMEOUT_SECONDS,
    ) -> None:
        self.app = app
        self.name = name
        self.topic = app.topic(topic, key_serializer="raw", value_serializer="raw") if isinstance(topic, str) else topic
        self.concurrency = concurrency
        self.reply_timeout = reply_timeout

    def handler(self, handle: H) -> H:
        """Register `handle` as this service's handler; returns it unchanged."""

        async def agent(stream: StreamT[bytes]) -> None:
            async for event in stream.events():
                try:
                    request = ServiceRequest.from_record(event.headers, event.value, event.key)
                except UnanswerableRequest as exc:
                    log.warning("skipping request", extra={"service": self.name, "error": str(exc)})
                    continue
                await self.answer(request, handle)

        self.app.agent(self.topic, name=f"{self.name}-service", concurrency=self.concurrency)(agent)
        return handle

    async def answer(self, request: ServiceRequest, handle: Handler) -> None:
        """Run the handler on one request and send its reply; never raises."""
        log.debug("request", extra={"service": self.name, "method": request.method, "path": request.target})
        if not request.method:
            await self._send_reply(request, problem(400, "The request record has no :method header."))
            return
        outcome: Reply | Chunks
        try:
            called = handle(request)
            outcome = called if isinstance(called, AsyncIterator) else await called
        except ServiceError as exc:
            outcome = exc.reply()
        except Exception:
            log.exception("handler failed", extra={"service": self.name, "path": request.target})
            outcome = problem(500)
        if isinstance(outcome, Reply):
            await self._send_reply(request, outcome)
        else:
            await self._send_stream(request, outcome)

    async def _send_reply(self, request: ServiceRequest, reply: Reply) -> None:
        try:
            headers = {**reply.headers, "content-type": reply.content_type}
            await self._produce(request, reply.status, headers, reply.body_bytes())
        except Exception as exc:
            self._lost(request, exc)

    async def _send_stream(self, request: ServiceRequest, chunks: Chunks) -> None:
        """One `batch: more` record per chunk, then `batch: end`.

        A handler that fails before its first chunk gets a single problem
        reply; once chunks are out the status is sent, so a later failure
        ends the stream early with `:status: 500` on its `batch: end` record.
        """
        sent = []
        status = 200
        try:
            async for chunk in chunks:
                more = {"content-type": NDJSON, "batch": "more"}
                sent.append(await self._enqueue(request, 200, more, encode(chunk)))
        except Exception as exc:
            if not sent:
                failure = exc.reply() if isinstance(exc, ServiceError) else problem(500)
                if failure.status == 500:
                    log.exception("handler failed", extra={"service": self.name, "path": request.target})
                await self._send_reply(request, failure)
                return
            log.exception("stream failed", extra={"service": self.name, "path": request.target, "sent": len(sent)})
            status = 500
        try:
            end = {"content-type": NDJSON, "batch": "end"}
            sent.append(await self._enqueue(request, status, end, b""))
            async with asyncio.timeout(self.reply_timeout):
                await asyncio.gather(*sent)
        except Exception as exc:
            self._lost(request, exc)

    async def _produce(self, request: ServiceRequest, status: int, headers: dict[str, str], value: bytes) -> None:
        # The acknowledgement is not awaited here: the agent takes the next
        # request while Kafka acknowledges this reply (waiting would cap a
        # service at one reply per broker round trip). A reply Kafka refuses
        # is logged; its client gets a 504.
        acknowledged = asyncio.ensure_future(await self._enqueue(request, status, headers, value))
        acknowledged.add_done_callback(lambda done: self._check(request, done))

    def _check(self, request: ServiceRequest, acknowledged: asyncio.Future[Any]) -> None:
        if not acknowledged.cancelled() and acknowledged.exception() is not None:
            self._lost(request, acknowledged.exception() or Exception("not acknowledged"))

    async def _enqueue(
        self, request: ServiceRequest, status: int, headers: dict[str, str], value: bytes
    ) -> Awaitable[Any]:
        """Hand one reply record to the producer; returns its acknowledgement."""
        record_headers = [(":status", str(status).encode())]
        record_headers += [(name, text.encode()) for name, text in headers.items()]
        # partition=None: the producer's default (murmur2) partitioner picks the
        # partition of the correlation id, which the gateway chose for this node.
        async with asyncio.timeout(self.reply_timeout):
            return await self.app.producer.send(
                request.reply_to, request.correlation_id.encode(), value, None, None, record_headers
            )

    def _lost(self, request: ServiceRequest, exc: BaseException) -> None:
        log.warning(
            "reply not sent",
            extra={"service": self.name, "reply_to": request.reply_to, "error": repr(exc)},
        )


__all__ = ["Handler", "Reply", "Service", "ServiceError", "ServiceRequest", "UnanswerableRequest", "problem"]
