"""The order store applies each record once, newest version wins, offsets kept with the values."""

from __future__ import annotations

from pathlib import Path

import orjson
from aiokafka import ConsumerRecord

from stategate.streams.order_store import OrderStore


def record(offset: int, order_id: str, version: int, state: str = "CREATED", key: str | None = None) -> ConsumerRecord:
    order = {"id": order_id, "customer_id": "c", "product": "p", "quantity": 1, "price": 1.0}
    value = orjson.dumps({**order, "version": version, "state": state})
    raw_key = (key if key is not None else order_id).encode()
    return ConsumerRecord("orders", 0, offset, 0, 0, raw_key, value, None, len(raw_key), len(value), [])


def store(path: Path) -> OrderStore:
    return OrderStore(path, block_cache_bytes=1 << 20, write_buffer_bytes=1 << 20)


def test_applies_newer_versions_and_ignores_stale_and_repeated_records(tmp_path: Path) -> None:
    orders = store(tmp_path)
    changed = orders.apply(0, [record(0, "a", 1), record(1, "a", 2, "VALIDATED"), record(2, "a", 1)])
    assert [(o.id, o.version) for o in changed] == [("a", 2)]
    assert orders.get("a") is not None and orders.get("a").state == "VALIDATED"  # type: ignore[union-attr]
    assert orders.applied_offset(0) == 2
    assert orders.apply(0, [record(1, "a", 2), record(2, "a", 1)]) == []  # read again after a rewind
    assert orders.applied_offset(0) == 2


def test_offsets_and_values_survive_a_restart_together(tmp_path: Path) -> None:
    orders = store(tmp_path)
    orders.apply(3, [record(10, "b", 1), record(11, "c", 1)])
    orders.close()
    reopened = store(tmp_path)
    assert reopened.applied_offset(3) == 11
    assert reopened.applied_offset(0) == -1
    assert reopened.get("c") is not None
    # Records at or below the stored offset are the ones already applied: nothing changes.
    assert reopened.apply(3, [record(11, "c", 5)]) == []
    assert reopened.get("c").version == 1  # type: ignore[union-attr]
    reopened.close()


def test_unreadable_records_and_foreign_keys_advance_the_offset_only(tmp_path: Path) -> None:
    orders = store(tmp_path)
    garbage = ConsumerRecord("orders", 0, 0, 0, 0, b"x", b"not json", None, 1, 8, [])
    assert orders.apply(0, [garbage, record(1, "d", 1, key="other")]) == []
    assert orders.applied_offset(0) == 1
    assert orders.get("d") is None
