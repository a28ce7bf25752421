"""The secret the nodes of one cluster share, agreed through Kafka when none is configured.

Replies handed over between nodes are signed with it (app/handover.py).
Without `STATEGATE_CLUSTER_SECRET`, the nodes agree on one through a
one-partition topic, `stategate-cluster-secret`: a node that finds it empty
writes 32 random bytes under a key of its own, and every node takes the
FIRST record, so nodes that start at the same moment still agree. Each
record has its own key, so compaction never removes the first one.

Whoever may read that topic can sign hand-overs: the same principals that
may already write replies to the reply topic, so the trust boundary stays
Kafka's own (its ACLs). Set `STATEGATE_CLUSTER_SECRET` to keep the secret
out of Kafka.
"""

from __future__ import annotations

import asyncio
import secrets

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from .admin import TopicSpec, ensure_topics
from .kafka_settings import KafkaSettings

SECRET_TOPIC = "stategate-cluster-secret"
AGREE_TIMEOUT_SECONDS = 30.0


def secret_topic_spec(settings: KafkaSettings) -> TopicSpec:
    """One partition, compacted: a handful of records, kept for good."""
    return TopicSpec(settings.topic(SECRET_TOPIC), 1, {"cleanup.policy": "compact"})


async def agreed_secret(settings: KafkaSettings) -> str:
    """The cluster's shared secret from its topic, writing one first when there is none yet."""
    spec = secret_topic_spec(settings)
    await ensure_topics(settings, [spec])
    async with asyncio.timeout(AGREE_TIMEOUT_SECONDS):
        first = await _first_record(settings, spec.name)
        if first is None:
            producer = AIOKafkaProducer(bootstrap_servers=settings.broker, acks="all", enable_idempotence=True)
            await producer.start()
            try:
                await producer.send_and_wait(spec.name, secrets.token_hex(32).encode(), key=secrets.token_bytes(16))
            finally:
                await producer.stop()
            first = await _first_record(settings, spec.name)
    if first is None:  # written and acknowledged above, so it can be read
        raise RuntimeError(f"no record on {spec.name} after writing one")
    return first


async def _first_record(settings: KafkaSettings, topic: str) -> str | None:
    """The value of the topic's first record, or None when it has none."""
    partition = TopicPartition(topic, 0)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.broker, enable_auto_commit=False, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        consumer.assign([partition])
        end = (await consumer.end_offsets([partition]))[partition]
        if end == 0:
            return None
        consumer.seek(partition, 0)  # `seek_to_beginning` right after `assign` left getone waiting here
        while True:
            record = await consumer.getone(partition)
            if record.value:
                return str(record.value.decode())
    finally:
        await consumer.stop()
