"""Live streams of order changes, on any node: a snapshot, then every change, resumable by event id.

    streams.order_feed (all of `orders`) ─► OrderStreams.on_change ─► OrderStream ─► Outbox ─► SSE / WebSocket

Opening a stream registers it first, so that every change from then on is
kept; then it gets each order as it stands (a `Snapshot` from this node's
view, or from the owner's `/internal/orders/{id}/snapshot`) together with
the offset that snapshot is as of, fills the gap between that offset and
where the feed stood (the feed's memory, or Kafka), and hands everything to
the outbox in version order before it goes live. A client that comes back
with an event id gets, instead of snapshots, the changes after the
positions the id names (app/event_ids.py). Each order's versions only ever
go up in a stream: a version at or below one already queued is dropped, so
overlaps between snapshot, gap and live changes cost nothing.

An erased order's `Erasure` takes the place of its versions: whatever of
the order still waits in the outbox is dropped, and the client is told
instead. A stream of named orders counts an erased one as finished.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from stategate.streams.order_feed import Change, Erasure, FeedItem, OrderFeed
from stategate.streams.records import Order

from .errors import NoOwner, ShuttingDown, TooManyStreams
from .event_ids import decode_event_id, encode_event_id
from .lean_event import LeanEvent
from .outbox import Outbox, Pending

log = logging.getLogger("stategate.order_streams")

K = TypeVar("K", str, bytes)

MAX_VERSIONS_KEPT = 10_000
"""Orders a customer stream remembers the last version of; beyond, the oldest are forgotten."""
MAX_FEED_LAG_SECONDS = 2.0
"""How long a stream resumed on this node waits for its feed to reach the client's event id."""
MAX_RANGE_READS = 4
"""Reads of old records from Kafka at once, for clients that come back after a long time."""


@dataclass(frozen=True)
class Interest:
    """What a stream watches: some orders by id, or every order of one customer."""

    orders: frozenset[str] = frozenset()
    customer_id: str | None = None

    def matches(self, order: Order) -> bool:
        """Whether a change of `order` belongs in the stream."""
        return order.id in self.orders or (self.customer_id is not None and order.customer_id == self.customer_id)

    def wants(self, item: FeedItem) -> bool:
        """Whether a change or an erasure from the feed belongs in the stream."""
        if isinstance(item, Change):
            return self.matches(item.order)
        return item.order_id in self.orders or (self.customer_id is not None and item.customer_id == self.customer_id)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """An order as its owner holds it (None: unknown), and the offset of its partition that is as of."""

    order_id: str
    order: Order | None
    partition: int
    offset: int


SnapshotSource = Callable[[str], Awaitable[Snapshot]]
"""The order as it stands, from whichever node owns it; raises NoOwner when no node does right now."""
CustomerOrderIds = Callable[[str], Awaitable[list[str]]]
"""The ids of a customer's newest orders (the `customer-orders` index)."""


