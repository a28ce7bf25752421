"""`/v1/services/{service}/{path}`: request/response to any service behind a Kafka request topic.

The request becomes a record on the service's request topic; the answer is
the service's reply record (status, content type and body passed through),
or, for a streaming reply, its records as NDJSON lines as they come. 504 at
the timeout, 404 for an unknown service.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any
from urllib.parse import unquote_plus

from fastapi import APIRouter, Header, Path, Query, Request
from starlette.responses import Response, StreamingResponse

from stategate.app.errors import KafkaUnavailable, NodeStopping, TooManyCalls, UnknownService
from stategate.app.handover import ReplyPart
from stategate.app.node import Node
from stategate.app.service_calls import PendingCall

from .dependencies import NodeDep
from .disconnect import client_disconnect
from .input_limits import MAX_PREFER_LENGTH, MAX_SERVICE_LENGTH, MAX_SERVICE_PATH_LENGTH
from .openapi import MALFORMED, UNAVAILABLE, answer, header, problem_answer
from .problems import Problem, unavailable
from .wait_params import DEFAULT_WAIT_SECONDS, MAX_WAIT_SECONDS, prefer_wait

router = APIRouter(prefix="/v1/services", tags=["services"])

METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
NDJSON = "application/x-ndjson"
GATEWAY_PARAMETERS = frozenset({"timeout"})
"""Query parameters the gateway reads itself and does not pass on to the service."""


class StreamTimedOut(Exception):
    """The next record of a streaming reply did not come in time: the response is cut short."""


class StreamFailed(Exception):
    """The service ended a streaming reply with a 5xx: the response is cut short."""


CORRELATION_ID = {"X-Correlation-Id": header("The id that matched the service's reply to this request.")}
SERVICE_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: answer(
        "The service's reply: its content type, body and headers (`application/x-ndjson` when streamed).",
        media_type="*/*",
        headers=CORRELATION_ID,
    ),
    "default": answer(
        "The service's reply with another status, passed through as the service sent it (services built with"
        " stategate's SDK answer errors as `application/problem+json`, as the gateway does).",
        media_type="*/*",
        headers=CORRELATION_ID,
    ),
    404: problem_answer("No such service."),
    422: MALFORMED,
    503: UNAVAILABLE,
    504: problem_answer("No reply within the timeout."),
}
ServiceName = Annotated[str, Path(min_length=1, max_length=MAX_SERVICE_LENGTH, examples=["echo"])]
ServiceWait = Annotated[
    float | None,
    Query(
        gt=0,
        le=MAX_WAIT_SECONDS,
        description="Seconds to wait for the reply (default 10); the gateway's own, not passed to the service.",
    ),
]
PreferWait = Annotated[
    str | None,
    Header(
        max_length=MAX_PREFER_LENGTH, description="`wait=N`: seconds to wait for the reply, when no timeout is given."
    ),
]
ANY_BODY = {"requestBody": {"description": "Passed to the service as it is.", "content": {"*/*": {"schema": {}}}}}


async def call_service(
    request: Request,
    node: NodeDep,
    service: ServiceName,
    path: Annotated[str, Path(max_length=MAX_SERVICE_PATH_LENGTH, examples=["hello"])],
    timeout: ServiceWait = None,
    prefer: PreferWait = None,
) -> Response:
    """Write the request to the service's topic, park until its reply comes, answer with it."""
    wait = timeout if timeout is not None else (prefer_wait(prefer, MAX_WAIT_SECONDS) or DEFAULT_WAIT_SECONDS)
    return await call_and_answer(request, node, service, path, wait)


def service_query(query: str) -> str:
    """The query string without the gateway's own parameters, the rest byte for byte as the client sent it."""
    kept = [part for part in query.split("&") if part and unquote_plus(part.split("=", 1)[0]) not in GATEWAY_PARAMETERS]
    return "&".join(kept)


