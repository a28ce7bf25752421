"""Every change of every order, as it happens, on every node: the feed behind live updates.

    `orders` ─► feed consumer (no group: all partitions, from the end) ─► on_record ─► live streams
                                                                      └► recent records, per partition

A client may watch any order on any node, so each node reads all of
`orders` itself. The consumer joins no group, so no rebalance ever pauses
or moves it: it is assigned every partition and starts at their end
offsets. It keeps the newest `history` records of each partition in
memory, so that a client that reconnects with `Last-Event-ID` gets the
versions it missed without a Kafka read; older ones are read from Kafka
(`read_range`), and when Kafka no longer has them either the caller falls
back to a fresh snapshot.

The feed parses nothing it does not have to: a record becomes an `Order`
only when `wants` says a live stream watches its key (or some stream
watches a customer, whose orders can have any key).

An erasure request (streams/erasure_records.py) is handed on as an
`Erasure`, at its place among the order's versions, and the feed forgets
the order: its records leave the feed's memory, and versions that come
after the request (a check that was in flight) are never handed on nor
replayed. The ids of the latest `MAX_ERASED_REMEMBERED` erasures stay in
memory for that, never on disk.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import ConsumerStoppedError, KafkaError

from .admin import partition_count
from .erasable_keys import business_key
from .erasure_records import REQUEST, ErasureRequest, erasure_kind
from .kafka_settings import KafkaSettings
from .records import Order, RecordError, order_record_rejection
from .topics import ORDERS

log = logging.getLogger("stategate.streams.order_feed")

MAX_RANGE_RECORDS = 100_000
"""A read from Kafka for a reconnecting client stops here; beyond, the client gets a snapshot."""
MAX_ERASED_REMEMBERED = 10_000
"""Erased order ids the feed remembers, to drop versions written after the erasure; the oldest go first."""


@dataclass(frozen=True, slots=True)
class Change:
    """One record of `orders`: where it is, and the order it carries."""

    partition: int
    offset: int
    order: Order

    @property
    def order_id(self) -> str:
        """The order's id."""
        return self.order.id


@dataclass(frozen=True, slots=True)
class Erasure:
    """An erasure request on `orders`: where it is, and the order it erases (and that order's customer)."""

    partition: int
    offset: int
    order_id: str
    customer_id: str


FeedItem = Change | Erasure
"""What the feed hands on: an order's new version, or its erasure."""


@dataclass(frozen=True, slots=True)
class RawRecord:
    """A record kept unparsed in the feed's memory: most are never asked for again."""

    offset: int
    key: bytes
    value: bytes
    timestamp: float
    erasure: bool = False


Wants = Callable[[bytes], bool]
"""Whether some live stream watches this key (or every key: a customer stream)."""
OnChange = Callable[[FeedItem], None]


def parse_change(
    partition: int, offset: int, key: bytes | None, value: bytes | None, timestamp: float, erasure: bool = False
) -> FeedItem | None:
    """The order (or the erasure) a record carries, or None for a record every reader of `orders` rejects."""
    if key is None or value is None:
        return None
    if erasure:
        try:
            request = ErasureRequest.from_json(value)
        except RecordError:
            return None
        return Erasure(partition, offset, request.order_id, request.customer_id)
    try:
        order = Order.from_record(value, key, timestamp)
    except RecordError:
        return None
    if order_record_rejection(key, order) is not None:
        return None
    return Change(partition, offset, order)


