"""Unit tests of the validation rules and the records (no Kafka)."""

from __future__ import annotations

import pytest

from stategate.streams import rules
from stategate.streams.records import Order, RecordError, parse_time


def order(**changes: object) -> Order:
    values: dict[str, object] = {"id": "o1", "customer_id": "c1", "product": "P", "quantity": 2, "price": 10.0}
    values.update(changes)
    return Order(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "verdict"),
    [
        ({}, "PASS"),
        ({"quantity": 0}, "FAIL"),
        ({"price": 0.0}, "FAIL"),
        ({"price": -1.0}, "FAIL"),
        ({"product": " "}, "FAIL"),
        ({"customer_id": ""}, "FAIL"),
    ],
)
def test_details_check(changes: dict[str, object], verdict: str) -> None:
    assert rules.check_details(order(**changes)) == verdict


def test_inventory_check_counts_reservations() -> None:
    assert rules.check_inventory(order(quantity=2), stock=5, reserved=3) == "PASS"
    assert rules.check_inventory(order(quantity=3), stock=5, reserved=3) == "FAIL"
    assert rules.check_inventory(order(quantity=1), stock=0, reserved=0) == "FAIL"


def test_fraud_check_session_window() -> None:
    verdict, session = rules.check_fraud(None, order(quantity=1, price=1500.0), at=1000.0)
    assert verdict == "PASS" and session is not None and session["total"] == 1500.0
    verdict, same = rules.check_fraud(session, order(quantity=1, price=500.0), at=1100.0)
    assert verdict == "FAIL"  # 2000 reaches the limit
    assert same == session  # the failing order is not counted
    verdict, later = rules.check_fraud(session, order(quantity=1, price=499.0), at=1200.0)
    assert verdict == "PASS" and later is not None and later["total"] == 1999.0
    # More than an hour of inactivity opens a new session.
    verdict, fresh = rules.check_fraud(later, order(quantity=1, price=1500.0), at=1200.0 + 3601)
    assert verdict == "PASS" and fresh is not None and fresh["total"] == 1500.0


def test_decide_waits_for_all_three_verdicts() -> None:
    assert rules.decide({"ORDER_DETAILS_CHECK": "PASS", "INVENTORY_CHECK": "PASS"}) is None
    assert rules.decide({"ORDER_DETAILS_CHECK": "FAIL", "INVENTORY_CHECK": "PASS"}) is None
    passes = {"ORDER_DETAILS_CHECK": "PASS", "INVENTORY_CHECK": "PASS", "FRAUD_CHECK": "PASS"}
    assert rules.decide(passes) == "VALIDATED"
    assert rules.decide({**passes, "FRAUD_CHECK": "FAIL"}) == "FAILED"


def test_order_json_round_trip() -> None:
    original = order(
        state="VALIDATED", version=2, validations={"FRAUD_CHECK": "PASS"}, created_at="2026-01-01T00:00:00.000Z"
    )
    assert Order.from_json(original.to_json()) == Order(
        **{**original.as_dict(), "updated_at": "2026-01-01T00:00:00.000Z"}
    )


def test_order_from_a_foreign_producer_takes_defaults_and_the_key_as_id() -> None:
    read = Order.from_json(b'{"customer_id": "c", "product": "p", "quantity": 1, "price": 2}', key="k1")
    assert (read.id, read.state, read.version, read.validations) == ("k1", "CREATED", 1, {})


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        b"[]",
        b'{"product": "p"}',
        b'{"id": "x", "quantity": "2"}',
        b'{"id": "x", "price": "NaN"}',
        b'{"id": "x", "state": "SHIPPED"}',
    ],
)
def test_unreadable_orders_raise_record_error(data: bytes) -> None:
    with pytest.raises(RecordError):
        Order.from_json(data)


def test_parse_time_reads_utc_timestamps() -> None:
    assert parse_time("1970-01-01T00:01:00.000Z") == 60.0
    assert parse_time("1970-01-01T00:01:00") == 60.0


def test_a_record_without_created_at_takes_the_record_time() -> None:
    read = Order.from_record(b'{"customer_id": "c", "product": "p", "quantity": 1, "price": 2}', b"k1", 60.0)
    assert (read.id, read.created_at, read.updated_at) == ("k1", "1970-01-01T00:01:00.000Z", "1970-01-01T00:01:00.000Z")


def test_a_record_key_that_is_not_utf8_is_a_record_error() -> None:
    with pytest.raises(RecordError):
        Order.from_record(b'{"customer_id": "c", "product": "p", "quantity": 1, "price": 2}', b"\xff", 60.0)
