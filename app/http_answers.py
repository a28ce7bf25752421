"""The pieces every HTTP answer of a node is built from, in one place.

A problem document (RFC 9457, `application/problem+json`), the
`Retry-After` header, the node header, and the hop-by-hop headers that never
pass between a client, a node and a service. The FastAPI routes, the plain
ASGI paths and the lean HTTP protocol all build their answers from these.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import orjson

PROBLEM_JSON = "application/problem+json"
NODE_HEADER = "x-stategate-node"
"""Names the node that answered, on every response."""

HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "host",
     "content-length"}
)  # fmt: skip
"""Headers about one connection (RFC 9110 §7.6.1, plus framing): never forwarded."""


# RFC 9110's names where Python 3.11's `http.HTTPStatus` still has the older ones.
RFC_9110_TITLES = {413: "Content Too Large", 414: "URI Too Long", 422: "Unprocessable Content"}


def title_of(status: int) -> str:
    """The standard reason phrase of a status code (`Service Unavailable`)."""
    try:
        return RFC_9110_TITLES.get(status) or HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def problem_document(status: int, title: str | None = None, detail: str | None = None, **extra: Any) -> bytes:
    """A problem document as JSON bytes; `title` defaults to the status's reason phrase."""
    body: dict[str, Any] = {"type": "about:blank", "title": title or title_of(status), "status": status}
    if detail:
        body["detail"] = detail
    body.update(extra)
    return orjson.dumps(body)


def retry_after(seconds: int) -> dict[str, str]:
    """The `Retry-After` header that goes with a 202 or a 503: when to ask again."""
    return {"Retry-After": str(seconds)}
