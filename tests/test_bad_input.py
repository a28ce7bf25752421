"""Malformed input gets a clear problem+json 4xx, never a 5xx."""

from __future__ import annotations

import httpx
import pytest

from .conftest import System

GOOD = {"customer_id": "c1", "product": "JUMPERS", "quantity": 1, "price": 1.0}

BAD_BODIES: list[tuple[str, object]] = [
    ("not json", b"{nope"),
    ("empty body", b""),
    ("json array", [1, 2]),
    ("json string", "order"),
    ("missing customer_id", {k: v for k, v in GOOD.items() if k != "customer_id"}),
    ("missing quantity", {k: v for k, v in GOOD.items() if k != "quantity"}),
    ("quantity zero", {**GOOD, "quantity": 0}),
    ("quantity negative", {**GOOD, "quantity": -3}),
    ("quantity fractional", {**GOOD, "quantity": 1.5}),
    ("quantity as string", {**GOOD, "quantity": "2"}),
    ("quantity huge", {**GOOD, "quantity": 10**30}),
    ("price zero", {**GOOD, "price": 0}),
    ("price negative", {**GOOD, "price": -1.0}),
    ("price as string", {**GOOD, "price": "9.5"}),
    ("price boolean", {**GOOD, "price": True}),
    ("product empty", {**GOOD, "product": ""}),
    ("product blank", {**GOOD, "product": "   "}),
    ("product too long", {**GOOD, "product": "x" * 65}),
    ("customer not a string", {**GOOD, "customer_id": 7}),
    ("customer null", {**GOOD, "customer_id": None}),
    ("unknown field", {**GOOD, "colour": "red"}),
    ("id with a slash", {**GOOD, "id": "a/b"}),
    ("id too long", {**GOOD, "id": "a" * 65}),
]


@pytest.mark.parametrize(("case", "body"), BAD_BODIES, ids=[c for c, _ in BAD_BODIES])
def test_malformed_order_body_is_422_problem(system: System, case: str, body: object) -> None:
    kwargs = {"content": body} if isinstance(body, bytes) else {"json": body}
    response = httpx.post(f"{system.url}/v1/orders", timeout=10, **kwargs)  # type: ignore[arg-type]

    assert response.status_code == 422, (case, response.text)
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 422
    assert problem["errors"]


BAD_QUERIES = [
    {"wait_for": "SHIPPED"},
    {"wait_for": ""},
    {"wait_for": "VALIDATED,NOPE"},
    {"timeout": "-1"},
    {"timeout": "61"},
    {"timeout": "soon"},
    {"timeout": "nan"},
    {"timeout": "inf"},
]


@pytest.mark.parametrize("params", BAD_QUERIES, ids=[str(q) for q in BAD_QUERIES])
def test_malformed_wait_parameters_are_422(system: System, params: dict[str, str]) -> None:
    post = httpx.post(f"{system.url}/v1/orders", params={"wait_for": "VALIDATED", **params}, json=GOOD, timeout=10)
    get = httpx.get(f"{system.url}/v1/orders/some-id", params={"wait_for": "VALIDATED", **params}, timeout=10)
    assert post.status_code == 422, post.text
    assert get.status_code == 422, get.text
    assert post.headers["content-type"] == get.headers["content-type"] == "application/problem+json"


def test_body_over_64_kib_is_413(system: System) -> None:
    body = b'{"customer_id": "' + b"x" * 70_000 + b'"}'
    response = httpx.post(f"{system.url}/v1/orders", content=body, timeout=10)
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"


def test_chunked_body_over_64_kib_is_413(system: System) -> None:
    def chunks():  # no Content-Length: the limit is counted while reading
        for _ in range(20):
            yield b"x" * 4096

    response = httpx.post(f"{system.url}/v1/orders", content=chunks(), timeout=10)
    assert response.status_code == 413


def test_oversized_idempotency_key_is_422(system: System) -> None:
    response = httpx.post(f"{system.url}/v1/orders", json=GOOD, headers={"Idempotency-Key": "k" * 256}, timeout=10)
    assert response.status_code == 422


def test_overlong_order_id_in_path_is_422(system: System) -> None:
    response = httpx.get(f"{system.url}/v1/orders/{'a' * 65}", timeout=10)
    assert response.status_code == 422


def test_whole_number_floats_are_integers(system: System, product: str) -> None:
    """JSON does not tell 2.0 from 2, and JSON Schema's `integer` takes both (found by the API fuzzer)."""
    placed = httpx.post(f"{system.url}/v1/orders", json={**GOOD, "quantity": 2.0}, timeout=10)
    stocked = httpx.put(f"{system.url}/v1/inventory/{product}", json={"stock": 7.0}, timeout=10)
    assert placed.status_code == 202, placed.text
    assert placed.json()["quantity"] == 2
    assert stocked.status_code == 200, stocked.text
    assert stocked.json() == {"product": product, "stock": 7}


@pytest.mark.parametrize("body", [{"stock": -1}, {"stock": "5"}, {"stock": 1.5}, {}, {"stock": 1, "x": 2}])
def test_malformed_stock_is_422(system: System, body: dict[str, object]) -> None:
    response = httpx.put(f"{system.url}/v1/inventory/JUMPERS", json=body, timeout=10)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


def test_unknown_route_is_404_problem(system: System) -> None:
    response = httpx.get(f"{system.url}/v1/nothing-here", timeout=10)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


def test_wrong_method_is_405_problem(system: System) -> None:
    response = httpx.patch(f"{system.url}/v1/orders", timeout=10)
    assert response.status_code == 405
    assert response.headers["content-type"] == "application/problem+json"
