"""The process of one gateway node: uvicorn, the node's lifespan and its shutdown.

uvicorn drives the event loop; the lifespan starts the node (`Node.running`).
On SIGTERM the server stops accepting, answers every parked request, lets
open requests finish, then leaves the group. The HTTP API is handed in
(`create_api`), so this module knows nothing of views.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, cast

import uvicorn

from .config import Settings
from .event_loop import run_loop
from .http_protocol import node_http_protocol
from .node import Node
from .shutdown import exit_within
from .ws_protocol import LeanWSProtocol

ApiFactory = Callable[[Node], Any]
"""Builds a node's ASGI application (`stategate.views.api.create_api`)."""

log = logging.getLogger("stategate.node")


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


def create_server(settings: Settings, create_api: ApiFactory) -> NodeServer:
    """The node's HTTP server, with the order view in its lifespan."""
    node = Node(settings)
    api = create_api(node)

    @contextlib.asynccontextmanager
    async def lifespan_app() -> AsyncIterator[None]:
        async with node.running():
            yield

    config = uvicorn.Config(
        _WithLifespan(api, lifespan_app),
        interface="asgi3",
        http=node_http_protocol(settings.retry_after_seconds, settings.node_id),
        host=settings.host,
        port=settings.port,
        loop="none",
        lifespan="on",
        access_log=False,
        log_config=None,
        proxy_headers=False,  # the client address is never taken from X-Forwarded-For
        timeout_graceful_shutdown=int(settings.drain_seconds),
        timeout_keep_alive=30,
        # WebSockets: messages no larger than a request body; pings keep idle sockets alive through proxies.
        ws=LeanWSProtocol,
        ws_max_size=settings.max_body_bytes,
        ws_ping_interval=settings.heartbeat_seconds,
        ws_ping_timeout=settings.heartbeat_seconds,
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


def run_node(settings: Settings, create_api: ApiFactory) -> None:
    """Run one gateway node until SIGTERM or Ctrl-C."""
    server = create_server(settings, create_api)
    run_loop(server.serve())
