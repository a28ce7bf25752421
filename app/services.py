"""The `stategate services` process: the order validators, the aggregator and the example services."""

from __future__ import annotations

import asyncio
import logging
import signal

from faust.contrib.asgi import faust_app_running

from streams.admin import ensure_topics
from streams.example_services import ExampleServices
from streams.order_services import OrderServices

from .config import Settings
from .node import run_loop
from .shutdown import exit_within

log = logging.getLogger("stategate.services")


async def serve_services(settings: Settings) -> None:
    """Run the services' Faust app until SIGTERM or Ctrl-C."""
    services = OrderServices(settings)
    examples = ExampleServices(services.app, settings)  # one Faust app (one consumer group) per process
    await ensure_topics(settings, [*services.topic_specs, *examples.topic_specs])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        exit_within(settings.shutdown_seconds)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    async with faust_app_running(services.app, stop_timeout=settings.shutdown_seconds - 2):
        log.info("services started", extra={"broker": settings.broker})
        await stop.wait()
    log.info("services stopped")


def run_services(settings: Settings) -> None:
    """Run the services in the foreground."""
    run_loop(serve_services(settings))
