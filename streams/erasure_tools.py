"""The operator's erasure tools: delete records from an erasable topic, and find what still holds an id.

`erase` writes tombstones: for one record (its business key and GUID), or
for every record of a business key (found by reading the key's partition
from the beginning). The log cleaner then removes the records, and later the
tombstones, within the bound the topics are configured with (README, Erasure).

`audit` is the proof: it reads every topic of the deployment from the
beginning and lists each record whose key or value still holds the id.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from .erasable_keys import SEPARATOR, ErasablePartitioner, business_key, erasable_key, partition_for
from .kafka_settings import KafkaSettings

READ_TIMEOUT_MS = 1000


@dataclass(frozen=True, slots=True)
class Found:
    """A record that holds what was looked for: where it is, and whether in its key or its value."""

    topic: str
    partition: int
    offset: int
    where: str  # "key" or "value"

    def line(self) -> str:
        """`topic partition offset key|value`, as `stategate audit` prints it."""
        return f"{self.topic} {self.partition} {self.offset} {self.where}"


class NotCompacted(Exception):
    """A tombstone erases nothing on a topic that is not compacted."""


async def erase(settings: KafkaSettings, topic: str, key: str, guid: str | None = None) -> list[bytes]:
    """Write a tombstone for the record `key`+`guid`, or for every record of business key `key`; the keys erased.

    Raises ValueError for a key that holds the separator byte or a guid that is not one, LookupError for
    an unknown topic, NotCompacted for a topic whose records tombstones do not erase.
    """
    await _check_compacted(settings, topic)
    wanted = key.encode()
    if SEPARATOR in wanted:
        raise ValueError("a business key never holds the byte 0x00")
    if guid is not None:
        keys = [erasable_key(wanted, guid)]
    else:
        keys = sorted({record.key async for record in _records_of(settings, topic, wanted) if record.key is not None})
    if not keys:
        return []
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.broker, acks="all", enable_idempotence=True, partitioner=ErasablePartitioner()
    )
    await producer.start()
    try:
        for full_key in keys:
            await producer.send_and_wait(topic, value=None, key=full_key)
    finally:
        await producer.stop()
    return keys


async def _records_of(
    settings: KafkaSettings, topic: str, wanted: bytes
) -> AsyncIterator[ConsumerRecord[bytes, bytes]]:
    """The records (not tombstones) of business key `wanted` in `topic`, from its partition's beginning."""
    async with reader(settings) as consumer:
        partitions = consumer.partitions_for_topic(topic) or await partitions_of(consumer, topic)
        partition = TopicPartition(topic, partition_for(wanted, len(partitions)))
        async for record in read_all(consumer, [partition]):
            if record.key is not None and record.value is not None and business_key(record.key) == wanted:
                yield record


async def audit(settings: KafkaSettings, needle: str) -> list[Found]:
    """Every record of the deployment's topics whose key or value holds `needle`, by topic, partition, offset."""
    return (await audit_many(settings, [needle]))[needle]


async def audit_many(settings: KafkaSettings, needles: list[str]) -> dict[str, list[Found]]:
    """`audit` for several ids in one read of every topic."""
    wanted = {needle: needle.encode() for needle in needles}
    prefix = f"{settings.namespace}." if settings.namespace else ""
    found: dict[str, list[Found]] = {needle: [] for needle in needles}
    async with reader(settings) as consumer:
        metadata = await consumer._client.fetch_all_metadata()
        partitions = [
            TopicPartition(topic, partition)
            for topic in sorted(metadata.topics())
            if topic.startswith(prefix) and not topic.startswith("__")
            for partition in sorted(metadata.partitions_for_topic(topic) or ())
        ]
        async for record in read_all(consumer, partitions):
            for needle, raw in wanted.items():
                if record.key is not None and raw in record.key:
                    found[needle].append(Found(record.topic, record.partition, record.offset, "key"))
                elif record.value is not None and raw in record.value:
                    found[needle].append(Found(record.topic, record.partition, record.offset, "value"))
    for listed in found.values():
        listed.sort(key=lambda f: (f.topic, f.partition, f.offset))
    return found


async def _check_compacted(settings: KafkaSettings, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.broker)
    await admin.start()
    try:
        if topic not in await admin.list_topics():
            raise LookupError(f"no topic {topic!r}")
        described = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    finally:
        await admin.close()
    policy = ""
    for response in described:
        for resource in response.resources:
            for entry in resource[4]:  # (name, value, read_only, is_default, is_sensitive, ...)
                if entry[0] == "cleanup.policy":
                    policy = entry[1] or ""
    if "compact" not in policy:
        raise NotCompacted(f"{topic!r} has cleanup.policy={policy or 'delete'}: a tombstone would erase nothing")


@contextlib.asynccontextmanager
async def reader(settings: KafkaSettings) -> AsyncIterator[AIOKafkaConsumer]:
    """A group-less consumer that reads from the beginning and commits nothing."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.broker,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        yield consumer
    finally:
        await consumer.stop()


async def partitions_of(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    """The topic's partitions; LookupError when the broker does not know it."""
    partitions = consumer.partitions_for_topic(topic)
    if not partitions:
        # The consumer's own metadata covers only topics it has asked about: ask for all of them.
        partitions = (await consumer._client.fetch_all_metadata()).partitions_for_topic(topic)
    if not partitions:
        raise LookupError(f"no topic {topic!r}")
    return set(partitions)


async def read_all(
    consumer: AIOKafkaConsumer, partitions: list[TopicPartition]
) -> AsyncIterator[ConsumerRecord[bytes, bytes]]:
    """Every record of `partitions`, from the beginning up to the end offsets they had when this began."""
    consumer.assign(partitions)
    await consumer.seek_to_beginning(*partitions)
    ends = await consumer.end_offsets(partitions)
    left = {tp for tp in partitions if ends[tp] > await consumer.position(tp)}
    while left:
        batches = await consumer.getmany(*left, timeout_ms=READ_TIMEOUT_MS)
        for tp, records in batches.items():
            for record in records:
                if record.offset < ends[tp]:
                    yield record
            if await consumer.position(tp) >= ends[tp]:
                left.discard(tp)
