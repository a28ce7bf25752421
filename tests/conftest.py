"""Fixtures: one real Kafka broker per test session, and real stategate processes.

The broker is started through the same code as `stategate kafka`, on a free
port, unless KAFKA_BOOTSTRAP_SERVERS names an existing cluster. Each system
of processes works in its own topic namespace, so tests that share the broker
do not see each other's orders.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from stategate.app.broker import LocalKafka

from .processes import Node, Stategate, system_env


def new_namespace(label: str) -> str:
    """A topic namespace no other test uses."""
    return f"t-{label}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The bootstrap address of the session's Kafka broker."""
    existing = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if existing:
        yield existing
        return
    broker = LocalKafka(tmp_path_factory.mktemp("kafka"))
    broker.start()
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


class System:
    """A gateway node and the order services in one namespace."""

    def __init__(self, root: Path, bootstrap: str, label: str, services: bool = True, **env: str) -> None:
        self.namespace = new_namespace(label)
        self.env = system_env(bootstrap, self.namespace, **env)
        self.root = root
        self.node = Node(root / "node-1", self.env)
        self.services = Stategate("services", root / "services", self.env) if services else None

    def start(self) -> System:
        """Start the services and the node; stop both if the node does not become ready."""
        try:
            if self.services is not None:
                self.services.start()
            self.node.start_and_wait()
            if self.services is not None:
                self.services.wait_services_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        self.node.stop()
        if self.services is not None:
            self.services.stop()

    def __enter__(self) -> System:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return self.node.url

    def stock(self, product: str, units: int) -> None:
        """Put stock into the warehouse through the gateway."""
        response = httpx.put(f"{self.url}/v1/inventory/{product}", json={"stock": units}, timeout=10)
        assert response.status_code == 200, response.text


@pytest.fixture(scope="session")
def system(kafka: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    """A node and the services shared by the tests that only place and read orders."""
    with System(tmp_path_factory.mktemp("system"), kafka, "shared") as running:
        yield running


@pytest.fixture()
def node_only(kafka: str, tmp_path: Path) -> Iterator[System]:
    """A node with no services behind it: its orders stay CREATED, so waits time out."""
    with System(tmp_path, kafka, "alone", services=False) as running:
        yield running


@pytest.fixture()
def product() -> str:
    """A product name no other test uses."""
    return f"P-{uuid.uuid4().hex[:10]}"


@pytest.fixture()
def customer() -> str:
    """A customer id no other test uses (so fraud sessions start empty)."""
    return f"C-{uuid.uuid4().hex[:10]}"
