"""The OpenAPI document: valid OpenAPI 3.1, unique operation ids, every answer documented.

Served by the node's FastAPI app (`create_routes`), without Kafka or a node:
the document depends on the routes only (tests/test_api_fuzz.py checks that
a live node serves the same one).
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Iterator
from typing import Any, get_args

import httpx
import orjson
import pytest
from openapi_schema_validator import OAS31Validator
from openapi_schema_validator import validate as validate_body
from openapi_spec_validator import OpenAPIV31SpecValidator

from stategate.app.http_answers import PROBLEM_JSON, problem_document
from stategate.streams.records import ORDER_STATES, Order
from stategate.views.api import create_routes
from stategate.views.openapi import OrderState

Operation = tuple[str, str, dict[str, Any]]


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    """The document as the node serves it at /openapi.json; any warning while it is built fails the test."""

    async def fetch() -> httpx.Response:
        transport = httpx.ASGITransport(app=create_routes())
        async with httpx.AsyncClient(transport=transport, base_url="http://node") as client:
            return await client.get("/openapi.json")

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # FastAPI warns about duplicate operation ids
        response = asyncio.run(fetch())
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def operations(spec: dict[str, Any]) -> Iterator[Operation]:
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            yield method.upper(), path, operation


def schema_of(spec: dict[str, Any], name: str) -> dict[str, Any]:
    """A component schema, with the components beside it so that its `$ref`s resolve."""
    return {"$ref": f"#/components/schemas/{name}", "components": spec["components"]}


def test_the_document_is_valid_openapi_3_1(spec: dict[str, Any]) -> None:
    assert spec["openapi"].startswith("3.1.")
    errors = [error.message for error in OpenAPIV31SpecValidator(spec).iter_errors()]
    assert errors == []


def test_every_operation_has_an_id_of_its_own(spec: dict[str, Any]) -> None:
    ids = [operation["operationId"] for _, _, operation in operations(spec)]
    assert len(ids) == len(set(ids)), ids
    assert {"place_order", "get_order", "put_stock", "call_service_post", "healthz"} <= set(ids)


def test_internal_endpoints_stay_out_of_the_public_document(spec: dict[str, Any]) -> None:
    assert not [path for path in spec["paths"] if path.startswith("/internal")]


def test_every_error_is_a_problem_document(spec: dict[str, Any]) -> None:
    for method, path, operation in operations(spec):
        for status, response in operation["responses"].items():
            if status != "default" and int(status) >= 400:
                content = response.get("content", {})
                assert list(content) == [PROBLEM_JSON], (method, path, status)
                assert content[PROBLEM_JSON]["schema"] == {"$ref": "#/components/schemas/Problem"}


def test_every_response_is_documented_with_its_content_and_headers(spec: dict[str, Any]) -> None:
    for method, path, operation in operations(spec):
        for status, response in operation["responses"].items():
            where = (method, path, status)
            assert response["description"], where
            if status not in ("204", "303", "304", "307"):
                assert response.get("content"), where  # 204, redirects and 304 have no body
            for content in response.get("content", {}).values():
                assert "schema" in content, where
            headers = response["headers"]
            assert headers["X-Stategate-Node"]["required"] is True, where
            for name, documented in headers.items():
                assert documented["schema"]["type"] in ("string", "integer"), (*where, name)


def test_orders_answer_with_the_headers_of_the_contract(spec: dict[str, Any]) -> None:
    post = spec["paths"]["/v1/orders"]["post"]["responses"]
    get = spec["paths"]["/v1/orders/{order_id}"]["get"]["responses"]
    delete = spec["paths"]["/v1/orders/{order_id}"]["delete"]["responses"]
    assert {"201", "202", "303", "410", "413", "414", "422", "431", "503"} == set(post)
    assert {"200", "202", "304", "307", "404", "413", "414", "422", "431", "503"} == set(get)
    assert {"202", "204", "307", "404", "413", "414", "422", "431", "503"} == set(delete)
    assert delete["307"]["headers"]["Location"]["required"] is True
    for response in (post["201"], post["202"], post["303"], get["307"]):
        assert response["headers"]["Location"]["required"] is True
    for response in (post["201"], post["202"], get["200"], get["202"], get["304"]):
        assert response["headers"]["ETag"]["required"] is True
    for response in (get["202"], post["503"], get["503"]):
        assert response["headers"]["Retry-After"] == {
            "description": "Seconds to wait before asking again.",
            "required": True,
            "schema": {"type": "integer"},
        }
    assert "Preference-Applied" in get["304"]["headers"]


def test_wait_for_is_a_comma_separated_list_of_order_states(spec: dict[str, Any]) -> None:
    for path, method in (("/v1/orders", "post"), ("/v1/orders/{order_id}", "get")):
        [wait_for] = [p for p in spec["paths"][path][method]["parameters"] if p["name"] == "wait_for"]
        assert (wait_for["in"], wait_for["style"], wait_for["explode"]) == ("query", "form", False)
        assert wait_for["schema"]["items"]["enum"] == list(ORDER_STATES)
    assert get_args(OrderState) == ORDER_STATES


def test_an_order_as_answered_matches_the_order_schema(spec: dict[str, Any]) -> None:
    order = Order("o-1", "c1", "JUMPERS", 2, 9.5, "VALIDATED", 2, {"FRAUD_CHECK": "PASS"}, "2026-01-01T00:00:00.000Z")
    validate_body(orjson.loads(order.to_json()), schema_of(spec, "Order"), cls=OAS31Validator)
    bare = Order("plain-1", "", "", 0, 0.0)  # as another producer may write it: no timestamps
    validate_body(orjson.loads(bare.to_json()), schema_of(spec, "Order"), cls=OAS31Validator)


def test_a_problem_as_answered_matches_the_problem_schema(spec: dict[str, Any]) -> None:
    errors = [{"loc": ["body", "quantity"], "msg": "too small", "type": "greater_than_equal"}]
    for document in (problem_document(503, detail="Kafka is away."), problem_document(422, errors=errors)):
        validate_body(orjson.loads(document), schema_of(spec, "Problem"), cls=OAS31Validator)
