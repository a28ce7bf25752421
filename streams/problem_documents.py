"""Problem documents (RFC 9457, `application/problem+json`): the one builder.

The gateway answers every error with one (app/http_answers.py), and so does
a service built with the SDK (service_sdk.py), so a client reads the same
shape whichever of them answered.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import orjson

PROBLEM_JSON = "application/problem+json"

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
