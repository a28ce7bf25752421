"""The order feed's handling of an erasure, record by record (no broker: records handed to it as Kafka would)."""

from __future__ import annotations

import collections

from aiokafka import ConsumerRecord

from stategate.streams.erasable_keys import erasable_key
from stategate.streams.erasure_records import HEADER, REQUEST, ErasureRequest
from stategate.streams.kafka_settings import KafkaSettings
from stategate.streams.order_feed import Change, Erasure, FeedItem, OrderFeed
from stategate.streams.records import Order


def record(offset: int, key: bytes, value: bytes, headers: tuple[tuple[str, bytes], ...] = ()) -> ConsumerRecord:
    return ConsumerRecord("orders", 0, offset, 0, 0, key, value, None, len(key), len(value), headers)


def version(offset: int, order_id: str, version: int) -> ConsumerRecord:
    order = Order(id=order_id, customer_id="c", product="p", quantity=1, price=1.0, version=version)
    return record(offset, erasable_key(order_id), order.to_json())


def erasure(offset: int, order_id: str) -> ConsumerRecord:
    request = ErasureRequest(order_id, "c", "p", "m" * 32)
    return record(offset, erasable_key(order_id), request.to_json(), ((HEADER, REQUEST),))


def feed() -> tuple[OrderFeed, list[FeedItem]]:
    handed: list[FeedItem] = []
    made = OrderFeed(KafkaSettings(), wants=lambda key: True, on_change=handed.append, history=100)
    made.positions[0], made._forgotten[0] = 0, -1
    made._recent[0] = collections.deque(maxlen=100)
    return made, handed


def test_an_erasure_is_handed_on_in_place_and_the_order_is_forgotten_and_never_handed_on_again() -> None:
    orders, handed = feed()
    orders._hand_on(0, [version(0, "o-1", 1), version(1, "o-2", 1), erasure(2, "o-1")])
    orders._hand_on(0, [version(3, "o-1", 2), record(4, b"\xff\xfe not utf-8", b"{}"), version(5, "o-2", 2)])
    assert [(type(i).__name__, i.order_id) for i in handed] == [
        ("Change", "o-1"),
        ("Change", "o-2"),
        ("Erasure", "o-1"),
        ("Change", "o-2"),
    ]
    replay = orders.recent(0, -1)  # what a client resuming from the start is sent
    assert replay is not None
    assert [(type(i).__name__, i.order_id) for i in replay] == [
        ("Change", "o-2"),
        ("Erasure", "o-1"),
        ("Change", "o-2"),
    ]
    assert isinstance(replay[1], Erasure) and replay[1].customer_id == "c"
    assert all(not isinstance(i, Change) or i.order_id != "o-1" for i in replay)
    assert orders.positions[0] == 6
