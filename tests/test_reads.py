"""Reads users expect: a product's stock through the inventory service, a customer's orders."""

from __future__ import annotations

import httpx

from stategate.streams.customer_orders import MAX_ORDERS_KEPT, with_order

from .conftest import System
from .processes import wait_for


def place(system: System, product: str, customer: str, quantity: int) -> dict[str, object]:
    body = {"customer_id": customer, "product": product, "quantity": quantity, "price": 1.0}
    placed = httpx.post(f"{system.url}/v1/orders?wait_for=VALIDATED&timeout=30", json=body, timeout=40)
    assert placed.status_code == 201, placed.text
    return dict(placed.json())


def test_a_products_stock_reserved_and_available_come_from_the_inventory_service(
    system: System, product: str, customer: str
) -> None:
    system.stock(product, 10)
    wait_for(
        lambda: httpx.get(f"{system.url}/v1/inventory/{product}", timeout=15).status_code == 200,
        30,
        "the stock to reach the inventory service",
    )
    place(system, product, customer, 3)
    place(system, product, customer, 3)

    read = httpx.get(f"{system.url}/v1/inventory/{product}", timeout=15)

    assert read.status_code == 200, read.text
    assert read.json() == {"product": product, "stock": 10, "reserved": 6, "available": 4}
    assert read.headers["content-type"] == "application/json"


def test_a_product_never_stocked_is_404(system: System, product: str) -> None:
    read = httpx.get(f"{system.url}/v1/inventory/{product}", timeout=15)
    assert read.status_code == 404
    assert read.headers["content-type"] == "application/problem+json"


def test_a_customers_orders_are_listed_newest_first(system: System, product: str, customer: str) -> None:
    system.stock(product, 100)
    placed = [place(system, product, customer, 1)["id"] for _ in range(3)]

    def listed() -> list[str]:
        answer = httpx.get(f"{system.url}/v1/orders", params={"customer_id": customer}, timeout=15)
        assert answer.status_code == 200, answer.text
        return [order["id"] for order in answer.json()["orders"]]

    wait_for(lambda: listed() == placed[::-1], 30, "the customer's three orders, newest first")
    limited = httpx.get(f"{system.url}/v1/orders", params={"customer_id": customer, "limit": 1}, timeout=15).json()
    assert [order["id"] for order in limited["orders"]] == [placed[-1]]
    assert limited["known"] == 3
    nobody = httpx.get(f"{system.url}/v1/orders", params={"customer_id": f"nobody-{customer}"}, timeout=15)
    assert nobody.json() == {"customer_id": f"nobody-{customer}", "known": 0, "orders": []}


def test_the_customer_index_adds_an_id_once_and_keeps_the_newest() -> None:
    ids: list[str] = []
    for n in range(MAX_ORDERS_KEPT + 5):
        ids = with_order(ids, f"o-{n}")
    assert len(ids) == MAX_ORDERS_KEPT
    assert ids[0] == "o-5" and ids[-1] == f"o-{MAX_ORDERS_KEPT + 4}"
    assert with_order(ids, "o-50") is ids  # a replayed step changes nothing
