"""Handing a reply over to the node that waits for it, on an internal, signed path.

A reply lands on the wrong node when its partition moved (a node joined or
left) or a service used another partitioner. The correlation id names the
waiting node by a tag of its advertised URL; the receiving node finds the
live member with that tag and POSTs the reply to its `/internal/replies`,
signed with the cluster secret (HMAC-SHA256 over the body) so that nothing
but a node of this cluster can inject replies.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from .http_answers import HOP_BY_HOP, NODE_HEADER

SIGNATURE_HEADER = "x-stategate-signature"
HANDOVER_PATH = "/internal/replies"


@dataclass(frozen=True, slots=True)
class ReplyPart:
    """One reply record: a whole reply, or one chunk of a streaming reply (`batch` "more" or "end")."""

    status: int
    content_type: str
    body: bytes
    batch: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    """The reply's other headers, passed on to the HTTP response (see `passed_on`)."""

    @property
    def ends(self) -> bool:
        """No more records follow this one for its request."""
        return self.batch != "more"


def node_tag(url: str) -> str:
    """The short tag of a node's advertised URL that its correlation ids begin with."""
    return hashlib.sha256(url.rstrip("/").encode()).hexdigest()[:8]


def tag_of(correlation_id: str) -> str:
    """The node tag a correlation id begins with ("" if it has none)."""
    tag, dash, _ = correlation_id.partition("-")
    return tag if dash and len(tag) == 8 else ""


NOT_PASSED_ON = HOP_BY_HOP | {"content-type", "batch", NODE_HEADER, "x-correlation-id"}


def passed_on(headers: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """The reply headers that go on to the HTTP response: not pseudo-headers, framing or the gateway's own."""
    return tuple(
        (name, text) for name, text in headers if not name.startswith(":") and name.lower() not in NOT_PASSED_ON
    )


def handover_body(correlation_id: str, part: ReplyPart) -> bytes:
    """The JSON body of a hand-over request."""
    return orjson.dumps(
        {
            "correlation_id": correlation_id,
            "status": part.status,
            "content_type": part.content_type,
            "batch": part.batch,
            "headers": part.headers,
            "body": base64.b64encode(part.body).decode(),
        }
    )


def read_handover(body: bytes) -> tuple[str, ReplyPart]:
    """The correlation id and reply part of a hand-over body; ValueError if malformed."""
    value: Any = orjson.loads(body)
    try:
        headers = tuple((str(name), str(text)) for name, text in value.get("headers", ()))
        part = ReplyPart(
            int(value["status"]),
            str(value["content_type"]),
            base64.b64decode(value["body"]),
            value.get("batch"),
            passed_on(headers),
        )
        return str(value["correlation_id"]), part
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError("not a hand-over") from exc


def sign(secret: str, body: bytes) -> str:
    """The hex HMAC-SHA256 of `body` under the cluster secret."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, signature: str | None) -> bool:
    """True when `signature` is the body's signature under a non-empty secret."""
    return bool(secret) and signature is not None and hmac.compare_digest(sign(secret, body), signature)
