"""`stategate erase` and `stategate audit` on a real broker, with the log cleaner doing its part.

The topic is compacted with tiny segments and lags (the production bound, scaled
down), and a writer keeps appending filler records so that segments roll, as
production traffic would: the cleaner never touches the active segment.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from stategate.streams.admin import TopicSpec, ensure_topics
from stategate.streams.erasable_keys import ErasablePartitioner, business_key, erasable_key, guid_of, new_guid
from stategate.streams.kafka_settings import KafkaSettings

PARTITIONS = 3
FAST_CLEANING = {
    "cleanup.policy": "compact",
    "segment.ms": "200",
    "max.compaction.lag.ms": "200",
    "min.cleanable.dirty.ratio": "0.01",
    "delete.retention.ms": "200",
}


def stategate(kafka: str, namespace: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka, "STATEGATE_NAMESPACE": namespace}
    return subprocess.run(
        [sys.executable, "-m", "stategate", *args], capture_output=True, text=True, timeout=60, env=env
    )


async def _produce(kafka: str, topic: str, records: list[tuple[bytes, bytes | None]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all", partitioner=ErasablePartitioner())
    await producer.start()
    try:
        for key, value in records:
            await producer.send_and_wait(topic, value=value, key=key)
    finally:
        await producer.stop()


async def _read(kafka: str, topic: str) -> list[tuple[int, bytes, bytes | None]]:
    """Every record of `topic` now: (partition, key, value), in offset order within each partition."""
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka, group_id=None, auto_offset_reset="earliest")
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records: list[tuple[int, bytes, bytes | None]] = []
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            for _tp, batch in (await consumer.getmany(timeout_ms=500)).items():
                records.extend((r.partition, r.key, r.value) for r in batch if r.offset < ends[_tp])
        return records
    finally:
        await consumer.stop()


class Filler:
    """Appends a filler record to every partition every 300 ms, so that segments roll (a thread of its own)."""

    def __init__(self, kafka: str, topic: str) -> None:
        self.kafka, self.topic = kafka, topic
        self.stop = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _run(self) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.kafka, acks="all")
        await producer.start()
        try:
            while not self.stop.is_set():
                for partition in range(PARTITIONS):
                    await producer.send_and_wait(self.topic, b"filler", key=b"filler", partition=partition)
                await asyncio.sleep(0.3)
        finally:
            await producer.stop()

    def __enter__(self) -> Filler:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)


@pytest.fixture
def erasable_topic(kafka: str) -> Iterator[tuple[str, str]]:
    """(namespace, full topic name) of a fresh compacted topic with fast cleaning."""
    namespace = f"t-erase-{uuid.uuid4().hex[:8]}"
    topic = f"{namespace}.orders"
    settings = KafkaSettings(broker=kafka, node_id="test")
    asyncio.run(ensure_topics(settings, [TopicSpec(topic, PARTITIONS, FAST_CLEANING)]))
    yield namespace, topic


def _until(condition: object, what: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"not within {timeout:g}s: {what}"
        time.sleep(0.5)


def test_erasing_one_record_leaves_the_others_of_its_key_in_order(kafka: str, erasable_topic: tuple[str, str]) -> None:
    namespace, topic = erasable_topic
    guids = [new_guid() for _ in range(5)]
    records: list[tuple[bytes, bytes | None]] = [
        (erasable_key("order-x", guid), f"x{i}".encode()) for i, guid in enumerate(guids)
    ]
    records += [(erasable_key("order-y"), f"y{i}".encode()) for i in range(3)]
    asyncio.run(_produce(kafka, topic, records))

    erased = stategate(kafka, namespace, "erase", "--topic", "orders", "--key", "order-x", "--guid", guids[2])
    assert erased.returncode == 0, erased.stderr
    assert erased.stdout.split() == ["tombstone", topic, "order-x", guids[2]]

    def gone() -> bool:
        return not any(guid_of(key) == guids[2] for _, key, _ in asyncio.run(_read(kafka, topic)))

    with Filler(kafka, topic):
        _until(gone, "the record and its tombstone are cleaned away")
    left = asyncio.run(_read(kafka, topic))
    assert [v for _, k, v in left if business_key(k) == b"order-x"] == [b"x0", b"x1", b"x3", b"x4"]
    assert [v for _, k, v in left if business_key(k) == b"order-y"] == [b"y0", b"y1", b"y2"]
    assert len({p for p, k, _ in left if business_key(k) == b"order-x"}) == 1


def test_erasing_a_key_erases_all_its_records_and_audit_then_finds_nothing(
    kafka: str, erasable_topic: tuple[str, str]
) -> None:
    namespace, topic = erasable_topic
    records: list[tuple[bytes, bytes | None]] = [
        (erasable_key("order-gone"), b'{"id": "order-gone", "n": %d}' % i) for i in range(3)
    ]
    records.append((erasable_key("order-kept"), b'{"id": "order-kept"}'))
    asyncio.run(_produce(kafka, topic, records))
    before = stategate(kafka, namespace, "audit", "order-gone")
    assert before.returncode == 0, before.stderr
    lines = before.stdout.splitlines()
    assert len(lines) == 3 and all(line.startswith(f"{topic} ") and line.endswith(" key") for line in lines)

    erased = stategate(kafka, namespace, "erase", "--topic", "orders", "--key", "order-gone")
    assert erased.returncode == 0, erased.stderr
    assert len(erased.stdout.splitlines()) == 3

    def audit_is_empty() -> bool:
        return stategate(kafka, namespace, "audit", "order-gone").stdout == ""

    with Filler(kafka, topic):
        _until(audit_is_empty, "audit prints nothing about the erased key")
    assert len(stategate(kafka, namespace, "audit", "order-kept").stdout.splitlines()) == 1
    again = stategate(kafka, namespace, "erase", "--topic", "orders", "--key", "order-gone")
    assert (again.returncode, again.stdout) == (0, "")  # erasing twice: nothing left to erase


def test_erase_refuses_bad_guids_unknown_topics_and_topics_that_are_not_compacted(
    kafka: str, erasable_topic: tuple[str, str]
) -> None:
    namespace, _topic = erasable_topic
    asyncio.run(ensure_topics(KafkaSettings(broker=kafka, node_id="t"), [TopicSpec(f"{namespace}.plain", 1)]))
    for args, message in (
        (("--topic", "orders", "--key", "k", "--guid", "NOT-A-GUID"), "guid"),
        (("--topic", "nope", "--key", "k"), "no topic"),
        (("--topic", "plain", "--key", "k"), "erase nothing"),
    ):
        refused = stategate(kafka, namespace, "erase", *args)
        assert refused.returncode == 2, (args, refused.stdout, refused.stderr)
        assert message in refused.stderr, (args, refused.stderr)
