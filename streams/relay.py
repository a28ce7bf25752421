"""The relay: sends each order a check wrote into its table's changelog on to the next topic.

    fraud-checked ─────► orders-by-product   (an OrderStep, keyed by product)
    inventory-checked ─► orders              (the VALIDATED or FAILED order, keyed by order id)

A plain aiokafka consumer group in the services process (the changelogs
are Faust's own topics, which a Faust agent of the same app cannot read),
sending through the Faust app's producer, so that its records share the
agents' produce requests.
At least once: offsets are committed only after Kafka acknowledged what was
sent, so a crash sends some records again. The inventory check skips those
(order_steps.py), and a decided order sent twice is the same version twice,
which every reader of `orders` ignores.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import KafkaError
from faust.exceptions import ProducerSendError
from faust.types import ProducerT

from .consumer_options import group_timing
from .erasable_keys import erasable_or_plain
from .kafka_settings import KafkaSettings
from .order_steps import OrderStep, Source
from .records import Order, RecordError, read_object

log = logging.getLogger("stategate.streams.relay")

RELAY_GROUP = "stategate-services-relay"


@dataclass(frozen=True)
class Forward:
    """Where the orders of one changelog topic go next."""

    topic: str
    key: Callable[[Order], str]
    as_step: bool
    """Send an OrderStep (order + source) rather than the bare order."""

    def record(self, partition: int, record: ConsumerRecord[bytes, bytes]) -> tuple[bytes, bytes] | None:
        """The key and value to send for one changelog record, or None when it holds no order."""
        if record.value is None:
            return None  # a tombstone (streams/erasure_pass.py rolls segments with them)
        try:
            order_value = read_object(record.value).get("order")
            if not order_value:
                return None  # a stock level, not an order
            order = Order.from_dict(order_value)
        except RecordError as exc:
            log.warning("skipping unreadable changelog record", extra={"error": str(exc)})
            return None
        value = OrderStep(order, Source(partition, record.offset)).to_json() if self.as_step else order.to_json()
        return erasable_or_plain(self.key(order).encode()), value


class Relay:
    """Forwards changelog records at least once; `ready` once it has its partitions."""

    def __init__(self, settings: KafkaSettings, forwards: dict[str, Forward], producer: ProducerT) -> None:
        self.settings = settings
        self.forwards = forwards
        self.producer = producer
        self.ready = False
        self.on_readiness: Callable[[bool], None] | None = None
        self._lock = asyncio.Lock()  # a batch in flight, or a commit at revocation
        self._acked: dict[TopicPartition, int] = {}
        self._last_commit = time.monotonic()
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Join the relay's consumer group and start forwarding."""
        settings = self.settings
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.broker,
            client_id=f"stategate-relay-{settings.node_id}",
            group_id=settings.topic(RELAY_GROUP),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=settings.fetch_max_wait_ms,
            **group_timing(settings),
        )
        await self._consumer.start()
        self._consumer.subscribe(list(self.forwards), listener=_Listener(self))
        self._task = asyncio.get_running_loop().create_task(self._run(), name="relay")

    @property
    def task(self) -> asyncio.Task[None]:
        """The forwarding task: it ends only when the relay fails (or is stopped)."""
        assert self._task is not None, "Relay.start() first"
        return self._task

    async def stop(self) -> None:
        """Forward what is in hand, commit it, and leave the group."""
        if self._task is not None:
            async with self._lock:
                self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._consumer is not None:
            await self._commit()
            await self._consumer.stop()
        self._set_ready(False)

    async def _run(self) -> None:
        assert self._consumer is not None
        while True:
            batch = await self._consumer.getmany(timeout_ms=1000)
            async with self._lock:
                try:
                    await self._forward(batch)
                except (KafkaError, ProducerSendError) as exc:
                    # Kafka did not take them (a broker away): read them again, later. What did
                    # land is sent twice, which the next step skips.
                    log.warning("relay could not forward, retrying", extra={"error": repr(exc)})
                    for tp, records in batch.items():
                        if tp in self._consumer.assignment():
                            self._consumer.seek(tp, records[0].offset)
                    await asyncio.sleep(self.settings.retry_after_seconds)
                    continue
                for tp, records in batch.items():
                    self._acked[tp] = records[-1].offset + 1
                if time.monotonic() - self._last_commit >= self.settings.commit_interval_seconds:
                    await self._commit()

    async def _forward(self, batch: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]) -> None:
        """Send the batch's orders on and wait until Kafka has acknowledged every one."""
        sent = []
        for tp, records in batch.items():
            forward = self.forwards[tp.topic]
            for record in records:
                out = forward.record(tp.partition, record)
                if out is not None:
                    sent.append(await self.producer.send(forward.topic, out[0], out[1], None, None, None))
        await asyncio.gather(*sent)

    async def _commit(self) -> None:
        assert self._consumer is not None
        assigned = self._consumer.assignment()
        offsets = {tp: offset for tp, offset in self._acked.items() if tp in assigned}
        self._acked.clear()
        self._last_commit = time.monotonic()
        if not offsets:
            return
        try:
            await self._consumer.commit(offsets)
        except KafkaError as exc:  # the records are sent again later: harmless duplicates
            log.warning("relay commit failed", extra={"error": repr(exc)})

    def _set_ready(self, ready: bool) -> None:
        if ready != self.ready:
            self.ready = ready
            if self.on_readiness is not None:
                self.on_readiness(ready)


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, relay: Relay) -> None:
        self.relay = relay

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self.relay._set_ready(False)
        async with self.relay._lock:
            await self.relay._commit()

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self.relay._set_ready(True)
