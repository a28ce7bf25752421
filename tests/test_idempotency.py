"""The same Idempotency-Key, or the same client id, never makes a second order."""

from __future__ import annotations

import asyncio
import uuid

import httpx

from .conftest import System


def body(product: str, customer: str, **extra: object) -> dict[str, object]:
    return {"customer_id": customer, "product": product, "quantity": 1, "price": 3.0, **extra}


def test_same_idempotency_key_answers_with_the_first_order(system: System, product: str, customer: str) -> None:
    system.stock(product, 1)  # room for one order only: a second order would FAIL inventory
    key = {"Idempotency-Key": uuid.uuid4().hex}
    url = f"{system.url}/v1/orders?wait_for=VALIDATED"

    first = httpx.post(url, json=body(product, customer), headers=key, timeout=30)
    again = httpx.post(url, json=body(product, customer), headers=key, timeout=30)

    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["state"] == "VALIDATED"
    assert again.json()["version"] == 2


def test_same_client_id_answers_with_the_first_order(system: System, product: str, customer: str) -> None:
    system.stock(product, 1)
    order_id = f"client-{uuid.uuid4().hex}"
    url = f"{system.url}/v1/orders?wait_for=VALIDATED"

    first = httpx.post(url, json=body(product, customer, id=order_id), timeout=30)
    again = httpx.post(url, json=body(product, customer, id=order_id, quantity=5), timeout=30)

    assert first.json()["id"] == again.json()["id"] == order_id
    assert again.json() == first.json()  # the first order, not the second body
    assert again.json()["state"] == "VALIDATED"


async def test_concurrent_retries_with_one_key_make_one_order(system: System, product: str, customer: str) -> None:
    system.stock(product, 1)
    key = {"Idempotency-Key": uuid.uuid4().hex}
    async with httpx.AsyncClient(base_url=system.url, timeout=30) as client:
        responses = await asyncio.gather(
            *(
                client.post("/v1/orders?wait_for=VALIDATED", json=body(product, customer), headers=key)
                for _ in range(10)
            )
        )
    assert {r.json()["id"] for r in responses} == {responses[0].json()["id"]}
    assert {r.json()["state"] for r in responses} == {"VALIDATED"}


def test_one_key_never_names_two_orders(system: System, product: str, customer: str) -> None:
    """An Idempotency-Key with a body `id` is refused (422): one key must mean one order, so ids cannot vary."""
    key = {"Idempotency-Key": uuid.uuid4().hex}
    ids = [f"client-{uuid.uuid4().hex}" for _ in range(3)]

    answers = [httpx.post(f"{system.url}/v1/orders", json=body(product, customer, id=i), headers=key) for i in ids]

    assert [a.status_code for a in answers] == [422, 422, 422]
    assert answers[0].headers["content-type"] == "application/problem+json"
    assert "Idempotency-Key" in answers[0].json()["errors"][0]["msg"]
    for order_id in ids:
        assert httpx.get(f"{system.url}/v1/orders/{order_id}", follow_redirects=True).status_code == 404
    alone = [httpx.post(f"{system.url}/v1/orders", json=body(product, customer), headers=key) for _ in range(3)]
    assert [a.status_code for a in alone] == [202, 202, 202]
    assert len({a.json()["id"] for a in alone}) == 1
