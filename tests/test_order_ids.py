"""An order id is the whole of its pattern: a trailing newline (`%0A` in a URL, or a producer's key) is no id."""

from __future__ import annotations

from stategate.streams.records import Order, order_record_rejection
from stategate.views.long_poll import parse_long_poll


def order(order_id: str) -> Order:
    return Order(id=order_id, customer_id="c", product="p", quantity=1, price=1.0)


def test_every_reader_of_orders_rejects_an_id_with_a_trailing_newline() -> None:
    assert order_record_rejection(b"abc", order("abc")) is None
    assert order_record_rejection(b"abc\n", order("abc\n")) == "bad-id"


def test_the_long_poll_path_leaves_an_id_with_a_trailing_newline_to_fastapi() -> None:
    def scope(path: str) -> dict[str, object]:
        return {"type": "http", "method": "GET", "path": path, "headers": [], "query_string": b"wait_for=VALIDATED"}

    assert parse_long_poll(scope("/v1/orders/abc")) is not None
    assert parse_long_poll(scope("/v1/orders/abc\n")) is None  # FastAPI answers 422
