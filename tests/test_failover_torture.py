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


def test_services_leaving_and_joining_lose_no_order_and_repeat_almost_nothing(kafka: str, tmp_path: Path) -> None:
    """A services process leaves (SIGTERM) and another joins while orders flow.

    Every order is VALIDATED and no product has fewer units reserved (from
    the `reserved` table's changelog) than its orders hold. Faust on its own
    commits nothing when partitions are revoked, so the next owner processed
    again everything since the last periodic commit: about 2,000 units
    reserved twice over two such rounds here. With the consumer path's commit
    at revocation it is 0 in most rounds and a few units in some (under
    investigation: see the README), so more than 1 % is a failure. SIGKILL
    rounds are in `python -m bench.torture --target services`.
    """
    torture = ServicesTorture(kafka, tmp_path, standby=1, seed=3)
    try:
        torture.start()
        results = asyncio.run(run_rounds(torture, rounds=2, actions=("term", "join")))
    finally:
        torture.stop()
    for result in results:
        assert result.written > 300, result
        assert result.wrong_orders == 0, result
        assert all(units >= 0 for units in result.reserved_minus_validated.values()), result
    over = sum(results[-1].reserved_minus_validated.values())
    assert over <= torture.units // 100, (over, torture.units, results)
