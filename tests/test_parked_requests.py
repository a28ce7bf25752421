"""Parked requests time out, notice departed clients, are capped and are answered on shutdown.

These run against a node with no services behind it, so orders stay CREATED
and every wait for VALIDATED lasts until its timeout.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .conftest import System
from .processes import wait_for

ORDER = {"customer_id": "c1", "product": "JUMPERS", "quantity": 1, "price": 1.0}


def created(system: System) -> dict[str, object]:
    response = httpx.post(f"{system.url}/v1/orders", json=ORDER, timeout=10)
    assert response.status_code == 202
    return dict(response.json())


def test_post_wait_timeout_answers_202_with_the_order_as_it_stands(node_only: System) -> None:
    started = time.monotonic()
    response = httpx.post(
        f"{node_only.url}/v1/orders", params={"wait_for": "VALIDATED", "timeout": "0.5"}, json=ORDER, timeout=10
    )
    elapsed = time.monotonic() - started

    assert response.status_code == 202
    assert response.json()["state"] == "CREATED"
    assert response.headers["location"] == f"/v1/orders/{response.json()['id']}"
    assert response.headers["retry-after"] == "1"
    assert 0.5 <= elapsed < 5


def test_get_long_poll_timeout_answers_202_with_retry_after(node_only: System) -> None:
    order = created(node_only)
    response = httpx.get(
        f"{node_only.url}/v1/orders/{order['id']}", params={"wait_for": "VALIDATED", "timeout": "0.5"}, timeout=10
    )
    assert response.status_code == 202
    assert response.json()["id"] == order["id"]
    assert response.headers["retry-after"] == "1"


def test_get_long_poll_answers_200_for_a_state_already_reached(node_only: System) -> None:
    order = created(node_only)
    response = httpx.get(
        f"{node_only.url}/v1/orders/{order['id']}", params={"wait_for": "CREATED", "timeout": "30"}, timeout=5
    )
    assert response.status_code == 200


def test_conditional_long_poll_answers_304_when_nothing_changes(node_only: System) -> None:
    order = created(node_only)
    wait_for(
        lambda: httpx.get(f"{node_only.url}/v1/orders/{order['id']}", timeout=5).status_code == 200,
        10,
        "the order in the table",
    )
    started = time.monotonic()
    response = httpx.get(
        f"{node_only.url}/v1/orders/{order['id']}",
        headers={"If-None-Match": '"1"', "Prefer": "wait=1"},
        timeout=10,
    )
    assert response.status_code == 304
    assert response.headers["etag"] == '"1"'
    assert response.headers["preference-applied"] == "wait=1"
    assert time.monotonic() - started >= 1


def test_long_poll_on_an_order_that_never_appears_ends_in_404(node_only: System) -> None:
    response = httpx.get(
        f"{node_only.url}/v1/orders/never-written", params={"wait_for": "VALIDATED", "timeout": "0.3"}, timeout=10
    )
    assert response.status_code == 404


def test_no_waiter_is_left_after_timeouts(node_only: System) -> None:
    order = created(node_only)

    async def poll_all() -> list[int]:
        async with httpx.AsyncClient(base_url=node_only.url, timeout=10) as client:
            responses = await asyncio.gather(
                *(
                    client.get(f"/v1/orders/{order['id']}", params={"wait_for": "VALIDATED", "timeout": "0.5"})
                    for _ in range(30)
                )
            )
        return [r.status_code for r in responses]

    assert asyncio.run(poll_all()) == [202] * 30
    assert node_only.node.metric("stategate_parked_requests") == 0


def test_no_waiter_is_left_after_clients_disconnect(node_only: System) -> None:
    order = created(node_only)

    async def poll_and_leave() -> None:
        async with httpx.AsyncClient(base_url=node_only.url, timeout=httpx.Timeout(10, read=0.5)) as client:
            wait = {"wait_for": "VALIDATED", "timeout": "60"}
            gets = [client.get(f"/v1/orders/{order['id']}", params=wait) for _ in range(20)]
            posts = [client.post("/v1/orders", params=wait, json=ORDER) for _ in range(10)]
            results = await asyncio.gather(*gets, *posts, return_exceptions=True)
        assert all(isinstance(r, httpx.ReadTimeout) for r in results)  # parked, then abandoned

    asyncio.run(poll_and_leave())
    # The node hears each disconnect and forgets the waiter long before the 60 s timeout.
    wait_for(lambda: node_only.node.metric("stategate_parked_requests") == 0, 10, "disconnected waiters to be removed")


@pytest.fixture()
def capped(kafka: str, tmp_path: Path) -> Iterator[System]:
    with System(tmp_path, kafka, "capped", services=False, STATEGATE_MAX_WAITERS="5") as running:
        yield running


def test_parked_requests_beyond_the_cap_get_503(capped: System) -> None:
    order = created(capped)

    async def poll_many() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=capped.url, timeout=10) as client:
            return await asyncio.gather(
                *(
                    client.get(f"/v1/orders/{order['id']}", params={"wait_for": "VALIDATED", "timeout": "2"})
                    for _ in range(8)
                )
            )

    responses = asyncio.run(poll_many())
    codes = sorted(r.status_code for r in responses)
    assert codes == [202] * 5 + [503] * 3
    rejected = [r for r in responses if r.status_code == 503]
    assert all(r.headers["retry-after"] == "1" for r in rejected)
    assert all(r.headers["content-type"] == "application/problem+json" for r in rejected)


def test_sigterm_answers_every_parked_request(node_only: System) -> None:
    order = created(node_only)

    async def park_then_stop() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=node_only.url, timeout=30) as client:
            polls = [
                asyncio.create_task(
                    client.get(f"/v1/orders/{order['id']}", params={"wait_for": "VALIDATED", "timeout": "60"})
                )
                for _ in range(10)
            ]
            posts = [
                asyncio.create_task(
                    client.post("/v1/orders", params={"wait_for": "VALIDATED", "timeout": "60"}, json=ORDER)
                )
                for _ in range(5)
            ]
            deadline = time.monotonic() + 10
            while node_only.node.metric("stategate_parked_requests") < 15:
                assert time.monotonic() < deadline, "requests were not parked"
                await asyncio.sleep(0.05)
            assert node_only.node.process is not None
            node_only.node.process.send_signal(signal.SIGTERM)
            return list(await asyncio.gather(*polls, *posts))

    started = time.monotonic()
    responses = asyncio.run(park_then_stop())

    assert [r.status_code for r in responses] == [202] * 15
    assert all(r.json()["state"] == "CREATED" for r in responses)
    assert time.monotonic() - started < 15
    assert node_only.node.stop(timeout=15) == 0
