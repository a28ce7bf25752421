"""The pieces every HTTP answer of a node is built from, in one place.

A problem document (RFC 9457, `application/problem+json`, built in
streams/problem_documents.py, which the service SDK shares), the
`Retry-After` header, the node header, and the hop-by-hop headers that never
pass between a client, a node and a service. The FastAPI routes, the plain
ASGI paths and the lean HTTP protocol all build their answers from these.
"""

from __future__ import annotations

from stategate.streams.problem_documents import PROBLEM_JSON, problem_document, title_of

__all__ = ["HOP_BY_HOP", "NODE_HEADER", "PROBLEM_JSON", "problem_document", "retry_after", "title_of"]

NODE_HEADER = "x-stategate-node"
"""Names the node that answered, on every response."""

HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "host",
     "content-length"}
)  # fmt: skip
"""Headers about one connection (RFC 9110 §7.6.1, plus framing): never forwarded."""


def retry_after(seconds: int) -> dict[str, str]:
    """The `Retry-After` header that goes with a 202 or a 503: when to ask again."""
    return {"Retry-After": str(seconds)}