class OrderFeed:
    """A group-less consumer of all of `orders`, its position in each partition, and recent records."""

    def __init__(
        self,
        settings: KafkaSettings,
        wants: Wants,
        on_change: OnChange,
        history: int = 1000,
    ) -> None:
        self.settings = settings
        self.topic = settings.topic(ORDERS)
        self.wants = wants
        self.on_change = on_change
        self.history = history
        self.erased: dict[bytes, None] = {}
        """The keys (order ids) of the latest erased orders, oldest first (at most MAX_ERASED_REMEMBERED)."""
        self.positions: dict[int, int] = {}
        """The next offset the feed will read, per partition: every record before it has been handed on."""
        self._recent: dict[int, collections.deque[RawRecord]] = {}
        # Memory holds every record of a partition after this offset (records it had to let go,
        # or those before the feed started, are at or below it).
        self._forgotten: dict[int, int] = {}
        self._moved = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self.started = asyncio.Event()

    @property
    def partitions(self) -> int:
        """How many partitions `orders` has (0 before the feed has started)."""
        return len(self.positions)

    async def start(self) -> None:
        """Assign every partition of `orders` at its end offset and start reading."""
        consumer = await self._started_consumer("stategate-feed")
        self._consumer = consumer
        tps = [TopicPartition(self.topic, p) for p in range(await partition_count(self.settings, self.topic))]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        for tp in tps:
            consumer.seek(tp, ends[tp])
            self.positions[tp.partition] = ends[tp]
            self._forgotten[tp.partition] = ends[tp] - 1
            self._recent[tp.partition] = collections.deque(maxlen=self.history)
        self._task = asyncio.get_running_loop().create_task(self._read(), name="order-feed")
        self.started.set()
        log.info("order feed started", extra={"partitions": len(tps)})

    async def stop(self) -> None:
        """Stop reading."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()

    async def wait_past(self, partition: int, offset: int, timeout: float) -> bool:
        """Wait until the feed has handed on the record at `offset` of `partition`; False on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.positions.get(partition, 0) <= offset:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._moved.wait(), remaining)
        return True

    def recent(self, partition: int, after: int) -> list[FeedItem] | None:
        """The records of `partition` after offset `after` up to the feed's position, from memory.

        None when memory no longer holds all of them (the caller reads Kafka).
        """
        position = self.positions.get(partition)
        if position is None:
            return None
        if after + 1 >= position:
            return []
        if after < self._forgotten[partition]:
            return None
        changes = []
        for record in self._recent[partition]:
            if record.offset > after:
                change = parse_change(
                    partition, record.offset, record.key, record.value, record.timestamp, record.erasure
                )
                if change is not None:
                    changes.append(change)
        return changes

    async def read_range(self, partition: int, after: int, before: int) -> list[FeedItem] | None:
        """The records of `partition` with offsets in (after, before), read from Kafka.

        None when Kafka no longer has the first of them (deleted or the log
        start moved past it) or when there are more than MAX_RANGE_RECORDS.
        """
        if before - after - 1 > MAX_RANGE_RECORDS:
            return None
        if after + 1 >= before:
            return []
        tp = TopicPartition(self.topic, partition)
        consumer = await self._started_consumer("stategate-feed-history")
        try:
            consumer.assign([tp])
            start = (await consumer.beginning_offsets([tp]))[tp]
            if start > after + 1:
                return None
            consumer.seek(tp, after + 1)
            changes: list[FeedItem] = []
            while True:
                batches = await consumer.getmany(tp, timeout_ms=1000)
                records = batches.get(tp, [])
                if not records and await consumer.position(tp) >= before:
                    return changes
                for record in records:
                    if record.offset >= before:
                        return changes
                    change = _change_of(partition, record)
                    if change is not None and not self._after_erasure(change):
                        changes.append(change)
        finally:
            await consumer.stop()

    async def _started_consumer(self, name: str) -> AIOKafkaConsumer:
        """A consumer in no group, that commits nothing; partitions are assigned by hand."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.broker,
            client_id=f"{name}-{self.settings.node_id}",
            enable_auto_commit=False,
            fetch_max_wait_ms=self.settings.fetch_max_wait_ms,
        )
        await consumer.start()
        return consumer

    async def _read(self) -> None:
        assert self._consumer is not None
        consumer = self._consumer
        while True:
            try:
                batches = await consumer.getmany(timeout_ms=1000)
            except ConsumerStoppedError:
                return
            except KafkaError as exc:
                log.warning("order feed cannot read", extra={"error": repr(exc)})
                await asyncio.sleep(self.settings.retry_after_seconds)  # the broker is away: try again later
                continue
            for tp, records in batches.items():
                self._hand_on(tp.partition, records)
            if batches:
                self._moved.set()
                self._moved.clear()

    def _hand_on(self, partition: int, records: Iterable[ConsumerRecord[bytes, bytes]]) -> None:
        kept = self._recent[partition]
        for record in records:
            key, value = record.key, record.value
            self.positions[partition] = record.offset + 1
            if key is None or value is None:
                continue
            key = business_key(key)
            erasure = erasure_kind(record.headers) == REQUEST
            if erasure:
                self._forget(partition, key)
            elif key in self.erased:
                continue  # a version written after its order's erasure
            if len(kept) == self.history:
                self._forgotten[partition] = kept[0].offset
            kept.append(RawRecord(record.offset, key, value, record.timestamp / 1000.0, erasure))
            if self.wants(key):
                self._publish(parse_change(partition, record.offset, key, value, record.timestamp / 1000.0, erasure))

    def _after_erasure(self, change: FeedItem) -> bool:
        """Whether a change is a version of an order this feed saw erased."""
        return isinstance(change, Change) and change.order_id.encode() in self.erased

    def _forget(self, partition: int, key: bytes) -> None:
        """An order was erased: drop its records from memory, and remember its key to drop later versions."""
        self.erased[key] = None
        if len(self.erased) > MAX_ERASED_REMEMBERED:
            del self.erased[next(iter(self.erased))]
        kept = self._recent[partition]
        if any(record.key == key for record in kept):
            remaining = [record for record in kept if record.key != key]
            kept.clear()
            kept.extend(remaining)

    def _publish(self, change: FeedItem | None) -> None:
        if change is None:
            return
        try:
            self.on_change(change)
        except Exception:
            log.exception("a live stream failed on an order change", extra={"order_id": change.order_id})


def _change_of(partition: int, record: ConsumerRecord[bytes, bytes]) -> FeedItem | None:
    erasure = erasure_kind(record.headers) == REQUEST
    key = None if record.key is None else business_key(record.key)
    return parse_change(partition, record.offset, key, record.value, record.timestamp / 1000.0, erasure)
