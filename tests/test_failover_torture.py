"""Failover torture, a few rounds: no record written to `orders` is ever missing from the gateway's view.

Each round writes order versions straight to Kafka while a node is
SIGKILLed, SIGTERMed, or joins, then checks every partition's applied
offset on its owner against the topic's end offset and every order's
version through the HTTP API (bench/torture.py has the rounds; `python -m
bench.torture --rounds 50` runs many more).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bench.torture import ServicesTorture, Torture, run_rounds
from stategate.app.broker import LocalKafka


@pytest.mark.parametrize(("nodes", "standby"), [(2, 0), (3, 1)])
def test_no_record_is_lost_across_kills_stops_and_joins(kafka: str, tmp_path: Path, nodes: int, standby: int) -> None:
    torture = Torture(kafka, tmp_path, nodes=nodes, standby=standby, seed=nodes)
    try:
        torture.start()
        results = asyncio.run(run_rounds(torture, rounds=3))
    finally:
        torture.stop()
    assert [r.action for r in results] == ["kill", "term", "join"]
    for result in results:
        assert result.written > 300, result
        assert result.problems == [], result
        assert result.unapplied_records == 0 and result.wrong_orders == 0, result


def test_no_record_is_lost_across_a_broker_restart(tmp_path: Path) -> None:
    """The broker stops and starts again while versions are written: the nodes read every record once it is back."""
    broker = LocalKafka(tmp_path / "kafka")
    broker.start()
    torture = Torture(broker.bootstrap, tmp_path, nodes=2, standby=1, seed=5, broker=broker)
    try:
        torture.start()
        results = asyncio.run(run_rounds(torture, rounds=1, actions=("broker",)))
    finally:
        torture.stop()
        broker.stop()
    assert results[0].written > 300, results[0]
    assert results[0].problems == [], results[0]
    assert results[0].unapplied_records == 0 and results[0].wrong_orders == 0, results[0]


def test_services_killed_leaving_and_joining_lose_nothing_and_repeat_nothing(kafka: str, tmp_path: Path) -> None:
    """A services process is SIGKILLed, another leaves (SIGTERM), another joins, while orders flow.

    Every order is VALIDATED, and each product's reserved units (from the
    `inventory` table's changelog, `inventory-checked`) are exactly those of
    its orders. Before each check wrote its state and its output as one
    record and skipped sources it had applied (streams/order_steps.py), a
    SIGKILL reserved 59-332 units twice per round here, and before the
    commit at revocation a SIGTERM about 1,000.
    """
    torture = ServicesTorture(kafka, tmp_path, standby=1, seed=3)
    try:
        torture.start()
        results = asyncio.run(run_rounds(torture, rounds=3, actions=("kill", "term", "join")))
    finally:
        torture.stop()
    for result in results:
        assert result.written > 300, result
        assert result.problems == [], result
