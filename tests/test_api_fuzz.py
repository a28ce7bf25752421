"""Property-based fuzzing of a live node against its OpenAPI document (schemathesis).

Schemathesis generates valid and invalid requests for every operation of the
document, sends them to a real node (with the order services and a real
broker behind it) and checks each answer: never a 5xx, only documented
statuses, content types, bodies and headers, and no valid request refused.

The node runs in a namespace of its own: fuzzed stock levels and orders for
customers such as "0" must not reach the other tests' orders. Waits are
bounded (`before_call`) so that a run takes well under a minute.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from stategate.views.api import create_routes

from .conftest import System

Case = schemathesis.Case[Any]

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    positive_data_acceptance,
]
MAX_WAIT = 0.5
"""The longest wait a fuzzed request may ask for, so that every operation's examples take seconds, not minutes."""
SERVICE_WAIT = 5.0
"""The wait of a fuzzed service call: long enough for a live example service to answer, so never a 504."""
PREFER_WAIT = re.compile(r"wait\s*=\s*\d+(?:\.\d+)?")


@pytest.fixture(scope="module")
def fuzzed_node(kafka: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    with System(tmp_path_factory.mktemp("fuzz"), kafka, "fuzz") as running:
        yield running


# The document the node serves, built from the same routes without a node (the first test checks that the two
# are equal): schemathesis needs it when pytest collects the tests, before any fixture runs. (Its lazy loader,
# `schemathesis.pytest.from_fixture`, does not work with pytest 9.2: it sets `Function._nodeid`, which is gone.)
DOCUMENT = create_routes().openapi()
# `GET /v1/events` is an endless stream by design (a customer's stream stays open; one of orders that never
# come, too): a fuzzer's request would never end. Its input checks are tested in tests/test_live_cluster.py.
schema = schemathesis.openapi.from_dict(DOCUMENT).exclude(path="/v1/events")
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE], max_examples=25)


def bounded(case: Case, seconds: float) -> float:
    """The wait a fuzzed request may ask for on this operation."""
    return SERVICE_WAIT if case.operation.path.startswith("/v1/services/") else min(seconds, MAX_WAIT)


def seconds_in(value: Any) -> float | None:
    """A valid wait (0 to 60 seconds) as sent, or None for anything else, which is left as it is."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if 0 <= seconds <= 60 else None


@schemathesis.hook
def before_call(context: Any, case: Case, kwargs: dict[str, Any]) -> None:
    """Bounded waits, and one order id per request, in every phase of the run."""
    # A long-poll (or an event stream) on an unknown order waits its whole timeout before its 404.
    if case.query and (seconds := seconds_in(case.query.get("timeout"))) is not None:
        case.query["timeout"] = bounded(case, seconds)
    if case.operation.path.endswith("/events"):
        if "timeout" not in (case.query or {}):
            case.query = {**(case.query or {}), "timeout": MAX_WAIT}  # not the default 10 s
        # A usable Last-Event-ID resumes a stream, which then waits for the order's next version for as long as
        # the client stays: a fuzzer's request would never end (tests/test_live_cluster.py covers resuming).
        for name in [name for name in case.headers or {} if name.lower() == "last-event-id"]:
            del case.headers[name]
    for name, value in (case.headers or {}).items():
        if name.lower() == "prefer" and isinstance(value, str):
            case.headers[name] = PREFER_WAIT.sub(lambda _: f"wait={bounded(case, 60):g}", value)
    # A body `id` and an Idempotency-Key together are a 422 (documented with the header): not a valid request.
    if isinstance(case.body, dict) and "id" in case.body and case.headers:
        case.headers.pop("idempotency-key", None)


def test_the_node_serves_the_fuzzed_document(fuzzed_node: System) -> None:
    assert httpx.get(f"{fuzzed_node.url}/openapi.json", timeout=5).json() == DOCUMENT


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=10_000,  # milliseconds: one request, however slow the machine, takes far less
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    database=None,
)
@pytest.mark.timeout(170)
def test_the_node_keeps_its_documented_contract(case: Case, fuzzed_node: System) -> None:
    case.call_and_validate(base_url=fuzzed_node.url, checks=CHECKS, timeout=15)
