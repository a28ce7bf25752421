"""Unit tests of TableOutput: a check's table write is stored and its changelog record sent, in write order."""

from __future__ import annotations

import asyncio
import weakref
from types import SimpleNamespace
from typing import Any

import pytest
from faust.streams import _current_event
from faust.types import TP

from stategate.streams.erasure_records import HEADER, REQUEST
from stategate.streams.table_output import TableOutput


class StoreStandIn(dict[bytes, bytes]):
    """The table's store: values, and the changelog offset Faust recovery starts after."""

    persisted: dict[TP, int]
    compacted: list[tuple[int, bytes]]

    def set_persisted_offset(self, tp: TP, offset: int) -> None:
        self.persisted[tp] = offset

    def _db_for_partition(self, partition: int) -> Any:
        """RocksDB of one partition: records which key ranges were compacted."""
        compacted = self.compacted
        return SimpleNamespace(
            flush=lambda wait: None,
            compact_range=lambda start, end, options: compacted.append((partition, start)),
        )


class ProducerStandIn:
    """Hands records to "Kafka" in the order it gets them; the first send waits for room first."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes, int]] = []
        self.headers: list[Any] = []

    async def send(
        self, topic: str, key: bytes, value: bytes, partition: int, timestamp: Any, headers: Any
    ) -> asyncio.Future[Any]:
        if not self.sent and value == b"first":
            await asyncio.sleep(0.05)  # aiokafka's append waits for room in its buffer
        self.sent.append((topic, key, value, partition))
        self.headers.append(headers)
        acknowledged: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        acknowledged.set_result(SimpleNamespace(offset=len(self.sent) - 1))
        return acknowledged


def output() -> tuple[TableOutput, StoreStandIn, ProducerStandIn]:
    store = StoreStandIn()
    store.persisted = {}
    store.compacted = []
    changelog = SimpleNamespace(get_topic_name=lambda: "inventory-checked")
    table = SimpleNamespace(data=store, changelog_topic=changelog)
    producer = ProducerStandIn()
    return TableOutput(SimpleNamespace(producer=producer), table), store, producer  # type: ignore[arg-type]


class EventStandIn:
    """The event an agent is processing (Faust keeps a weak reference to it)."""

    def __init__(self, partition: int) -> None:
        self.message = SimpleNamespace(partition=partition)


async def write_as_agent(out: TableOutput, partition: int, key: bytes, value: bytes) -> None:
    """What an agent does while it processes an event of `partition`."""
    event = as_agent(partition)
    await out.write(key, value)
    del event


def as_agent(partition: int) -> EventStandIn:
    """Make an event of `partition` the current one; keep the returned event while it is."""
    event = EventStandIn(partition)
    _current_event.set(weakref.ref(event))  # type: ignore[arg-type]
    return event


async def test_two_agents_writes_leave_in_the_order_they_were_written() -> None:
    """check-inventory and stock-levels write one table; a slow first send must not be overtaken."""
    out, store, producer = output()
    first = asyncio.create_task(write_as_agent(out, 2, b"P", b"first"))
    await asyncio.sleep(0.01)  # the first write is stored; its send waits
    second = asyncio.create_task(write_as_agent(out, 2, b"P", b"second"))
    await asyncio.gather(first, second)
    assert [value for _, _, value, _ in producer.sent] == [b"first", b"second"]
    assert store[b"P"] == b"second"
    await asyncio.sleep(0)  # the acknowledgements' callbacks
    assert store.persisted == {TP("inventory-checked", 2): 1}


async def test_a_write_outside_an_agent_is_refused() -> None:
    out, _, _ = output()
    _current_event.set(None)
    with pytest.raises(RuntimeError):
        await out.write(b"P", b"v")


async def test_a_rewrite_sends_the_current_value_with_the_erasure_header_so_that_every_copy_compacts() -> None:
    out, store, producer = output()
    event = as_agent(1)
    store[b"C"] = b"newer value"
    await out.rewrite(b"C")
    assert producer.sent == [("inventory-checked", b"C", b"newer value", 1)]
    assert producer.headers == [[(HEADER, REQUEST)]]
    assert store.compacted == [(1, b"C")]
    await out.rewrite(b"absent")  # nothing to write: this copy compacts, nothing is sent
    assert len(producer.sent) == 1 and store.compacted[-1] == (1, b"absent")
    del event
