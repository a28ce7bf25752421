"""The gateway's view of `orders`: each node materializes its partitions, and knows who holds the rest.

    `orders` ─► group consumer (this node's active partitions) ─┐
    `orders` ─► standby consumer (copies for failover) ─────────┴─► OrderStore (RocksDB) ─► on_change

The view is a plain aiokafka consumer in the app's event loop, not a Faust
table: the order store is a pure function of the `orders` topic, so the
topic is its own changelog, and the store keeps its applied offset next to
the values (see order_store.py). No offset is committed to the group and no
record is skipped: a partition is read from the offset after the stored
one whenever it is assigned, by either consumer.

Ownership comes from the group: `ViewAssignor` hands every member the whole
map of active and standby partitions with each member's advertised URL.
While a rebalance is under way, and until this node has read its new
partitions up to the end offsets they had when assigned, `rebalancing` is
true: the node neither answers for those orders nor sends clients away. It
is true as well while the group's coordinator has stopped answering this
node's heartbeats for about a session (group_session.py): a node cut off
from Kafka stops answering for orders another member is about to own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import ConsumerStoppedError, IllegalStateError, KafkaError

from .consumer_options import group_timing
from .erasable_keys import partition_for
from .group_session import GroupSession
from .kafka_settings import KafkaSettings
from .order_store import Erased, MarkerOf, OnRejected, OrderStore
from .records import Order
from .topics import ORDERS
from .view_assignor import Claim, ClusterMap, ViewAssignor

VIEW_GROUP = "stategate-orders-view"

log = logging.getLogger("stategate.streams.order_view")

OnChange = Callable[[Order], None]
OnErased = Callable[[str], None]
"""Told the id of each order this node dropped because it was erased."""
OnAssigned = Callable[[frozenset[int]], None]


class OrderView:
    """This node's orders, read from `orders`, and the group's map of who owns which partition."""

    def __init__(
        self,
        settings: KafkaSettings,
        on_change: OnChange,
        on_assigned: OnAssigned,
        on_rejected: OnRejected | None = None,
        on_erased: OnErased | None = None,
        marker_of: MarkerOf | None = None,
    ) -> None:
        self.settings = settings
        self.topic = settings.topic(ORDERS)
        self.url = settings.url.rstrip("/")
        self.store = OrderStore(
            settings.data_dir / settings.topic(VIEW_GROUP),
            block_cache_bytes=settings.rocksdb_block_cache_bytes,
            write_buffer_bytes=settings.rocksdb_write_buffer_bytes,
            marker_of=marker_of,
        )
        self.on_change = on_change
        self.on_erased = on_erased
        self.on_assigned = on_assigned
        self.on_rejected = on_rejected
        self.cluster = ClusterMap()
        self.active: frozenset[int] = frozenset()
        self.standby: frozenset[int] = frozenset()
        self._planned_standby: frozenset[int] = frozenset()
        self._catching_up: dict[int, int | None] = {}  # partition -> end offset to read up to
        self._joined = False
        self._revoked = True
        self.session = GroupSession(settings)
        self._standby_changed = asyncio.Event()
        self._started = time.time()
        self.assignor = ViewAssignor(self.topic, self._claim, settings.standby_replicas, self._on_map)
        self._group: AIOKafkaConsumer | None = None
        self._copies: AIOKafkaConsumer | None = None
        self._tasks: list[asyncio.Task[None]] = []

    # -- questions the HTTP side asks -------------------------------------------------------------

    @property
    def rebalancing(self) -> bool:
        """A rebalance is under way, this node has not yet read its partitions to their end, or lost its group."""
        return self._revoked or bool(self._catching_up) or self.session.lost

    @property
    def ready(self) -> bool:
        """Joined the group, and every owned partition read up to where it stood when assigned."""
        return self._joined and not self.rebalancing

    def get(self, order_id: str) -> Order | None:
        """The newest version of an order this node holds, or None."""
        return self.store.get(order_id)

    def is_erased(self, order_id: str) -> bool:
        """Whether this node applied an erasure of `order_id` (for its partitions: active or standby)."""
        return self.store.is_erased(order_id)

    def partition_of(self, order_id: str) -> int:
        """The partition of `orders` an order id hashes to (Kafka's default partitioner)."""
        return partition_for(order_id.encode(), self.cluster.partitions or self.settings.partitions)

    def owner_url(self, order_id: str) -> str | None:
        """The advertised URL of the member that owns `order_id`, or None.

        None too when the map names this node but the partition is not among
        the ones it reads (the map was made for an earlier process on this URL).
        """
        partition = self.partition_of(order_id)
        url = self.cluster.owner(partition)
        if url == self.url and partition not in self.active:
            return None
        return url

    async def read_to_end(self, partition: int, timeout: float) -> bool:
        """Whether this node has applied every record Kafka holds on `partition` now; False if Kafka cannot say.

        An order that is not in the view may still be on its way: written and
        acknowledged, but not read yet (a leader moving after a broker died).
        """
        if self._group is None:
            return False
        tp = TopicPartition(self.topic, partition)
        try:
            ends = await asyncio.wait_for(self._group.end_offsets([tp]), timeout)
        except (KafkaError, TimeoutError):
            return False
        end: int = ends[tp]
        return self.store.applied_offset(partition) >= end - 1

    def applied_offset(self, partition: int) -> int:
        """The offset of the last record applied from `partition` (-1: none)."""
        return self.store.applied_offset(partition)

    def applied(self) -> dict[int, int]:
        """The offset of the last record applied from each partition this node reads."""
        return {p: self.store.applied_offset(p) for p in sorted(self.active | self.standby)}

    def members(self) -> dict[str, list[int]]:
        """Every member's advertised URL and the partitions it owns."""
        return {url: list(partitions) for url, partitions in self.cluster.active.items()}

    # -- running ----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Join the group and start reading."""
        settings = self.settings
        common = {
            "bootstrap_servers": settings.broker,
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest",
            "fetch_max_wait_ms": settings.fetch_max_wait_ms,
        }
        self._group = AIOKafkaConsumer(
            group_id=settings.topic(VIEW_GROUP),
            client_id=f"stategate-view-{settings.node_id}",
            partition_assignment_strategy=(self.assignor,),
            **group_timing(settings),
            **common,
        )
        self._copies = AIOKafkaConsumer(client_id=f"stategate-view-standby-{settings.node_id}", **common)
        await self._copies.start()  # before the group's first assignment gives it standby partitions
        self._group.subscribe([self.topic], listener=_Listener(self))
        await self._group.start()
        self.session.watch(self._group)
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._read(self._group, self._check_caught_up), name="view-active"),
            loop.create_task(self._read_copies(), name="view-standby"),
        ]

    async def stop(self) -> None:
        """Leave the group, stop reading and close the store."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for consumer in (self._group, self._copies):
            if consumer is not None:
                await consumer.stop()
        self.store.close()

    async def _read(self, consumer: AIOKafkaConsumer, after_batch: Callable[[], Awaitable[None]]) -> None:
        while await self._read_once(consumer):
            await after_batch()

    async def _read_copies(self) -> None:
        assert self._copies is not None
        while True:
            if not self._copies.assignment():
                self._standby_changed.clear()
                await self._standby_changed.wait()
            elif not await self._read_once(self._copies):
                return

    async def _read_once(self, consumer: AIOKafkaConsumer) -> bool:
        """Apply one batch of records; False once the consumer has stopped."""
        try:
            batches = await consumer.getmany(timeout_ms=100 if self._catching_up else 1000)
        except ConsumerStoppedError:
            return False
        except IllegalStateError:
            if consumer is self._copies:
                return True  # its partitions were taken away while it fetched: `_read_copies` waits for new ones
            raise
        except KafkaError as exc:
            log.warning("cannot read orders", extra={"error": repr(exc)})
            await asyncio.sleep(self.settings.retry_after_seconds)  # the broker is away: try again later
            return True
        for tp, records in batches.items():
            # The owner reports a rejected record; a standby copy of the partition stays quiet about it.
            reporting = None if consumer is self._copies else self.on_rejected
            for change in self.store.apply(tp.partition, records, reporting):
                if isinstance(change, Erased):
                    self._erased(change.order_id)
                else:
                    self._publish(change)
        return True

    def _erased(self, order_id: str) -> None:
        if self.on_erased is None:
            return
        try:
            self.on_erased(order_id)
        except Exception:
            log.exception("a waiter failed on an erasure", extra={"order_id": order_id})

    def _publish(self, order: Order) -> None:
        try:
            self.on_change(order)
        except Exception:
            log.exception("a waiter failed on an order change", extra={"order_id": order.id})

    # -- the group --------------------------------------------------------------------------------

    def _claim(self) -> Claim:
        return Claim(self.url, self.active, self.standby, self._started)

    def _on_map(self, cluster: ClusterMap, standby: frozenset[int]) -> None:
        self.cluster = cluster
        self._planned_standby = standby

    def _revoke(self) -> None:
        self._revoked = True

    def _assign(self, partitions: frozenset[int]) -> None:
        """Start reading newly assigned partitions from the offset after the stored one."""
        assert self._group is not None
        for partition in partitions:
            self._group.seek(TopicPartition(self.topic, partition), self.store.applied_offset(partition) + 1)
        self.active = partitions
        self._catching_up = dict.fromkeys(partitions)
        self._set_standby(self._planned_standby - partitions)
        self._revoked = False
        self._joined = True
        log.info(
            "orders partitions assigned",
            extra={"active": sorted(partitions), "standby": sorted(self.standby), "members": len(self.cluster.active)},
        )
        self.on_assigned(partitions)

    def _set_standby(self, partitions: frozenset[int]) -> None:
        assert self._copies is not None
        self.standby = partitions
        tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        self._copies.assign(tps)
        for tp in tps:
            self._copies.seek(tp, self.store.applied_offset(tp.partition) + 1)
        self._standby_changed.set()

    async def _check_caught_up(self) -> None:
        """Note the partitions read up to the end offsets they had when assigned."""
        if not self._catching_up:
            return
        assert self._group is not None
        tps = {p: TopicPartition(self.topic, p) for p in self._catching_up}
        try:
            if any(end is None for end in self._catching_up.values()):
                ends = await self._group.end_offsets(list(tps.values()))
                for p, tp in tps.items():
                    if self._catching_up.get(p, 0) is None:
                        self._catching_up[p] = ends[tp]
            for p, tp in tps.items():
                end = self._catching_up.get(p)
                if end is not None and await self._group.position(tp) >= end:
                    del self._catching_up[p]
        except (KafkaError, IllegalStateError, KeyError) as exc:
            log.debug("catch-up check deferred", extra={"error": repr(exc)})  # a new rebalance began
            return
        if not self._catching_up and not self._revoked:
            log.info("orders partitions read to their end", extra={"active": sorted(self.active)})


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, view: OrderView) -> None:
        self.view = view

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.view._revoke()

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.view.session.answered()
        self.view._assign(frozenset(tp.partition for tp in assigned if tp.topic == self.view.topic))
