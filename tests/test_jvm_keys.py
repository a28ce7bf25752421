"""Erasable keys across languages, on the session's real broker.

Apache Kafka's own console tools (kafka-tools 4.1) run with the classes of
clients/jvm: ConsoleProducer with GuidKeyProducerInterceptor and
BusinessKeyPartitioner, ConsoleConsumer with GuidStrippingConsumerInterceptor.
Python writes and reads with aiokafka and streams/erasable_keys.py. Both must
agree on every byte of a key and on every partition, and an erasable key must
land where Kafka's and aiokafka's default partitioners put its plain business key.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord

from stategate.app.broker import broker_classpath
from stategate.streams.admin import TopicSpec, ensure_topics
from stategate.streams.erasable_keys import ErasablePartitioner, business_key, erasable_key, guid_of, partition_for
from stategate.streams.kafka_settings import KafkaSettings

from .jvm import build_jar, run_java

pytestmark = pytest.mark.timeout(300)  # the first test may wait for the broker and a Maven build from a fresh ~/.m2

PARTITIONS = 6
LONG_KEY = "a-business-key-that-is-longer-than-thirty-three-bytes"
BUSINESS_KEYS = ["order-1", "order-2", "customer-42", "ünïcødé", LONG_KEY]
PER_KEY = 4
READ_TIMEOUT_SECONDS = 60.0

CONSOLE_PRODUCER = "org.apache.kafka.tools.ConsoleProducer"
# kafka-tools 4.x keeps the console consumer in a package of its own (the producer stayed where it was).
CONSOLE_CONSUMER = "org.apache.kafka.tools.consumer.ConsoleConsumer"
ERASABLE_PRODUCER = [
    "--producer-property", "interceptor.classes=dev.stategate.erasure.GuidKeyProducerInterceptor",
    "--producer-property", "partitioner.class=dev.stategate.erasure.BusinessKeyPartitioner",
]  # fmt: skip
STRIPPING_CONSUMER = [
    "--consumer-property", "interceptor.classes=dev.stategate.erasure.GuidStrippingConsumerInterceptor",
]  # fmt: skip


@pytest.fixture(scope="session")
def jar() -> Path:
    """clients/jvm's jar, built once per session."""
    return build_jar()


@pytest.fixture()
def classpath(jar: Path) -> list[str | Path]:
    """Kafka's jars (the broker's, with kafka-tools) and ours."""
    return [broker_classpath(), jar]


@pytest.fixture()
def topic(kafka: str) -> Iterator[str]:
    """A new compacted topic of PARTITIONS partitions, as an erasable topic is."""
    name = f"t-keys-{uuid.uuid4().hex[:8]}"
    spec = TopicSpec(name, PARTITIONS, {"cleanup.policy": "compact"})
    asyncio.run(ensure_topics(KafkaSettings(broker=kafka), [spec]))
    yield name


def console_produce(
    classpath: list[str | Path], bootstrap: str, topic: str, lines: list[str], *options: str, erasable: bool = True
) -> None:
    """Write `key|value` lines with Kafka's ConsoleProducer, through our interceptor and partitioner if `erasable`."""
    run_java(
        classpath, CONSOLE_PRODUCER, "--bootstrap-server", bootstrap, "--topic", topic,
        "--property", "parse.key=true", "--property", "key.separator=|", *options,
        *(ERASABLE_PRODUCER if erasable else []),
        stdin="".join(f"{line}\n" for line in lines).encode(),
    )  # fmt: skip


def console_consume(classpath: list[str | Path], bootstrap: str, topic: str, count: int) -> list[tuple[int, str, str]]:
    """The first `count` records as ConsoleConsumer prints them through our interceptor: (partition, key, value)."""
    output = run_java(
        classpath, CONSOLE_CONSUMER, "--bootstrap-server", bootstrap, "--topic", topic,
        "--from-beginning", "--max-messages", str(count), "--timeout-ms", str(int(READ_TIMEOUT_SECONDS * 1000)),
        "--property", "print.partition=true", "--property", "print.key=true", "--property", "key.separator=|",
        *STRIPPING_CONSUMER,
    )  # fmt: skip
    printed = []
    for line in output.decode().splitlines():
        partition, key, value = line.removeprefix("Partition:").split("|")
        printed.append((int(partition), key, value))
    return printed


async def python_produce(
    bootstrap: str, topic: str, records: Sequence[tuple[bytes, bytes | None]], partitioner: Any = None
) -> list[int]:
    """Write (key, value) records in order with aiokafka (its default partitioner unless given); their partitions."""
    options = {} if partitioner is None else {"partitioner": partitioner}
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, **options)
    await producer.start()
    try:
        return [(await producer.send_and_wait(topic, value, key=key)).partition for key, value in records]
    finally:
        await producer.stop()


