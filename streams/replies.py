"""The gateway's reply topic: every node reads a share of its partitions, or a topic of its own.

Services write each reply to the topic named in the request's `reply-to`
header, keyed by the correlation id. All gateway nodes read that topic in
one consumer group, so Kafka splits its partitions among them; a node
makes correlation ids that hash to partitions it reads, so replies come
back to the node that waits for them. A plain aiokafka consumer (not a
Faust agent) reads it: one hop fewer of Faust's buffering per reply.

In the sidecar layout (`STATEGATE_REPLY_TOPIC=own`) each node reads a
one-partition topic of its own, `gateway-replies.<node id>`, without a
group: no rebalance ever moves a reply, so none is handed over, at the cost
of one topic per node on the brokers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from .admin import TopicSpec
from .consumer_options import group_timing
from .kafka_settings import KafkaSettings, ms

REPLIES = "gateway-replies"
REPLIES_GROUP = "stategate-gateway-replies"

log = logging.getLogger("stategate.streams.replies")

OnReply = Callable[[ConsumerRecord[bytes, bytes]], Awaitable[None]]


def replies_topic_spec(settings: KafkaSettings) -> TopicSpec:
    """The reply topic this node reads: the shared one (made by the first node that starts), or its own."""
    configs = {
        "retention.ms": ms(settings.reply_retention_seconds),
        "segment.ms": ms(settings.erasure_segment_seconds),
    }
    if settings.reply_topic == "own":
        return TopicSpec(own_replies_topic(settings), 1, configs)
    return TopicSpec(settings.topic(REPLIES), settings.partitions, configs)


def own_replies_topic(settings: KafkaSettings) -> str:
    """`gateway-replies.<node id>`, the node id kept to the characters a topic name may hold."""
    node = re.sub(r"[^A-Za-z0-9._-]", "_", settings.node_id)
    return settings.topic(f"{REPLIES}.{node}")


class ReplyConsumer:
    """Reads this node's share of the reply topic and hands each record to `on_reply`."""

    def __init__(self, settings: KafkaSettings, on_reply: OnReply) -> None:
        self.settings = settings
        self.own = settings.reply_topic == "own"
        self.topic = own_replies_topic(settings) if self.own else settings.topic(REPLIES)
        self.on_reply = on_reply
        self.partitions: frozenset[int] = frozenset()
        self.partition_count = settings.partitions
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Join the group (or take the node's own topic) and start reading."""
        settings = self.settings
        if self.own:
            await self._start_own()
            return
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.broker,
            group_id=settings.topic(REPLIES_GROUP),
            client_id=f"stategate-replies-{settings.node_id}",
            # A brand-new group starts at the beginning, so that no reply written
            # before its first assignment is skipped; replies nobody waits for are dropped.
            auto_offset_reset="earliest",
            fetch_max_wait_ms=100,
            **group_timing(settings),
        )
        self._consumer.subscribe([self.topic], listener=_Listener(self))
        await self._consumer.start()
        self._task = asyncio.get_running_loop().create_task(self._read())

    async def _start_own(self) -> None:
        """Read the node's own topic from its end: earlier replies were for a process that is gone."""
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.broker,
            client_id=f"stategate-replies-{self.settings.node_id}",
            enable_auto_commit=False,
            fetch_max_wait_ms=100,
        )
        await self._consumer.start()
        partition = TopicPartition(self.topic, 0)
        self._consumer.assign([partition])
        await self._consumer.seek_to_end(partition)
        self.partitions, self.partition_count = frozenset({0}), 1
        self._task = asyncio.get_running_loop().create_task(self._read())

    async def stop(self) -> None:
        """Leave the group."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()

    async def _read(self) -> None:
        assert self._consumer is not None
        while True:
            try:
                batches = await self._consumer.getmany(timeout_ms=1000)
            except KafkaError as exc:
                log.warning("cannot read replies", extra={"error": repr(exc)})
                await asyncio.sleep(self.settings.retry_after_seconds)  # the broker is away: try again later
                continue
            for records in batches.values():
                for record in records:
                    try:
                        await self.on_reply(record)
                    except Exception:
                        log.exception("cannot deliver a reply", extra={"partition": record.partition})

    def _assigned(self, partitions: set[TopicPartition]) -> None:
        self.partitions = frozenset(tp.partition for tp in partitions if tp.topic == self.topic)
        if self._consumer is not None:
            self.partition_count = len(self._consumer.partitions_for_topic(self.topic) or ()) or self.partition_count
        log.info("reply partitions assigned", extra={"partitions": sorted(self.partitions)})


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, replies: ReplyConsumer) -> None:
        self.replies = replies

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.replies.partitions = frozenset()

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.replies._assigned(assigned)