@dataclass(eq=False, slots=True)
class OrderStream:
    """One client's stream: what it watches, what it has yet to be sent, and why it ended."""

    interest: Interest
    outbox: Outbox
    ends_when_terminal: bool
    ended: str | None = None
    """Why the stream ended: "complete", "slow", "gone" (the client left) or "stopping"; None while it runs."""
    ready: asyncio.Event = field(default_factory=LeanEvent)
    """Set when there is something to send, a heartbeat is due, or the stream ended."""
    resumed: bool = False
    """Opened after the positions of a client's event id (not from snapshots)."""
    beat_due: bool = False
    """Set by the node's heartbeat: the writer sends a keep-alive when it has nothing else."""
    on_slow: Callable[[], None] | None = None
    """Called when the stream ends as too slow: cut the client's connection."""
    _early: list[FeedItem] | None = field(default_factory=list)
    _versions: dict[str, int] = field(default_factory=dict)
    _positions: dict[int, int] = field(default_factory=dict)
    _finished: set[str] | None = None

    def offer(self, change: FeedItem) -> None:
        """A change (or an erasure) from the feed: kept until the stream is live, then queued."""
        if self.ended is not None or not self.interest.wants(change):
            return
        if self._early is not None:
            self._early.append(change)
            return
        self._positions[change.partition] = max(self._positions.get(change.partition, -1), change.offset)
        self._queue(change, encode_event_id(self._positions))

    def go_live(self, initial: Iterable[FeedItem], positions: dict[int, int]) -> None:
        """Queue the snapshot batch and the changes kept meanwhile, in version order; from now on, queue live.

        Only the batch's last event carries an id (these positions): an id
        inside it would promise the client changes it has not been sent. An
        order erased within the batch is sent as its erasure only.
        """
        batch = sorted([*initial, *(self._early or ())], key=lambda change: (change.partition, change.offset))
        self._early = None
        erased = {change.order_id for change in batch if isinstance(change, Erasure)}
        fresh = [change for change in batch if change.order_id not in erased or isinstance(change, Erasure)]
        fresh = [change for change in fresh if self._newer(change)]
        self._positions = dict(positions)
        for i, change in enumerate(fresh):
            self._queue(change, encode_event_id(self._positions) if i == len(fresh) - 1 else None, checked=True)

    def take(self) -> Pending | None:
        """The next change to send, or None."""
        pending = self.outbox.take()
        if pending is None and self.ended is None:
            self.ready.clear()
        return pending

    def sent(self, pending: Pending) -> None:
        """Note a change as sent; a stream of named orders is complete once each is terminal or erased."""
        change = pending.change
        finished = isinstance(change, Erasure) or change.order.is_terminal
        if finished and self.ends_when_terminal:
            if self._finished is None:
                self._finished = set()
            self._finished.add(change.order_id)
            if len(self._finished) == len(self.interest.orders) and not len(self.outbox):
                self.end("complete")

    def beat(self) -> None:
        """A heartbeat is due: wake the writer."""
        self.beat_due = True
        self.ready.set()

    def lost(self) -> None:
        """The client's connection is gone."""
        self.end("gone")

    def end(self, reason: str) -> None:
        """End the stream (the first reason wins)."""
        if self.ended is not None:
            return
        self.ended = reason
        self.ready.set()
        if reason == "slow" and self.on_slow is not None:
            self.on_slow()

    def _newer(self, change: FeedItem) -> bool:
        if isinstance(change, Erasure):
            self._versions.pop(change.order_id, None)
            return True
        order = change.order
        if order.version <= self._versions.get(order.id, 0):
            return False
        self._versions.pop(order.id, None)
        self._versions[order.id] = order.version
        if len(self._versions) > MAX_VERSIONS_KEPT:
            del self._versions[next(iter(self._versions))]
        return True

    def _queue(self, change: FeedItem, event_id: str | None, checked: bool = False) -> None:
        if not checked and not self._newer(change):
            return
        if isinstance(change, Erasure):
            self.outbox.forget(change.order_id)  # what the client was yet to be sent of the order
        if not self.outbox.put(change, event_id):
            self.end("slow")
            return
        self.ready.set()