async def read_raw(bootstrap: str, topic: str, count: int) -> list[ConsumerRecord[bytes, bytes]]:
    """The first `count` records of every partition of `topic`, keys as written, in partition and offset order."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    try:
        found: list[ConsumerRecord[bytes, bytes]] = []
        async with asyncio.timeout(READ_TIMEOUT_SECONDS):
            while len(found) < count:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    found += records
        return sorted(found, key=lambda record: (record.partition, record.offset))
    finally:
        await consumer.stop()


def interleaved(prefix: str) -> list[tuple[str, str]]:
    """(business key, value) for PER_KEY messages of every business key, the keys taking turns."""
    return [(key, f"{prefix}-{key}-{i}") for i in range(PER_KEY) for key in BUSINESS_KEYS]


def by_business_key(records: list[ConsumerRecord[bytes, bytes]]) -> dict[str, list[ConsumerRecord[bytes, bytes]]]:
    grouped: dict[str, list[ConsumerRecord[bytes, bytes]]] = defaultdict(list)
    for record in records:
        assert record.key is not None
        grouped[business_key(record.key).decode()].append(record)
    return grouped


def test_the_console_producer_writes_erasable_keys_on_the_business_keys_partition(
    kafka: str, topic: str, classpath: list[str | Path]
) -> None:
    sent = interleaved("java")
    console_produce(classpath, kafka, topic, [f"{key}|{value}" for key, value in sent])

    records = asyncio.run(read_raw(kafka, topic, len(sent)))
    assert len(records) == len(sent)
    assert len({record.key for record in records}) == len(sent)  # every message has a key of its own
    for record in records:
        assert record.key is not None
        assert guid_of(record.key) is not None
        assert len(record.key) == len(business_key(record.key)) + 33
    grouped = by_business_key(records)
    assert sorted(grouped) == sorted(BUSINESS_KEYS)
    for key, of_key in grouped.items():
        assert {record.partition for record in of_key} == {partition_for(key.encode(), PARTITIONS)}, key
        assert [record.value for record in of_key] == [value.encode() for k, value in sent if k == key]


def test_the_console_consumer_reads_python_erasable_keys_as_business_keys(
    kafka: str, topic: str, classpath: list[str | Path]
) -> None:
    sent = interleaved("python")
    records = [(erasable_key(key), value.encode()) for key, value in sent]
    partitions = asyncio.run(python_produce(kafka, topic, records, ErasablePartitioner()))
    chosen = {key: partition for (key, _), partition in zip(sent, partitions, strict=True)}
    assert chosen == {key: partition_for(key.encode(), PARTITIONS) for key in BUSINESS_KEYS}

    printed = console_consume(classpath, kafka, topic, len(sent))
    assert len(printed) == len(sent)
    for partition, key, _ in printed:
        assert key in BUSINESS_KEYS  # the suffix is gone
        assert partition == chosen[key]
    for key in BUSINESS_KEYS:
        assert [value for _, k, value in printed if k == key] == [value for k, value in sent if k == key]


def test_java_python_and_the_default_partitioners_agree_on_every_business_keys_partition(
    kafka: str, topic: str, classpath: list[str | Path]
) -> None:
    console_produce(classpath, kafka, topic, [f"{key}|java-erasable" for key in BUSINESS_KEYS])
    console_produce(classpath, kafka, topic, [f"{key}|java-plain" for key in BUSINESS_KEYS], erasable=False)
    python = [(erasable_key(key), b"python-erasable") for key in BUSINESS_KEYS]
    asyncio.run(python_produce(kafka, topic, python, ErasablePartitioner()))
    plain = [(key.encode(), b"python-plain") for key in BUSINESS_KEYS]
    asyncio.run(python_produce(kafka, topic, plain))

    grouped = by_business_key(asyncio.run(read_raw(kafka, topic, 4 * len(BUSINESS_KEYS))))
    for key in BUSINESS_KEYS:
        where = {record.value: record.partition for record in grouped[key]}
        assert sorted(where) == [b"java-erasable", b"java-plain", b"python-erasable", b"python-plain"], key
        assert set(where.values()) == {partition_for(key.encode(), PARTITIONS)}, key


def test_a_tombstone_for_a_full_key_keeps_its_key_through_the_interceptor(
    kafka: str, topic: str, classpath: list[str | Path]
) -> None:
    full = erasable_key("order-1")
    asyncio.run(python_produce(kafka, topic, [(full, b"to be erased")], ErasablePartitioner()))
    console_produce(
        classpath, kafka, topic, [f"{full.decode()}|<null>"], "--property", "null.marker=<null>"
    )  # the line's key holds the NUL byte and the GUID

    records = asyncio.run(read_raw(kafka, topic, 2))
    assert [(record.key, record.value) for record in records] == [(full, b"to be erased"), (full, None)]
    assert {record.partition for record in records} == {partition_for(b"order-1", PARTITIONS)}
