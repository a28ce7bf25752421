"""The wait parameters every waiting request reads, and their limits, in one place.

`wait_for` + `timeout` (POST /v1/orders, GET /v1/orders/{id}), `If-None-Match`
+ `Prefer: wait=N` (GET), `Prefer: wait=N` (service calls). The FastAPI
routes declare them for validation and the OpenAPI document; the plain-ASGI
paths (views/long_poll.py, views/order_posts.py) read them with
`read_wait_query`, which takes only what is plainly valid and leaves any
doubt to FastAPI and its 422.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from stategate.app.orders import ORDER_STATES

from .problems import invalid

DEFAULT_WAIT_SECONDS = 10.0
MAX_WAIT_SECONDS = 60.0
MAX_WAIT_FOR_LENGTH = 64
PREFER_WAIT = re.compile(r"(?:^|[,;\s])wait\s*=\s*(\d+(?:\.\d+)?)")
SECONDS = re.compile(r"\d{1,6}(?:\.\d{1,6})?")


@dataclass(frozen=True, slots=True)
class WaitQuery:
    """`wait_for` (None when absent) and `timeout` (the default when absent) of one request."""

    states: frozenset[str] | None
    timeout: float


def wanted_states(wait_for: str | None) -> frozenset[str] | None:
    """The states in `wait_for`, or None without it; 422 for an unknown state."""
    if wait_for is None:
        return None
    states = frozenset(s.strip() for s in wait_for.split(",") if s.strip())
    unknown = states - set(ORDER_STATES)
    if not states or unknown:
        raise invalid([{"loc": ["query", "wait_for"], "msg": f"states are {', '.join(ORDER_STATES)}", "type": "enum"}])
    return states


def read_wait_query(query: Mapping[str, str]) -> WaitQuery | None:
    """`wait_for` and `timeout` when both are plainly valid (or absent); None otherwise."""
    wait_for, timeout = query.get("wait_for"), query.get("timeout")
    if wait_for is not None and len(wait_for) > MAX_WAIT_FOR_LENGTH:
        return None
    if timeout is not None and not SECONDS.fullmatch(timeout):
        return None
    try:
        states = wanted_states(wait_for)
    except Exception:
        return None
    seconds = DEFAULT_WAIT_SECONDS if timeout is None else float(timeout)
    if seconds > MAX_WAIT_SECONDS:
        return None
    return WaitQuery(states, seconds)


def entity_tags(header: str | None) -> frozenset[str]:
    """The entity tags listed in If-None-Match (weak ones compared as strong)."""
    if not header:
        return frozenset()
    return frozenset(tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip())


def prefer_wait(header: str | None, limit: float) -> float | None:
    """The seconds asked for by `Prefer: wait=N`, at most `limit`; None without it."""
    if not header:
        return None
    match = PREFER_WAIT.search(header)
    return None if match is None else min(float(match.group(1)), limit)
