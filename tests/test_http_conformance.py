"""HTTP as clients nobody here wrote expect it: HEAD, no redirect built from Host, refused
requests as problem+json from the node, CORS only when asked for."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .conftest import System


@pytest.fixture(scope="module")
def order_url(system: System, product: str, customer: str) -> str:
    body = {"customer_id": customer, "product": product, "quantity": 1, "price": 1.0}
    placed = httpx.post(f"{system.url}/v1/orders", json=body, timeout=10)
    assert placed.status_code == 202, placed.text
    url = f"{system.url}{placed.headers['location']}"
    assert httpx.get(url, params={"wait_for": "CREATED,VALIDATED,FAILED"}, timeout=15).status_code == 200
    return url


@pytest.fixture(scope="module")
def product() -> str:
    return "HEAD-PRODUCT"


@pytest.fixture(scope="module")
def customer() -> str:
    return "head-customer"


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/v1/cluster", "/openapi.json", "ORDER"])
def test_every_get_route_answers_head_without_a_body(system: System, order_url: str, path: str) -> None:
    url = order_url if path == "ORDER" else system.url + path
    got, head = httpx.get(url, timeout=10), httpx.head(url, timeout=10)
    assert head.status_code == got.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"] == got.headers["content-type"]
    assert head.headers["x-stategate-node"] == got.headers["x-stategate-node"]
    assert head.headers.get("etag") == got.headers.get("etag")


@pytest.mark.parametrize("path", ["/v1/orders/", "/v1/cluster/", "/healthz/"])
def test_no_location_is_taken_from_the_host_or_forwarded_headers(system: System, path: str) -> None:
    headers = {"Host": "evil.example.com", "X-Forwarded-Host": "evil.example.com", "X-Forwarded-Proto": "https"}
    answer = httpx.get(system.url + path, headers=headers, timeout=10)
    assert "evil" not in answer.headers.get("location", "")
    assert answer.status_code == 404
    assert answer.headers["content-type"] == "application/problem+json"


def test_an_over_long_url_is_414_problem_json_from_the_node(system: System) -> None:
    answer = httpx.get(f"{system.url}/v1/orders/{'x' * 9000}", timeout=10)
    assert answer.status_code == 414
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["x-stategate-node"] == "node-1"


def test_over_long_headers_are_431_problem_json_from_the_node(system: System) -> None:
    answer = httpx.get(f"{system.url}/healthz", headers={"X-Padding": "p" * 20_000}, timeout=10)
    assert answer.status_code == 431
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["x-stategate-node"] == "node-1"


PREFLIGHT = {"Origin": "https://shop.example", "Access-Control-Request-Method": "POST"}


def test_cors_is_off_by_default(system: System) -> None:
    preflight = httpx.options(f"{system.url}/v1/orders", headers=PREFLIGHT, timeout=10)
    simple = httpx.get(f"{system.url}/healthz", headers={"Origin": "https://shop.example"}, timeout=10)
    assert "access-control-allow-origin" not in preflight.headers
    assert "access-control-allow-origin" not in simple.headers


@pytest.fixture()
def cors_node(kafka: str, tmp_path: Path) -> Iterator[System]:
    with System(tmp_path, kafka, "cors", services=False, STATEGATE_CORS_ORIGINS="https://shop.example") as running:
        yield running


def test_cors_allows_only_the_listed_origins(cors_node: System) -> None:
    preflight = httpx.options(f"{cors_node.url}/v1/orders", headers=PREFLIGHT, timeout=10)
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://shop.example"
    read = httpx.get(f"{cors_node.url}/healthz", headers={"Origin": "https://shop.example"}, timeout=10)
    assert read.headers["access-control-allow-origin"] == "https://shop.example"
    assert "x-stategate-node" in read.headers["access-control-expose-headers"].lower()
    other = httpx.options(f"{cors_node.url}/v1/orders", headers={**PREFLIGHT, "Origin": "https://evil.example"})
    assert other.status_code == 400
    assert "access-control-allow-origin" not in other.headers


@pytest.mark.parametrize("raw_id", ["%FF", "%EF%BF%BD", "a%00b", "%20x"])
def test_an_order_id_that_cannot_exist_is_422_and_never_another_id(system: System, raw_id: str) -> None:
    for params in ({}, {"wait_for": "VALIDATED", "timeout": "1"}):
        answer = httpx.get(f"{system.url}/v1/orders/{raw_id}", params=params, timeout=10)
        assert answer.status_code == 422, (raw_id, params, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("field", ["customer_id", "product"])
@pytest.mark.parametrize("text", ["a\x00b", "line\nbreak", "\x1b[31mred"])
def test_control_characters_in_an_order_are_422(system: System, field: str, text: str) -> None:
    body = {"customer_id": "c", "product": "p", "quantity": 1, "price": 1.0, field: text}
    answer = httpx.post(f"{system.url}/v1/orders", json=body, timeout=10)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
