"""One gateway node: the order view and the HTTP API in one process and one event loop.

    uvicorn ─► views (FastAPI) ─► app.orders.OrderService ─► streams (Kafka)
                                          ▲
    `orders` topic ─► streams.order_view ──┘ (wakes parked requests)

uvicorn drives the loop; the lifespan starts the command producer, the
reply consumer and the order view. On SIGTERM the server stops accepting,
answers every parked request, lets open requests finish, then leaves the
group.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Iterator
from typing import Any, cast

import uvicorn

from streams.admin import TopicSpec, ensure_topics
from streams.commands import CommandProducer
from streams.order_view import OrderView
from streams.records import Order
from streams.replies import replies_topic_spec
from streams.topics import ORDERS, WAREHOUSE_INVENTORY

from .config import Settings
from .http_protocol import node_http_protocol
from .metrics import Metrics
from .orders import OrderService
from .peers import Peers
from .routing import Routing
from .service_calls import ServiceCalls
from .shutdown import exit_within
from .waiters import Waiters

log = logging.getLogger("stategate.node")


class Node:
    """Everything one gateway node is made of, wired together."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.waiters = Waiters(settings.max_waiters)
        self.metrics.parked.set_function(lambda: len(self.waiters))
        self.view = OrderView(settings, on_change=self._on_change, on_assigned=self._on_partitions_assigned)
        self.producer = CommandProducer(settings)
        self.peers = Peers(settings.url, settings.node_id, peer_urls=settings.peer_urls)
        self.routing = Routing(self.view, settings.url, is_down=self.peers.is_down)
        self.orders = OrderService(
            self.producer,
            self.view,
            self.waiters,
            orders_topic=settings.topic(ORDERS),
            inventory_topic=settings.topic(WAREHOUSE_INVENTORY),
            new_id=self.routing.new_order_id,
        )
        self.service_calls = ServiceCalls(
            settings,
            self.producer,
            self.metrics,
            members=lambda: self.routing.members(),
            client=lambda: self.peers.client,
        )
        self.metrics.service_parked.set_function(lambda: len(self.service_calls))
        self.draining = False

    def _on_change(self, order: Order) -> None:
        self.orders.on_change(order)

    def _on_partitions_assigned(self, mine: frozenset[int]) -> None:
        """Send the requests parked on orders this node no longer owns to their new owner."""
        moved = self.waiters.move(lambda order_id: self.routing.partition_of(order_id) not in mine)
        if moved:
            log.info("redirected parked requests after a rebalance", extra={"moved": moved})

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
        self.waiters.close(moved=self.routing.another_member() is not None)
        # Service replies that come while open requests finish are still answered.
        self.service_calls.close(grace=max(self.settings.drain_seconds - 1.0, 0.0))
        log.info("answered parked requests", extra={"parked": parked})

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Start the producer, the reply consumer and the order view for the duration of the block."""
        settings = self.settings
        topics = [TopicSpec(settings.topic(name), settings.partitions) for name in (ORDERS, WAREHOUSE_INVENTORY)]
        await ensure_topics(settings, [*topics, replies_topic_spec(settings)])
        await self.producer.start()
        await self.service_calls.replies.start()
        try:
            await self.view.start()
            log.info("node started", extra={"url": settings.url})
            probing = asyncio.get_running_loop().create_task(self.peers.probe(self.routing.members))
            try:
                yield
            finally:
                probing.cancel()
        finally:
            await self.view.stop()
            await self.service_calls.replies.stop()
            await self.peers.close()
            await self.producer.stop()


class NodeServer(uvicorn.Server):
    """uvicorn, answering the node's parked requests before it waits for connections to close."""

    def __init__(self, config: uvicorn.Config, node: Node) -> None:
        super().__init__(config)
        self.node = node

    def handle_exit(self, sig: int, frame: Any) -> None:
        exit_within(self.node.settings.shutdown_seconds)
        super().handle_exit(sig, frame)

    async def shutdown(self, sockets: Any = None) -> None:
        self.node.drain()
        await super().shutdown(sockets)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Stop gracefully on SIGTERM or Ctrl-C, then exit 0 (uvicorn would re-raise the signal)."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.handle_exit, sig, None)
        try:
            yield
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)


def create_server(settings: Settings) -> NodeServer:
    """The node's HTTP server, with the order view in its lifespan."""
    from views.api import create_api

    node = Node(settings)
    api = create_api(node)

    @contextlib.asynccontextmanager
    async def lifespan_app() -> AsyncIterator[None]:
        async with node.running():
            yield

    config = uvicorn.Config(
        _WithLifespan(api, lifespan_app),
        interface="asgi3",
        http=node_http_protocol(settings.retry_after_seconds),
        host=settings.host,
        port=settings.port,
        loop="none",
        lifespan="on",
        access_log=False,
        log_config=None,
        proxy_headers=False,  # the client address is never taken from X-Forwarded-For
        timeout_graceful_shutdown=int(settings.drain_seconds),
        timeout_keep_alive=30,
        limit_concurrency=settings.max_waiters + 1000,
    )
    return NodeServer(config, node)


class _WithLifespan:
    """Runs `lifespan()` around the ASGI app's life; passes every other scope straight through.

    A plain callable returning the app's coroutine rather than a coroutine
    of its own, so that a parked request carries no extra frame.
    """

    def __init__(self, app: Any, lifespan: Any) -> None:
        self.app = app
        self.lifespan = lifespan

    def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Awaitable[None]:
        if scope["type"] == "lifespan":
            return self._run_lifespan(receive, send)
        return cast(Awaitable[None], self.app(scope, receive, send))

    async def _run_lifespan(self, receive: Any, send: Any) -> None:
        message = await receive()
        assert message["type"] == "lifespan.startup"
        try:
            async with self.lifespan():
                await send({"type": "lifespan.startup.complete"})
                message = await receive()
        except Exception as exc:
            log.exception("node failed")
            await send({"type": "lifespan.startup.failed", "message": repr(exc)})
            return
        await send({"type": "lifespan.shutdown.complete"})


def run_node(settings: Settings) -> None:
    """Run one gateway node until SIGTERM or Ctrl-C."""
    server = create_server(settings)
    run_loop(server.serve())


def run_loop(main: Any) -> None:
    """Run a coroutine on uvloop when it is installed, else on asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main)
