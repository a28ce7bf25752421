"""One gateway node: the order view, the waiters and the use-cases, wired together.

    views (HTTP) ─► app.orders.OrderService ─► streams (Kafka)
                            ▲
    `orders` topic ─► streams.order_view ──┘ (wakes parked requests)

`Node.running()` starts the command producer, the reply consumer and the
order view; `app/node_process.py` runs it under uvicorn with the HTTP API.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from stategate.streams.admin import TopicSpec, ensure_topics
from stategate.streams.cluster_secret import agreed_secret
from stategate.streams.commands import CommandProducer
from stategate.streams.order_feed import OrderFeed
from stategate.streams.order_view import OrderView
from stategate.streams.records import Order
from stategate.streams.replies import replies_topic_spec
from stategate.streams.topics import ORDERS, WAREHOUSE_INVENTORY, topic_configs

from .config import Settings
from .customer_orders import customer_order_ids
from .erasure import OrderErasure
from .errors import NoOwner
from .metrics import Metrics
from .order_streams import OrderStreams, Snapshot
from .orders import OrderService
from .ownership import Ownership
from .peers import Peers
from .service_calls import ServiceCalls
from .sessions import Sessions, Socket
from .waiters import Waiters

log = logging.getLogger("stategate.node")

SNAPSHOT_TIMEOUT_SECONDS = 5.0
"""How long a node asking the owner for an order's snapshot waits (peer probes wait 1 s)."""


