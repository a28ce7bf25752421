"""The `stategate services` process: the order checks, their relay and the example services.

It says when it is ready, the way a node's /readyz does: a `services ready`
log line, and the file `READY_FILE` in its data directory, present exactly
while its partitions are assigned, its tables recovered, the relay has its
partitions and no rebalance is under way (its JSON names the Faust consumer
group's generation). A crash of the Faust app or of the relay ends the
process with exit code 1, so a supervisor restarts it rather than leaving it
running without agents.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import orjson
from faust.contrib.asgi import faust_app_running

from stategate.streams.admin import ensure_topics
from stategate.streams.example_services import EXAMPLES_APP_ID, ExampleServices
from stategate.streams.faust_app import StategateApp, create_faust_app
from stategate.streams.order_checks import OrderServices

from .config import Settings
from .event_loop import run_loop
from .processes import READY_FILE
from .shutdown import exit_within

log = logging.getLogger("stategate.services")


class Readiness:
    """Keeps `path` present while every part of the services is ready, and logs each change."""

    def __init__(self, path: Path, node_id: str, generation: Callable[[], int], parts: Callable[[], bool]) -> None:
        self.path = path
        self.node_id = node_id
        self.generation = generation
        self.parts = parts
        self.ready = False
        path.unlink(missing_ok=True)

    def __call__(self, _changed: bool) -> None:
        """Told by a part that its readiness changed."""
        ready = self.parts()
        if ready == self.ready:
            return
        self.ready = ready
        if ready:
            generation = self.generation()
            self.path.write_bytes(orjson.dumps({"status": "ready", "node": self.node_id, "generation": generation}))
            log.info("services ready", extra={"generation": generation})
        else:
            self.path.unlink(missing_ok=True)
            log.info("services rebalancing")

    def close(self) -> None:
        """The process is stopping: not ready any more."""
        self.ready = False
        self.path.unlink(missing_ok=True)


async def serve_services(settings: Settings) -> int:
    """Run the services' Faust app until SIGTERM or Ctrl-C (0), or until it crashes (1)."""
    services = OrderServices(settings)
    # The example services get a Faust app (a consumer) of their own: every fetch names every
    # partition its consumer reads, so the order checks' fetches stay narrow (README, Performance).
    examples_app = create_faust_app(EXAMPLES_APP_ID, settings)
    examples = ExampleServices(examples_app, settings)
    await ensure_topics(settings, [*services.topic_specs, *examples.topic_specs])
    readiness = Readiness(
        settings.data_dir / READY_FILE,
        settings.node_id,
        generation=lambda: services.app.consumer_generation_id,
        parts=lambda: services.app.ready and examples_app.ready and services.relay.ready,
    )
    services.app.on_readiness = readiness
    examples_app.on_readiness = readiness
    services.relay.on_readiness = readiness
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        exit_within(settings.shutdown_seconds)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    crashed = False
    try:
        async with (
            faust_app_running(services.app, stop_timeout=settings.shutdown_seconds - 2),
            faust_app_running(examples_app, stop_timeout=settings.shutdown_seconds - 2),
        ):
            await services.relay.start()
            try:
                log.info("services started", extra={"broker": settings.broker})
                stopping = loop.create_task(stop.wait())
                crashing = loop.create_task(_first_crash(services.app, examples_app))
                relay_ended = services.relay.task
                await asyncio.wait([stopping, crashing, relay_ended], return_when=asyncio.FIRST_COMPLETED)
                crashed = not stopping.done()
                for task in (stopping, crashing):
                    task.cancel()
                if crashed:
                    reason = crashing.result() if crashing.done() else _relay_error(relay_ended)
                    log.error("the services crashed", extra={"error": repr(reason)})
                    exit_within(settings.shutdown_seconds)
            finally:
                await services.relay.stop()
    finally:
        readiness.close()
    log.info("services stopped")
    return 1 if crashed else 0


async def _first_crash(*apps: StategateApp) -> BaseException | None:
    """Wait until one of the Faust apps crashes; its crash reason."""
    waits = [asyncio.ensure_future(app._crashed.wait()) for app in apps]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()
    return next((app.crash_reason for app in apps if app._crashed.is_set()), None)


def _relay_error(task: asyncio.Task[None]) -> BaseException | None:
    return None if task.cancelled() else task.exception()


def run_services(settings: Settings) -> None:
    """Run the services in the foreground; exit 1 if they crashed."""
    code = 0

    async def main() -> None:
        nonlocal code
        code = await serve_services(settings)

    with contextlib.suppress(KeyboardInterrupt):
        run_loop(main())
    if code:
        sys.exit(code)
