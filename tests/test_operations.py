"""/healthz, /readyz, /metrics, the OpenAPI document and the node header."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from stategate.app.config import Settings
from stategate.app.node import Node
from stategate.views.api import create_api

from .conftest import System


def test_health_and_readiness(system: System) -> None:
    health = httpx.get(f"{system.url}/healthz", timeout=5)
    ready = httpx.get(f"{system.url}/readyz", timeout=5)
    assert health.status_code == ready.status_code == 200
    assert health.json() == {"status": "ok", "node": "node-1"}
    assert ready.json()["status"] == "ready"


def test_readiness_before_the_partitions_are_read_is_a_503_problem(tmp_path: Path) -> None:
    async def ask() -> httpx.Response:
        node = Node(Settings(data_dir=tmp_path))  # never started: not ready
        transport = httpx.ASGITransport(app=create_api(node))
        async with httpx.AsyncClient(transport=transport, base_url="http://node") as client:
            return await client.get("/readyz")

    response = asyncio.run(ask())
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["retry-after"]) > 0
    assert response.json()["status"] == 503


def test_metrics_count_requests_by_route(system: System) -> None:
    httpx.get(f"{system.url}/v1/orders/metrics-probe", timeout=5)
    text = httpx.get(f"{system.url}/metrics", timeout=5).text
    assert 'stategate_http_requests_total{method="GET",route="/v1/orders/{order_id}",status="404"}' in text
    assert "stategate_parked_requests " in text
    assert "stategate_http_request_seconds_bucket" in text


def test_openapi_documents_the_contract(system: System) -> None:
    spec = httpx.get(f"{system.url}/openapi.json", timeout=5).json()
    paths = spec["paths"]
    post = paths["/v1/orders"]["post"]
    get = paths["/v1/orders/{order_id}"]["get"]
    assert {"201", "202", "303", "413", "422", "503"} <= set(post["responses"])
    assert {"200", "202", "304", "307", "404", "422", "503"} <= set(get["responses"])
    assert "/v1/cluster" in paths
    assert set(post["requestBody"]["content"]["application/json"]["schema"]["required"]) == {
        "customer_id",
        "product",
        "quantity",
        "price",
    }
    assert "put" in paths["/v1/inventory/{product}"]
    assert {"/healthz", "/readyz", "/metrics"} <= set(paths)
    assert httpx.get(f"{system.url}/docs", timeout=5).status_code == 200


def test_every_answer_names_the_node_even_errors(system: System) -> None:
    too_large = httpx.post(f"{system.url}/v1/orders", content=b"x" * 70_000, timeout=5)
    not_found = httpx.get(f"{system.url}/nowhere", timeout=5)
    assert too_large.status_code == 413
    assert too_large.headers["x-stategate-node"] == not_found.headers["x-stategate-node"] == "node-1"