class Node:
    """Everything one gateway node is made of, wired together."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.waiters = Waiters(settings.max_waiters)
        self.metrics.parked.set_function(lambda: len(self.waiters))
        self.view = OrderView(
            settings,
            on_change=self._on_change,
            on_assigned=self._on_partitions_assigned,
            on_rejected=lambda reason: self.metrics.orders_rejected.labels(reason).inc(),
            on_erased=self._on_erased,
            marker_of=lambda order_id: self.erasure.marker_of(order_id),
        )
        self.producer = CommandProducer(settings)
        self.peers = Peers(settings.url, settings.node_id, peer_urls=settings.peer_urls)
        self.ownership = Ownership(self.view, settings.url, is_down=self.peers.is_down)
        self.orders = OrderService(
            self.producer,
            self.view,
            self.waiters,
            orders_topic=settings.topic(ORDERS),
            inventory_topic=settings.topic(WAREHOUSE_INVENTORY),
            new_id=self.ownership.new_order_id,
            owner_of=self.ownership.owner,
            ask_owner=self.peers.order,
        )
        self.service_calls = ServiceCalls(
            settings,
            self.producer,
            self.metrics,
            members=lambda: self.ownership.members(),
            client=lambda: self.peers.client,
        )
        self.metrics.service_parked.set_function(lambda: len(self.service_calls))
        self.feed = OrderFeed(
            settings,
            wants=lambda key: self.streams.wants(key),
            on_change=lambda change: self.streams.on_change(change),
            history=settings.feed_history,
        )
        self.streams = OrderStreams(
            self.feed,
            self.ownership.partition_of,
            self.snapshot,
            lambda customer_id: customer_order_ids(self.service_calls, customer_id, settings.produce_timeout_seconds),
            limit=settings.max_streams,
            capacity=settings.stream_backlog,
        )
        self.metrics.live_subscriptions.set_function(lambda: len(self.streams))
        self.sessions = Sessions(
            settings.url,
            grace=settings.session_grace_seconds,
            replay_size=settings.session_replay,
            members=lambda: self.ownership.members(),
            client=lambda: self.peers.client,
            secret=lambda: self.service_calls.cluster_secret,
        )
        self.erasure = OrderErasure(
            settings, self.producer, self.view, self.metrics, secret=lambda: self.service_calls.cluster_secret
        )
        self.sockets: set[Socket] = set()
        self._snapshots: dict[str, asyncio.Future[Snapshot | None]] = {}
        self.draining = False

    def _on_change(self, order: Order) -> None:
        self.orders.on_change(order)

    def _on_erased(self, order_id: str) -> None:
        self.orders.on_erased(order_id)
        self.erasure.on_erased(order_id)

    def _on_partitions_assigned(self, mine: frozenset[int]) -> None:
        """Send the requests parked on orders this node no longer owns to their new owner."""
        moved = self.waiters.move(lambda order_id: self.ownership.partition_of(order_id) not in mine)
        if moved:
            log.info("redirected parked requests after a rebalance", extra={"moved": moved})

    async def snapshot(self, order_id: str) -> Snapshot:
        """The order as its owner holds it, with the offset that is as of; raises NoOwner when nobody can say.

        Streams opened at once on one order (a thousand clients reconnecting
        after a node stopped) share one request to the owner.
        """
        owner = self.ownership.owner(order_id)
        if owner.is_self:
            return self.local_snapshot(order_id)
        if owner.url is None:
            raise NoOwner(f"no node owns order {order_id!r} right now")
        asking = self._snapshots.get(order_id)
        if asking is None:
            asking = asyncio.ensure_future(self.peers.snapshot(owner.url, order_id, SNAPSHOT_TIMEOUT_SECONDS))
            self._snapshots[order_id] = asking
            asking.add_done_callback(lambda _: self._snapshots.pop(order_id, None))
        snapshot = await asyncio.shield(asking)
        if snapshot is None:
            raise NoOwner(f"the owner of order {order_id!r} did not answer")
        return snapshot

    def local_snapshot(self, order_id: str) -> Snapshot:
        """The order in this node's view and the offset its partition is applied up to (read in one step)."""
        partition = self.ownership.partition_of(order_id)
        return Snapshot(order_id, self.view.get(order_id), partition, self.view.applied_offset(partition))

    def is_ready(self) -> bool:
        """Partitions assigned and read to their end, no rebalance under way, not shutting down."""
        return self.view.ready and not self.draining

    def drain(self) -> None:
        """Answer every parked request now; used when the node stops.

        When other nodes are live, parked requests are sent to one of them
        (it redirects again to the new owner, or answers 503 + Retry-After
        until the rebalance settles); alone, they get the order as it stands.
        """
        self.draining = True
        parked = len(self.waiters)
        self.waiters.close(moved=self.ownership.another_member() is not None)
        # Service replies that come while open requests finish are still answered.
        self.service_calls.close(grace=max(self.settings.drain_seconds - 1.0, 0.0))
        streams = self.streams.close_all()
        for socket in list(self.sockets):
            socket.stop(1012, "node stopping: reconnect to another node")
        log.info("answered parked requests", extra={"parked": parked, "streams": streams})

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Start the producer, the reply consumer and the order view for the duration of the block."""
        settings = self.settings
        topics = [
            TopicSpec(settings.topic(ORDERS), settings.partitions, topic_configs(ORDERS, settings)),
            TopicSpec(settings.topic(WAREHOUSE_INVENTORY), settings.services_partitions),
            replies_topic_spec(settings),
        ]
        await ensure_topics(settings, topics)
        if not settings.cluster_secret:
            self.service_calls.cluster_secret = await agreed_secret(settings)
        await self.producer.start()
        await self.service_calls.replies.start()
        try:
            await self.view.start()
            await self.feed.start()
            log.info("node started", extra={"url": settings.url})
            loop = asyncio.get_running_loop()
            probing = loop.create_task(self.peers.probe(self.ownership.members))
            beating = loop.create_task(self.streams.beat(settings.heartbeat_seconds))
            erasing = loop.create_task(self.erasure.run())
            try:
                yield
            finally:
                probing.cancel()
                beating.cancel()
                erasing.cancel()
        finally:
            await self.feed.stop()
            await self.view.stop()
            await self.service_calls.replies.stop()
            await self.peers.close()
            await self.producer.stop()