class OrderStreams:
    """Every live stream of this node, fed by the order feed; opens them consistently and ends them."""

    def __init__(
        self,
        feed: OrderFeed,
        partition_of: Callable[[str], int],
        snapshot: SnapshotSource,
        customer_order_ids: CustomerOrderIds,
        limit: int,
        capacity: int,
    ) -> None:
        self.feed = feed
        self.partition_of = partition_of
        self.snapshot = snapshot
        self.customer_order_ids = customer_order_ids
        self.limit = limit
        self.capacity = capacity
        self.closing = False
        self._streams: set[OrderStream] = set()
        self._by_key: dict[bytes, set[OrderStream]] = {}
        self._by_customer: dict[str, set[OrderStream]] = {}
        self._range_reads = asyncio.Semaphore(MAX_RANGE_READS)

    def __len__(self) -> int:
        return len(self._streams)

    def wants(self, key: bytes) -> bool:
        """Whether some stream watches the order with this key (or some stream watches a customer)."""
        return bool(self._by_customer) or key in self._by_key

    def on_change(self, change: FeedItem) -> None:
        """Hand a change (or an erasure) from the feed to every stream that watches it."""
        customer_id = change.order.customer_id if isinstance(change, Change) else change.customer_id
        for stream in (*self._by_key.get(change.order_id.encode(), ()), *self._by_customer.get(customer_id, ())):
            stream.offer(change)

    async def open(
        self,
        interest: Interest,
        last_event_id: str | None,
        timeout: float,
        outbox: Outbox | None = None,
        ready: asyncio.Event | None = None,
    ) -> OrderStream:
        """A live stream of `interest`, resumed after `last_event_id` when that names positions.

        Streams that feed one connection (a WebSocket's subscriptions) share
        its `outbox` and `ready` event. Raises ShuttingDown, TooManyStreams,
        or NoOwner when an order's owner cannot be asked right now (a
        rebalance) or the feed is not reading.
        """
        if self.closing:
            raise ShuttingDown()
        if len(self._streams) >= self.limit:
            raise TooManyStreams()
        if not self.feed.started.is_set():
            raise NoOwner("the order feed has not started")
        count = self.feed.partitions
        if interest.customer_id is not None:
            partitions = frozenset(range(count))
        else:
            partitions = frozenset(self.partition_of(order_id) for order_id in interest.orders)
        resume = decode_event_id(last_event_id, count) or {}
        resume = {p: offset for p, offset in resume.items() if p in partitions}
        for partition, offset in resume.items():
            # What the client has seen must be behind this node's feed, or it would be sent again. Another
            # node's feed may be a little ahead; an id further ahead than Kafka is was not made here.
            if not await self.feed.wait_past(partition, offset, min(timeout, MAX_FEED_LAG_SECONDS)):
                resume = {}  # fresh snapshots, never an error the client would retry for ever
                break
        stream = OrderStream(
            interest,
            Outbox(self.capacity) if outbox is None else outbox,
            ends_when_terminal=interest.customer_id is None,
            ready=LeanEvent() if ready is None else ready,
        )
        stream.resumed = bool(resume)
        self._add(stream)
        try:
            start = {p: self.feed.positions[p] for p in partitions}
            initial = await self._catch_up(stream, partitions, resume, start, timeout)
            stream.go_live(initial, {p: self.feed.positions[p] - 1 for p in partitions})
        except BaseException:
            self.close(stream)
            raise
        return stream

    def close(self, stream: OrderStream) -> None:
        """Forget a stream (its client left, or it ended)."""
        if stream not in self._streams:
            return
        self._streams.discard(stream)
        for order_id in stream.interest.orders:
            _discard(self._by_key, order_id.encode(), stream)
        if stream.interest.customer_id is not None:
            _discard(self._by_customer, stream.interest.customer_id, stream)

    async def beat(self, interval: float) -> None:
        """Every `interval` seconds, a heartbeat for every stream (one timer for all of them), for ever."""
        while True:
            await asyncio.sleep(interval)
            for stream in list(self._streams):
                stream.beat()

    def close_all(self) -> int:
        """End every stream because the node is stopping; no new one opens. Returns how many ended."""
        self.closing = True
        streams = list(self._streams)
        for stream in streams:
            stream.end("stopping")
        return len(streams)

    def _add(self, stream: OrderStream) -> None:
        self._streams.add(stream)
        for order_id in stream.interest.orders:
            self._by_key.setdefault(order_id.encode(), set()).add(stream)
        if stream.interest.customer_id is not None:
            self._by_customer.setdefault(stream.interest.customer_id, set()).add(stream)

    async def _catch_up(
        self,
        stream: OrderStream,
        partitions: frozenset[int],
        resume: dict[int, int],
        start: dict[int, int],
        timeout: float,
    ) -> list[FeedItem]:
        """The changes the client is owed up to `start`: after its positions, or snapshots and what followed."""
        interest = stream.interest
        initial: list[FeedItem] = []
        lost: set[int] = set()
        for partition, offset in resume.items():
            changes = await self._between(partition, offset, start[partition])
            if changes is None:
                lost.add(partition)  # gone from memory and Kafka: snapshots instead
            else:
                initial.extend(change for change in changes if interest.wants(change))
        covered = set(resume) - lost
        if interest.customer_id is not None:
            to_snapshot = [] if covered == partitions else await self.customer_order_ids(interest.customer_id)
        else:
            to_snapshot = [i for i in sorted(interest.orders) if self.partition_of(i) not in covered]
        snapshots = await asyncio.gather(*(self.snapshot(order_id) for order_id in to_snapshot))
        for snapshot in snapshots:
            partition = snapshot.partition
            if snapshot.order is not None:
                initial.append(Change(partition, snapshot.offset, snapshot.order))
            if snapshot.offset >= start.get(partition, 0):
                # The owner has read further than this node's feed: what lies between is kept as it arrives.
                if not await self.feed.wait_past(partition, snapshot.offset, timeout):
                    raise NoOwner("this node's order feed is behind the order's owner")
            else:
                gap = await self._between(partition, snapshot.offset, start[partition])
                initial.extend(change for change in gap or () if change.order_id == snapshot.order_id)
        return initial

    async def _between(self, partition: int, after: int, before: int) -> list[FeedItem] | None:
        """The records of `partition` in (after, before): from the feed's memory, else from Kafka."""
        recent = self.feed.recent(partition, after)
        if recent is not None:
            return [change for change in recent if change.offset < before]
        async with self._range_reads:
            return await self.feed.read_range(partition, after, before)


def _discard(index: dict[K, set[OrderStream]], key: K, stream: OrderStream) -> None:
    streams = index.get(key)
    if streams is not None:
        streams.discard(stream)
        if not streams:
            del index[key]
