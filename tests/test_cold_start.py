"""A fresh cluster: `stategate services` says when it is ready, and the first order is as quick as the rest."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from .conftest import System


def test_the_first_order_after_everything_is_ready_is_validated_at_once(kafka: str, tmp_path: Path) -> None:
    """Broker, services and node all new (a fresh namespace); the services' ready file and log line come first."""
    for attempt in range(2):
        system = System(tmp_path / f"start-{attempt}", kafka, "cold")
        try:
            system.start()  # waits for the node's /readyz and the services' ready file
            assert system.services is not None
            assert "services ready" in system.services.log()
            system.stock("JUMPERS", 100)
            started = time.monotonic()
            answer = httpx.post(
                f"{system.url}/v1/orders",
                params={"wait_for": "VALIDATED", "timeout": "5"},
                json={"customer_id": "c1", "product": "JUMPERS", "quantity": 1, "price": 1.0},
                timeout=10,
            )
            assert answer.status_code == 201, (answer.status_code, answer.text, time.monotonic() - started)
            assert answer.json()["state"] == "VALIDATED"
        finally:
            system.stop()
        assert system.services is not None and not system.services.services_ready()  # gone when stopped