async def call_and_answer(request: Request, node: Node, service: str, path: str, wait: float) -> Response:
    """Everything a service call does once its parameters are read; shared with views/service_requests.py."""
    query = service_query(request.scope.get("query_string", b"").decode("latin-1"))
    service_path = "/" + path + (f"?{query}" if query else "")
    calls = node.service_calls
    try:
        call = await calls.send(
            service,
            request.method,
            service_path,
            request.headers.get("content-type", "application/octet-stream"),
            await request.body(),
        )
    except UnknownService:
        raise Problem(404, f"No service {service!r}.") from None
    except TooManyCalls:
        raise unavailable("Too many requests wait for services on this node.", _retry_after(node)) from None
    except NodeStopping:
        raise unavailable("This node is shutting down.", _retry_after(node)) from None
    except KafkaUnavailable as exc:
        node.metrics.commands_failed.inc()
        raise unavailable(str(exc), _retry_after(node)) from None

    try:
        async with client_disconnect(request) as gone:
            first = await _first_part(call, wait, gone)
            client_left = gone.done()
    except BaseException:
        calls.finish(call)
        raise
    if first is None:
        calls.finish(call)
        if client_left:
            return Response(status_code=204)  # nobody reads it
        node.metrics.service_timeouts.labels(service).inc()
        node.metrics.service_requests.labels(service, "504").inc()
        raise Problem(504, f"No reply from {service!r} within {wait:g}s.")
    if call.stopped:
        raise unavailable("This node shut down before the reply came.", _retry_after(node))
    node.metrics.service_seconds.labels(service).observe(time.perf_counter() - call.started)
    node.metrics.service_requests.labels(service, str(first.status)).inc()
    headers = {**dict(first.headers), "X-Correlation-Id": call.correlation_id}
    if first.ends:
        calls.finish(call)
        return Response(first.body, status_code=first.status, media_type=first.content_type, headers=headers)
    return StreamingResponse(
        _stream(node, call, first, wait), status_code=first.status, media_type=NDJSON, headers=headers
    )


async def call_service_root(
    request: Request,
    node: NodeDep,
    service: ServiceName,
    timeout: ServiceWait = None,
    prefer: PreferWait = None,
) -> Response:
    """The same, with an empty path (the service sees "/")."""
    return await call_service(request, node, service, "", timeout, prefer)


def _add_service_routes(path: str, endpoint: Callable[..., Awaitable[Response]]) -> None:
    """One route per method, so that each is an operation with an id of its own (`call_service_get`, ...)."""
    for method in METHODS:
        router.add_api_route(
            path,
            endpoint,
            methods=[method],
            name=f"{endpoint.__name__}_{method.lower()}",
            response_class=Response,
            summary="Send a request to a service over Kafka and answer with its reply",
            responses=SERVICE_ANSWERS,
            openapi_extra=ANY_BODY if method in ("POST", "PUT", "PATCH") else None,
        )


_add_service_routes("/{service}/{path:path}", call_service)
_add_service_routes("/{service}", call_service_root)


CLIENT_LEFT = ReplyPart(499, "text/plain", b"")
"""Put in a call's queue when its client leaves while it waits for the first reply record."""


async def _first_part(call: PendingCall, wait: float, gone: asyncio.Future[None]) -> ReplyPart | None:
    """The first reply record; None at the timeout or when the client leaves first."""

    def client_left(_: asyncio.Future[None]) -> None:
        call.parts.put_nowait(CLIENT_LEFT)

    gone.add_done_callback(client_left)
    try:
        part = await call.next_part(wait)
    finally:
        gone.remove_done_callback(client_left)
    return None if part is CLIENT_LEFT else part


async def _stream(node: Node, call: PendingCall, first: ReplyPart, wait: float) -> AsyncIterator[bytes]:
    """The records of a streaming reply as NDJSON lines; at most `wait` seconds between two."""
    part: ReplyPart | None = first
    try:
        while part is not None:
            if part.body:
                yield part.body if part.body.endswith(b"\n") else part.body + b"\n"
            if part.ends:
                if part.status >= 500 and part is not first:
                    raise StreamFailed(f"{call.service!r} failed in the middle of a streaming reply")
                return
            part = await call.next_part(wait)
        node.metrics.service_timeouts.labels(call.service).inc()
        raise StreamTimedOut(f"no record from {call.service!r} within {wait:g}s")  # cut short: not a whole reply
    finally:
        node.service_calls.finish(call)


def _retry_after(node: Node) -> int:
    return node.settings.retry_after_seconds
