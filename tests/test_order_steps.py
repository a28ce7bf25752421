"""Unit tests of the checks' steps: verdicts, state, and skipping what was applied (no Kafka)."""

from __future__ import annotations

import pytest

from stategate.streams.fraud_check import CustomerState
from stategate.streams.fraud_check import check as check_fraud
from stategate.streams.inventory_check import ProductState, decide, restock
from stategate.streams.order_steps import OrderStep, Source, is_duplicate, mark_seen
from stategate.streams.records import Order, RecordError

NOW = "2026-01-01T00:00:00.000Z"


def step(partition: int = 0, offset: int = 0, **changes: object) -> OrderStep:
    values: dict[str, object] = {"id": "o1", "customer_id": "c1", "product": "P", "quantity": 2, "price": 10.0}
    values.update(changes)
    order = Order(**values)  # type: ignore[arg-type]
    order.validations = {"ORDER_DETAILS_CHECK": "PASS"}
    return OrderStep(order, Source(partition, offset))


def test_a_step_reads_back_what_it_wrote() -> None:
    original = step(3, 41)
    again = OrderStep.from_json(original.to_json())
    assert again.source == Source(3, 41)
    assert again.order == original.order


@pytest.mark.parametrize(
    "data",
    [b"[]", b'{"order": {"id": "x"}}', b'{"order": {"id": "x"}, "source": {"partition": -1, "offset": 0}}'],
)
def test_an_unreadable_step_raises_record_error(data: bytes) -> None:
    with pytest.raises(RecordError):
        OrderStep.from_json(data)


def test_a_source_at_or_below_the_seen_offset_of_its_partition_is_a_duplicate() -> None:
    seen = mark_seen(mark_seen({}, Source(0, 10)), Source(1, 5))
    assert is_duplicate(seen, Source(0, 10))
    assert is_duplicate(seen, Source(0, 3))
    assert not is_duplicate(seen, Source(0, 11))
    assert not is_duplicate(seen, Source(2, 0))  # a partition never seen


def test_fraud_check_counts_a_passing_order_and_marks_its_source() -> None:
    state = check_fraud(CustomerState(), step(1, 7, quantity=3, price=100.0), at=1000.0)
    assert state.order is not None and state.order.validations["FRAUD_CHECK"] == "PASS"
    assert state.session is not None and state.session["total"] == 300.0
    assert is_duplicate(state.seen, Source(1, 7))


def test_fraud_check_judges_but_does_not_count_an_order_that_failed_its_details() -> None:
    bad = step(price=-500.0)
    bad.order.validations = {"ORDER_DETAILS_CHECK": "FAIL"}
    before = check_fraud(CustomerState(), step(quantity=1, price=1500.0), at=1000.0)
    after = check_fraud(before, bad, at=1001.0)
    assert after.session == before.session
    assert after.order is not None and after.order.validations == {"ORDER_DETAILS_CHECK": "FAIL", "FRAUD_CHECK": "PASS"}


def test_the_inventory_check_decides_and_reserves_a_passing_order() -> None:
    passing = step(quantity=4)
    passing.order.validations["FRAUD_CHECK"] = "PASS"
    state = decide(ProductState(stock=5), passing, NOW)
    assert state.reserved == 4
    assert state.order is not None
    assert (state.order.state, state.order.version, state.order.updated_at) == ("VALIDATED", 2, NOW)
    assert state.order.validations["INVENTORY_CHECK"] == "PASS"
    again = decide(state, step(1, 0, quantity=2, validations={}), NOW)  # no FRAUD_CHECK verdict: cannot pass
    assert again.order is not None and again.order.state == "FAILED" and again.reserved == 4


def test_an_order_that_failed_fraud_reserves_nothing() -> None:
    failing = step(quantity=1)
    failing.order.validations["FRAUD_CHECK"] = "FAIL"
    state = decide(ProductState(stock=5), failing, NOW)
    assert state.order is not None and state.order.state == "FAILED"
    assert state.order.validations["INVENTORY_CHECK"] == "PASS"
    assert state.reserved == 0


def test_restock_keeps_reservations_and_forwards_no_order() -> None:
    state = restock(ProductState(stock=5, reserved=3, seen={"0": 9}, order=step().order), 10)
    assert (state.stock, state.reserved, state.seen, state.order, state.available) == (10, 3, {"0": 9}, None, 7)
    assert ProductState.from_json(state.to_json()) == state
