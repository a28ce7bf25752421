"""The order store applies each record once, newest version wins, offsets kept with the values."""

from __future__ import annotations

from pathlib import Path

import orjson
from aiokafka import ConsumerRecord

from stategate.streams.erasure_records import DONE, HEADER, REQUEST, ErasureRequest, done_value, marker_of
from stategate.streams.order_store import Erased, OrderStore
from stategate.streams.records import Order


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
    assert [(o.id, o.version) for o in changed if isinstance(o, Order)] == [("a", 2)]
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


SECRET = b"k" * 32


def erasure(offset: int, order_id: str) -> ConsumerRecord[bytes, bytes]:
    request = ErasureRequest(order_id, "c1", "p1", marker_of(SECRET, order_id)).to_json()
    key = order_id.encode()
    return ConsumerRecord("orders", 0, offset, 0, 0, key, request, None, len(key), len(request), [(HEADER, REQUEST)])


def done(offset: int, order_id: str) -> ConsumerRecord[bytes, bytes]:
    value = done_value(marker_of(SECRET, order_id))
    return ConsumerRecord("orders", 0, offset, 0, 0, b"~erased", value, None, 7, len(value), [(HEADER, DONE)])


def erasing_store(path: Path) -> OrderStore:
    return OrderStore(path, 1 << 20, 1 << 20, marker_of=lambda order_id: marker_of(SECRET, order_id))


def test_an_erasure_drops_the_order_and_its_late_versions_and_is_remembered_after_a_restart(tmp_path: Path) -> None:
    orders = erasing_store(tmp_path)
    orders.apply(0, [record(0, "a", 1), record(1, "b", 1)])
    changed = orders.apply(0, [erasure(2, "a"), record(3, "a", 2, "VALIDATED")])  # a check was in flight
    assert changed == [Erased("a")]
    assert orders.get("a") is None and orders.is_erased("a")
    assert orders.get("b") is not None and not orders.is_erased("b")
    assert [r.order_id for r in orders.pending_erasures()] == ["a"]
    orders.close()
    again = erasing_store(tmp_path)
    assert again.is_erased("a") and again.get("a") is None
    assert again.apply(0, [record(4, "a", 3, "VALIDATED")]) == []
    assert not again.erasure_done(marker_of(SECRET, "a"))
    again.apply(0, [done(5, "a")])
    assert again.pending_erasures() == [] and again.erasure_done(marker_of(SECRET, "a"))


def test_a_node_that_only_reads_the_done_marker_still_refuses_the_id(tmp_path: Path) -> None:
    orders = erasing_store(tmp_path)
    orders.apply(0, [done(0, "a")])  # the request and the order were compacted away before this node read them
    assert orders.is_erased("a")
    assert orders.apply(0, [record(1, "a", 1)]) == []


def test_an_erased_orders_bytes_leave_the_database_files(tmp_path: Path) -> None:
    orders = erasing_store(tmp_path / "db")
    secret_id = "order-with-a-memorable-id-" + "q" * 20
    orders.apply(0, [record(0, secret_id, 1), *(record(i, f"other-{i}", 1) for i in range(1, 50))])
    orders._db.flush(True)

    def files_holding_the_id() -> list[str]:
        return [p.name for p in (tmp_path / "db").iterdir() if p.is_file() and secret_id.encode() in p.read_bytes()]

    assert files_holding_the_id(), "the test's premise: the id is in the files before the erasure"
    orders.apply(0, [erasure(50, secret_id)])
    orders.apply(0, [done(51, secret_id)])  # the pending request (which names the id) goes too
    assert files_holding_the_id() == []
    assert orders.get("other-1") is not None


def test_a_store_that_missed_the_request_drops_the_order_when_the_done_marker_comes(tmp_path: Path) -> None:
    orders = erasing_store(tmp_path)
    orders.apply(0, [record(0, "a", 1), record(1, "b", 1)])
    orders.apply(0, [done(7, "a")])  # offsets 2..6 (the request, the tombstones) were compacted away meanwhile
    assert orders.get("a") is None and orders.get("b") is not None
