"""The order flow end to end: real Kafka, real services, a real node, real HTTP."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import orjson
from aiokafka import AIOKafkaProducer

from stategate.streams.order_steps import OrderStep, Source
from stategate.streams.records import Order

from .conftest import System
from .processes import wait_for


def place(system: System, body: dict[str, object], **params: str) -> httpx.Response:
    return httpx.post(f"{system.url}/v1/orders", params=params, json=body, timeout=30)


def test_post_and_wait_for_validated(system: System, product: str, customer: str) -> None:
    system.stock(product, 10)
    body = {"customer_id": customer, "product": product, "quantity": 2, "price": 9.5}

    response = place(system, body, wait_for="VALIDATED")

    assert response.status_code == 201, response.text
    order = response.json()
    assert order["state"] == "VALIDATED"
    assert order["version"] == 2
    assert order["validations"] == {"ORDER_DETAILS_CHECK": "PASS", "INVENTORY_CHECK": "PASS", "FRAUD_CHECK": "PASS"}
    assert {k: order[k] for k in body} == body
    assert response.headers["location"] == f"/v1/orders/{order['id']}"
    assert response.headers["x-stategate-node"] == "node-1"

    read = httpx.get(f"{system.url}{response.headers['location']}", timeout=10)
    assert read.status_code == 200
    assert read.json() == order
    assert read.headers["etag"] == '"2"'


def test_post_without_wait_answers_202_at_once(system: System, product: str, customer: str) -> None:
    response = place(system, {"customer_id": customer, "product": product, "quantity": 1, "price": 1.0})

    assert response.status_code == 202
    assert response.json()["state"] == "CREATED"
    assert response.headers["location"].startswith("/v1/orders/")


def test_curl_style_form_content_type_is_read_as_json(system: System, product: str, customer: str) -> None:
    system.stock(product, 5)
    body = orjson.dumps({"customer_id": customer, "product": product, "quantity": 1, "price": 2.0})
    response = httpx.post(
        f"{system.url}/v1/orders?wait_for=VALIDATED",
        content=body,
        headers={"content-type": "application/x-www-form-urlencoded"},
        timeout=30,
    )
    assert response.status_code == 201, response.text


def test_inventory_check_fails_beyond_stock_and_reserves_what_passes(
    system: System, product: str, customer: str
) -> None:
    system.stock(product, 5)
    first = place(
        system, {"customer_id": customer, "product": product, "quantity": 4, "price": 1.0}, wait_for="VALIDATED"
    )
    second = place(
        system, {"customer_id": customer, "product": product, "quantity": 2, "price": 1.0}, wait_for="VALIDATED"
    )
    third = place(
        system, {"customer_id": customer, "product": product, "quantity": 1, "price": 1.0}, wait_for="VALIDATED"
    )

    assert first.json()["state"] == "VALIDATED"
    assert second.status_code == 201  # FAILED is terminal: VALIDATED can no longer be reached
    assert second.json()["state"] == "FAILED"
    assert second.json()["validations"]["INVENTORY_CHECK"] == "FAIL"
    assert second.json()["validations"]["FRAUD_CHECK"] == "PASS"
    assert third.json()["state"] == "VALIDATED"  # 4 reserved + 1 = 5: still fits


def test_unknown_product_has_no_stock(system: System, customer: str) -> None:
    response = place(
        system,
        {"customer_id": customer, "product": f"NEVER-{uuid.uuid4().hex[:6]}", "quantity": 1, "price": 1.0},
        wait_for="VALIDATED",
    )
    assert response.json()["state"] == "FAILED"
    assert response.json()["validations"]["INVENTORY_CHECK"] == "FAIL"


def test_a_failed_order_reserves_nothing(system: System, product: str, customer: str) -> None:
    system.stock(product, 3)
    # Passes inventory but fails fraud: the inventory check runs last and reserves only for VALIDATED.
    big = place(system, {"customer_id": customer, "product": product, "quantity": 3, "price": 700.0}, wait_for="FAILED")
    assert big.json()["validations"] == {
        "ORDER_DETAILS_CHECK": "PASS",
        "INVENTORY_CHECK": "PASS",
        "FRAUD_CHECK": "FAIL",
    }
    # Nothing to release, so the next order for the same 3 units validates at once, on its first try.
    other = place(
        system, {"customer_id": f"{customer}-2", "product": product, "quantity": 3, "price": 1.0}, wait_for="VALIDATED"
    )
    assert other.json()["state"] == "VALIDATED"


def test_fraud_check_fails_the_order_that_reaches_2000(system: System, product: str, customer: str) -> None:
    system.stock(product, 1000)
    states = []
    for _ in range(3):  # 3 × 600 = 1800 < 2000
        r = place(
            system, {"customer_id": customer, "product": product, "quantity": 1, "price": 600.0}, wait_for="VALIDATED"
        )
        states.append(r.json()["state"])
    reaching = place(
        system, {"customer_id": customer, "product": product, "quantity": 1, "price": 200.0}, wait_for="VALIDATED"
    )
    below = place(
        system, {"customer_id": customer, "product": product, "quantity": 1, "price": 199.0}, wait_for="VALIDATED"
    )

    assert states == ["VALIDATED"] * 3
    assert reaching.json()["state"] == "FAILED"
    assert reaching.json()["validations"]["FRAUD_CHECK"] == "FAIL"
    assert below.json()["state"] == "VALIDATED"  # 1999: the failed order was not counted


async def produce_raw(kafka: str, topic: str, key: str, value: dict[str, object]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, key=key.encode(), value=orjson.dumps(value))
    finally:
        await producer.stop()


def place_with_plain_producer(system: System, kafka: str, product: str, customer: str, quantity: int) -> httpx.Response:
    """Write an order with only the fields a foreign producer is asked for, then long-poll it."""
    system.stock(product, 10)
    order_id = f"plain-{uuid.uuid4().hex}"
    order = {"id": order_id, "customer_id": customer, "product": product, "quantity": quantity, "price": 4.0}
    asyncio.run(produce_raw(kafka, f"{system.namespace}.orders", order_id, order))
    return httpx.get(
        f"{system.url}/v1/orders/{order_id}", params={"wait_for": "VALIDATED", "timeout": "20"}, timeout=30
    )


def test_order_from_a_plain_kafka_producer_is_validated(
    system: System, kafka: str, product: str, customer: str
) -> None:
    response = place_with_plain_producer(system, kafka, product, customer, quantity=3)

    assert response.status_code == 200, response.text
    assert response.json()["state"] == "VALIDATED"
    assert response.json()["quantity"] == 3
    assert response.json()["created_at"]  # taken from the Kafka record


def test_order_details_check_fails_bad_orders_from_any_producer(
    system: System, kafka: str, product: str, customer: str
) -> None:
    response = place_with_plain_producer(system, kafka, product, customer, quantity=0)

    assert response.status_code == 200
    assert response.json()["state"] == "FAILED"
    assert response.json()["validations"]["ORDER_DETAILS_CHECK"] == "FAIL"


def test_get_unknown_order_is_404_problem(system: System) -> None:
    response = httpx.get(f"{system.url}/v1/orders/no-such-order", timeout=10)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


def test_conditional_long_poll_answers_200_when_the_order_changes(system: System, product: str, customer: str) -> None:
    system.stock(product, 10)
    placed = place(system, {"customer_id": customer, "product": product, "quantity": 1, "price": 1.0})
    order_id = placed.json()["id"]

    response = httpx.get(
        f"{system.url}/v1/orders/{order_id}",
        headers={"If-None-Match": '"1"', "Prefer": "wait=20"},
        timeout=30,
    )

    assert response.status_code == 200
    assert response.json()["version"] >= 2
    assert response.headers["etag"] == f'"{response.json()["version"]}"'


def test_get_with_current_etag_and_no_wait_is_304(system: System, product: str, customer: str) -> None:
    system.stock(product, 10)
    done = place(
        system, {"customer_id": customer, "product": product, "quantity": 1, "price": 1.0}, wait_for="VALIDATED"
    )
    response = httpx.get(
        f"{system.url}/v1/orders/{done.json()['id']}", headers={"If-None-Match": done.headers["etag"]}, timeout=10
    )
    assert response.status_code == 304
    assert response.headers["etag"] == done.headers["etag"]


def test_long_poll_get_returns_at_once_for_a_terminal_order(system: System, product: str, customer: str) -> None:
    failed = place(
        system, {"customer_id": customer, "product": f"NONE-{product}", "quantity": 1, "price": 1.0}, wait_for="FAILED"
    )
    response = httpx.get(
        f"{system.url}/v1/orders/{failed.json()['id']}", params={"wait_for": "VALIDATED", "timeout": "30"}, timeout=5
    )
    assert response.status_code == 200
    assert response.json()["state"] == "FAILED"


async def test_200_concurrent_posts_each_get_their_own_validated_order(system: System, product: str) -> None:
    system.stock(product, 10_000)
    async with httpx.AsyncClient(base_url=system.url, timeout=60, limits=httpx.Limits(max_connections=200)) as client:

        async def one(i: int) -> httpx.Response:
            body = {"customer_id": f"conc-{i}-{product}", "product": product, "quantity": 1, "price": float(i + 1)}
            return await client.post("/v1/orders", params={"wait_for": "VALIDATED", "timeout": "30"}, json=body)

        responses = await asyncio.gather(*(one(i) for i in range(200)))

    assert [r.status_code for r in responses] == [201] * 200
    assert all(r.json()["state"] == "VALIDATED" for r in responses)
    assert [r.json()["price"] for r in responses] == [float(i + 1) for i in range(200)]
    assert len({r.json()["id"] for r in responses}) == 200


def test_an_order_step_delivered_twice_is_applied_once(system: System, kafka: str, product: str, customer: str) -> None:
    """What a replay after a crash, or the relay sending twice, looks like to the inventory check."""
    system.stock(product, 5)
    wait_for(lambda: place_one(system, product, customer, 1) == "VALIDATED", 20, "the stock to reach the services")
    order = Order(f"twice-{uuid.uuid4().hex[:8]}", customer, product, 2, 1.0)
    order.validations = {"ORDER_DETAILS_CHECK": "PASS", "FRAUD_CHECK": "PASS"}
    step = OrderStep(order, Source(99, 0)).to_json()  # a source partition no real record comes from

    async def send_twice() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all")
        await producer.start()
        try:
            for _ in range(2):
                await producer.send_and_wait(f"{system.namespace}.orders-by-product", step, key=product.encode())
        finally:
            await producer.stop()

    asyncio.run(send_twice())
    decided = httpx.get(f"{system.url}/v1/orders/{order.id}?wait_for=VALIDATED&timeout=20", timeout=30)
    assert decided.json()["state"] == "VALIDATED" and decided.json()["version"] == 2
    # 5 in stock, 1 + 2 reserved: 2 more fit (with the step applied twice, 1 + 4, they would not), then none.
    assert place_one(system, product, customer, 2) == "VALIDATED"
    assert place_one(system, product, customer, 1) == "FAILED"


def place_one(system: System, product: str, customer: str, quantity: int) -> str:
    """Place an order of `quantity` units (each by a new customer) and wait: its final state."""
    body = {"customer_id": f"{customer}-{uuid.uuid4().hex[:6]}", "product": product, "quantity": quantity, "price": 1.0}
    return str(place(system, body, wait_for="VALIDATED").json()["state"])
