"""Faults: the broker going away and coming back, the node restarting."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from stategate.app.broker import LocalKafka
from stategate.streams.order_view import VIEW_GROUP

from .conftest import System
from .processes import wait_for


def order(product: str, customer: str) -> dict[str, object]:
    return {"customer_id": customer, "product": product, "quantity": 1, "price": 2.0}


@pytest.fixture()
def own_broker(tmp_path: Path) -> Iterator[LocalKafka]:
    """A broker of this test's own, which it may stop and start again."""
    broker = LocalKafka(tmp_path / "kafka")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def test_broker_down_gives_fast_503_then_recovers(
    own_broker: LocalKafka, tmp_path: Path, product: str, customer: str
) -> None:
    system = System(tmp_path, own_broker.bootstrap, "outage", STATEGATE_PRODUCE_TIMEOUT_SECONDS="2").start()
    try:
        system.stock(product, 100)
        url = f"{system.url}/v1/orders"
        before = httpx.post(url, params={"wait_for": "VALIDATED"}, json=order(product, customer), timeout=30)
        assert before.status_code == 201

        own_broker.stop()
        started = time.monotonic()
        during = httpx.post(url, params={"wait_for": "VALIDATED"}, json=order(product, customer), timeout=30)
        elapsed = time.monotonic() - started

        assert during.status_code == 503
        assert during.headers["retry-after"] == "1"
        assert during.headers["content-type"] == "application/problem+json"
        assert elapsed < 4, f"503 took {elapsed:.1f}s"
        # Reads are served from the node's own table while Kafka is away.
        assert httpx.get(f"{url}/{before.json()['id']}", timeout=5).json()["state"] == "VALIDATED"

        own_broker.start()

        def validated_again() -> bool:
            r = httpx.post(
                url, params={"wait_for": "VALIDATED", "timeout": "5"}, json=order(product, customer), timeout=30
            )
            return r.status_code == 201 and r.json()["state"] == "VALIDATED"

        wait_for(validated_again, 90, "orders to be validated after the broker came back", interval=0.5)
        assert system.services is not None and system.services.running  # rode it out, no restart
    finally:
        system.stop()


def test_node_restart_keeps_every_order(kafka: str, tmp_path: Path, product: str, customer: str) -> None:
    system = System(tmp_path, kafka, "restart").start()
    try:
        system.stock(product, 1000)
        placed = [
            httpx.post(
                f"{system.url}/v1/orders",
                params={"wait_for": "VALIDATED"},
                json=order(product, f"{customer}-{i}"),
                timeout=30,
            ).json()
            for i in range(20)
        ]
        assert {o["state"] for o in placed} == {"VALIDATED"}

        def all_served() -> list[dict[str, object]]:
            return [httpx.get(f"{system.url}/v1/orders/{o['id']}", timeout=5).json() for o in placed]

        assert system.node.stop() == 0
        system.node.start_and_wait()
        assert all_served() == placed  # from RocksDB

        assert system.node.stop() == 0
        shutil.rmtree(system.node.data_dir / f"{system.namespace}.{VIEW_GROUP}")
        system.node.start_and_wait()
        assert all_served() == placed  # rebuilt from the orders topic
    finally:
        system.stop()


def test_sigterm_while_the_broker_is_down_still_stops_within_15_seconds(own_broker: LocalKafka, tmp_path: Path) -> None:
    system = System(tmp_path, own_broker.bootstrap, "stop-offline").start()
    try:
        own_broker.stop()
        for process in (system.node, system.services):
            assert process is not None and process.process is not None
            started = time.monotonic()
            process.process.terminate()
            process.process.wait(20)
            assert time.monotonic() - started < 16, f"{process.command} took too long to stop"
    finally:
        system.stop()
