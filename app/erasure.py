"""Erasing an order: `DELETE /v1/orders/{id}` on the node that owns it, and the passes that finish the job.

    DELETE ─► the erasure request on `orders` (acks=all) ─► every view drops the order ─► 202
                                                          └► the checks drop it from their tables
    the owner, every `erasure_check_seconds` ─► a pass (streams/erasure_pass.py) ─► tombstones
    a pass that finds nothing ─► the `done` marker ─► 204 from then on

The DELETE answers once this node's view has applied the request: from then
on GET answers 404 here, and on every other node, which sends readers here.
What is left is Kafka's part: the tombstones must be cleaned, which takes
up to the bound the erasable topics are configured with (README, Erasure).
The passes belong to whichever node owns the order's partition, so a
restart or a rebalance carries them on: the pending requests are in each
view's store.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable

from stategate.streams.commands import CommandProducer
from stategate.streams.erasure_pass import erasure_pass
from stategate.streams.erasure_records import (
    DONE,
    HEADER,
    MARKER_KEY,
    REQUEST,
    ErasureRequest,
    done_value,
    marker_of,
)
from stategate.streams.order_view import OrderView
from stategate.streams.topics import ORDERS

from .config import Settings
from .errors import KafkaUnavailable
from .metrics import Metrics

log = logging.getLogger("stategate.erasure")

BROKER_CLEANER_BACKOFF_SECONDS = 15.0
"""`log.cleaner.backoff.ms`, the broker's default: how long the cleaner sleeps when it finds nothing to do."""
BROKER_RETENTION_CHECK_SECONDS = 300.0
"""`log.retention.check.interval.ms`, the broker's default: how often it deletes segments past retention."""


class Erasure(enum.Enum):
    """How a DELETE went."""

    ACCEPTED = 202
    """The order is gone from every node's answers; Kafka's copies are being erased."""
    COMPLETE = 204
    """Nothing of the order is left in Kafka (a pass found nothing)."""
    UNKNOWN = 404
    """No such order, and none was erased."""


class OrderErasure:
    """Erasures of orders on this node's partitions."""

    def __init__(
        self,
        settings: Settings,
        producer: CommandProducer,
        view: OrderView,
        metrics: Metrics,
        secret: Callable[[], str],
    ) -> None:
        self.settings = settings
        self.producer = producer
        self.view = view
        self.metrics = metrics
        self.secret = secret
        self._dropping: dict[str, asyncio.Future[None]] = {}
        self._wake = asyncio.Event()
        self._passed: set[str] = set()  # erasures this process ran a pass of (the first one tells the tables)
        self.metrics.erasures_pending.set_function(lambda: len(self._mine()))

    def bound_seconds(self) -> float:
        """How long Kafka may keep an erased order's records, at most, with this deployment's settings.

        A segment rolls after `segment.ms` (a pass appends a record so that it
        can); the cleaner must get to it within `max.compaction.lag.ms`; the
        tombstones stay `delete.retention.ms` and go at the cleaner's next run
        of that segment (within `max.compaction.lag.ms` again); passes run every
        `erasure_check_seconds`. The checks' changelogs keep old values for
        `changelog_min_lag_seconds` first (see streams/admin.py); service replies
        that listed the order expire after `reply_retention_seconds`.
        """
        s = self.settings
        cleaning = s.erasure_segment_seconds + 2 * s.erasure_compaction_lag_seconds + s.erasure_tombstone_seconds
        kafka = cleaning + 2 * BROKER_CLEANER_BACKOFF_SECONDS
        replies = s.erasure_segment_seconds + s.reply_retention_seconds + BROKER_RETENTION_CHECK_SECONDS
        return max(s.changelog_min_lag_seconds + kafka, replies) + 2 * s.erasure_check_seconds

    def marker_of(self, order_id: str) -> str:
        """The order's erasure marker under this cluster's secret."""
        return marker_of(self.secret().encode(), order_id)

    async def erase(self, order_id: str) -> Erasure:
        """Erase an order this node owns; raises KafkaUnavailable when Kafka does not take the request in time."""
        marker = self.marker_of(order_id)
        store = self.view.store
        if store.erasure_done(marker):
            return Erasure.COMPLETE
        if store.marked(marker):
            return Erasure.ACCEPTED
        order = self.view.get(order_id)
        if order is None:
            return Erasure.UNKNOWN
        dropped = self._dropping.get(order_id)
        if dropped is None:
            dropped = self._dropping[order_id] = asyncio.get_running_loop().create_future()
            request = ErasureRequest(order_id, order.customer_id, order.product, marker)
            try:
                await self.producer.send(
                    self.settings.topic(ORDERS),
                    order_id,
                    request.to_json(),
                    headers=[(HEADER, REQUEST)],
                    erasable=True,
                )
            except KafkaUnavailable:
                self._dropping.pop(order_id, None)
                raise
        try:
            async with asyncio.timeout(self.settings.produce_timeout_seconds):
                await asyncio.shield(dropped)
        except TimeoutError:
            raise KafkaUnavailable("The erasure was written, but this node has not read it back yet.") from None
        self.metrics.erasures_requested.inc()
        log.info("order erased from the view", extra={"order_id": order_id})
        self._wake.set()
        return Erasure.ACCEPTED

    def on_erased(self, order_id: str) -> None:
        """Called by the view when it dropped an erased order."""
        dropped = self._dropping.pop(order_id, None)
        if dropped is not None and not dropped.done():
            dropped.set_result(None)

    async def run(self) -> None:
        """Run passes for the pending erasures of this node's partitions, until cancelled."""
        interval = self.settings.erasure_check_seconds
        while True:
            for request in self._mine():
                first = request.marker not in self._passed
                try:
                    result = await erasure_pass(self.settings, request, self.producer.kafka, first)
                except Exception as exc:  # the broker is away: the next round tries again
                    log.warning("erasure pass failed", extra={"order_id": request.order_id, "error": repr(exc)})
                    continue
                self._passed.add(request.marker)
                if result.clean:
                    await self._finish(request)
                    self._passed.discard(request.marker)
                elif result.tombstoned:
                    log.info(
                        "erasure pass wrote tombstones",
                        extra={"order_id": request.order_id, "found": result.found, "tombstones": result.tombstoned},
                    )
            self._wake.clear()
            try:
                async with asyncio.timeout(interval):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def _finish(self, request: ErasureRequest) -> None:
        """Write the `done` marker to the order's partition: every view forgets the pending request."""
        await self.producer.send(
            self.settings.topic(ORDERS),
            MARKER_KEY,
            done_value(request.marker),
            headers=[(HEADER, DONE)],
            erasable=True,
            partition=self.view.partition_of(request.order_id),
        )
        self.metrics.erasures_completed.inc()
        log.info("erasure complete", extra={"order_id": request.order_id})

    def _mine(self) -> list[ErasureRequest]:
        active = self.view.active
        return [r for r in self.view.store.pending_erasures() if self.view.partition_of(r.order_id) in active]
