"""The pure parts of live updates: event ids, the outbox, and how a stream orders and de-duplicates changes."""

from __future__ import annotations

import asyncio

from stategate.app.event_ids import decode_event_id, encode_event_id
from stategate.app.order_streams import Interest, OrderStream
from stategate.app.outbox import Outbox
from stategate.streams.order_feed import Change, Erasure
from stategate.streams.records import Order


def change(order_id: str, version: int, partition: int = 0, offset: int = 0, state: str = "CREATED") -> Change:
    order = Order(id=order_id, customer_id="c", product="p", quantity=1, price=1.0, state=state, version=version)
    return Change(partition, offset, order)


def test_event_ids_round_trip_and_anything_else_is_no_id() -> None:
    assert encode_event_id({3: 1050, 0: -1}) == "0:-1,3:1050"
    assert decode_event_id("0:-1,3:1050", 12) == {0: -1, 3: 1050}
    for bad in (None, "", "x", "3:", ":4", "3:4,3:5", "12:1", "1:-2", "1:2;3:4", "1:2," * 2000):
        assert decode_event_id(bad, 12) is None, bad


def test_the_outbox_keeps_every_change_until_it_is_full_then_keeps_each_orders_newest_in_place() -> None:
    outbox = Outbox(capacity=3)
    assert outbox.put(change("a", 1), None)
    assert outbox.put(change("b", 1), None)
    assert outbox.put(change("a", 2), "id-a2")
    assert outbox.put(change("a", 3), "id-a3")  # 4 waiting: conflated to b1, a3
    assert outbox.conflated == 2
    taken = [outbox.take(), outbox.take(), outbox.take()]
    assert [(p.change.order_id, p.order.version, p.event_id) for p in taken if p and p.order] == [
        ("b", 1, None),
        ("a", 3, "id-a3"),
    ]
    assert taken[2] is None


def test_an_outbox_with_more_distinct_orders_than_it_may_hold_says_so() -> None:
    outbox = Outbox(capacity=2)
    assert outbox.put(change("a", 1), None) and outbox.put(change("b", 1), None)
    assert not outbox.put(change("c", 1), None)


def stream(*order_ids: str, capacity: int = 100) -> OrderStream:
    return OrderStream(Interest(orders=frozenset(order_ids)), Outbox(capacity), ends_when_terminal=True)


def versions(s: OrderStream) -> list[tuple[str, int, str | None]]:
    """What waits in the stream's outbox: (order id, version, event id); version 0 for an erasure."""
    out = []
    while (pending := s.outbox.take()) is not None:
        out.append((pending.change.order_id, pending.order.version if pending.order else 0, pending.event_id))
    return out


def erasure(order_id: str, partition: int = 0, offset: int = 0, customer_id: str = "c") -> Erasure:
    return Erasure(partition, offset, order_id, customer_id)


def test_going_live_sends_snapshot_and_kept_changes_once_in_order_with_one_id_at_the_end() -> None:
    s = stream("a")
    s.offer(change("a", 3, offset=12))  # kept while opening
    s.offer(change("a", 2, offset=11))  # older than the snapshot's record: dropped by version
    s.go_live([change("a", 2, offset=10), change("a", 2, offset=11)], {0: 12})
    assert versions(s) == [("a", 2, None), ("a", 3, "0:12")]
    s.offer(change("a", 3, offset=13))  # the same version again (relayed twice): nothing
    s.offer(change("b", 1, offset=14))  # not watched
    s.offer(change("a", 4, offset=15))
    assert versions(s) == [("a", 4, "0:15")]


def test_a_stream_of_named_orders_is_complete_once_each_was_sent_terminal() -> None:
    s = stream("a", "b")
    s.go_live([change("a", 2, state="VALIDATED"), change("b", 1)], {0: 5})
    for pending in iter(s.take, None):
        s.sent(pending)
    assert s.ended is None
    s.offer(change("b", 2, offset=6, state="FAILED"))
    for pending in iter(s.take, None):
        s.sent(pending)
    assert s.ended == "complete"


def test_a_stream_whose_outbox_overflows_ends_as_slow_and_says_so() -> None:
    cut: list[bool] = []
    s = stream("a", "b", "c", capacity=2)
    s.on_slow = lambda: cut.append(True)
    s.go_live([], {0: 0})
    for i, order_id in enumerate("abc"):
        s.offer(change(order_id, 1, offset=i + 1))
    assert s.ended == "slow" and cut == [True]
    assert s.ready.is_set()


def test_ready_is_an_asyncio_event_a_writer_can_wait_on() -> None:
    async def run() -> bool:
        s = stream("a")
        s.go_live([], {0: 0})
        waiter = asyncio.create_task(s.ready.wait())
        s.offer(change("a", 1, offset=1))
        await asyncio.wait_for(waiter, 1)
        return True

    assert asyncio.run(run())


def test_an_erasure_drops_what_waits_of_the_order_and_takes_its_place() -> None:
    s = OrderStream(Interest(customer_id="c"), Outbox(100), ends_when_terminal=False)
    s.go_live([change("a", 1, offset=1), change("b", 1, offset=2)], {0: 2})
    s.offer(change("a", 2, offset=3))
    s.offer(erasure("a", offset=4))
    s.offer(erasure("z", offset=5, customer_id="another"))  # not this customer's
    assert versions(s) == [("b", 1, "0:2"), ("a", 0, "0:4")]
    assert s.ended is None  # a customer's stream goes on


def test_an_order_erased_while_a_stream_opens_is_sent_as_its_erasure_only() -> None:
    s = stream("a", "b")
    s.offer(erasure("a", offset=7))  # kept while opening
    s.go_live([change("a", 2, offset=5), change("b", 1, offset=6)], {0: 7})
    assert versions(s) == [("b", 1, None), ("a", 0, "0:7")]


def test_a_stream_of_named_orders_counts_an_erased_one_as_finished() -> None:
    s = stream("a", "b")
    s.go_live([change("a", 1, offset=1), change("b", 2, offset=2, state="VALIDATED")], {0: 2})
    s.offer(erasure("a", offset=3))
    for pending in iter(s.take, None):
        s.sent(pending)
    assert s.ended == "complete"


def test_an_outbox_forgets_an_erased_orders_changes_and_keeps_the_others_in_order() -> None:
    outbox = Outbox(capacity=10)
    for item in (change("a", 1), change("b", 1), change("a", 2), change("c", 1)):
        outbox.put(item, None)
    outbox.forget("a")
    assert [p.change.order_id for p in iter(outbox.take, None)] == ["b", "c"]
    outbox.forget("a")  # nothing waits: nothing to do
    assert len(outbox) == 0
