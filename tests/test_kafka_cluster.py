"""A three-broker KRaft cluster on loopback: `stategate kafka --brokers 3`, replicated topics, a broker's death.

These tests start their own brokers (not the session's single broker): real
Kafka processes, killed with SIGKILL where a crash is the point.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError

from stategate.app.broker import free_port
from stategate.app.kafka_cluster import LocalKafkaCluster
from stategate.streams.admin import TopicSpec, ensure_topics
from stategate.streams.kafka_settings import KafkaSettings

from .processes import wait_for


def consecutive_free_ports(count: int) -> int:
    """The first of `count` consecutive ports that are free right now."""
    for _ in range(100):
        first = free_port()
        if all(_free(port) for port in range(first + 1, first + count)):
            return first
    raise RuntimeError(f"no {count} consecutive free ports")


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def java_processes_under(path: Path) -> list[int]:
    """Pids of the processes whose command line names `path` (the brokers started there)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if str(path).encode() in command and b"kafka.Kafka" in command:
                found.append(int(entry.name))
    return found


def test_stategate_kafka_brokers_3_says_ready_once_with_every_broker_and_stops_them_all(tmp_path: Path) -> None:
    first = consecutive_free_ports(3)
    command = [sys.executable, "-m", "stategate", "kafka", "--brokers", "3", "--port", str(first)]
    process = subprocess.Popen(
        [*command, "--data-dir", str(tmp_path / "kafka")],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stdout or ()), daemon=True)
    reader.start()
    try:
        wait_for(lambda: any("ready" in line for line in lines) or process.poll() is not None, 120, "the ready line")
        ready = [line.strip() for line in lines if "ready" in line]
        servers = ",".join(f"127.0.0.1:{port}" for port in range(first, first + 3))
        assert ready and ready[0].startswith(f"stategate kafka ready: bootstrap servers {servers} "), lines
        assert len(java_processes_under(tmp_path / "kafka")) == 3
        assert asyncio.run(broker_ids(servers)) == [1, 2, 3]
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=90)
    wait_for(lambda: not java_processes_under(tmp_path / "kafka"), 30, "every broker to stop")
    assert "stategate kafka stopped" in "".join(lines)


async def broker_ids(bootstrap: str) -> list[int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        cluster = await admin.describe_cluster()
        return sorted(int(broker["node_id"]) for broker in cluster["brokers"])
    finally:
        await admin.close()


@pytest.fixture(scope="module")
def three_brokers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafkaCluster]:
    cluster = LocalKafkaCluster(tmp_path_factory.mktemp("three-brokers"), brokers=3)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


async def topic_description(bootstrap: str, topic: str) -> tuple[dict[str, str], list[dict[str, object]]]:
    """The topic's configs and its partitions (leader, replicas, isr)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
        configs = {name: value for name, value, *_ in described.resources[0][4]}
        (metadata,) = await admin.describe_topics([topic])
        return configs, list(metadata["partitions"])
    finally:
        await admin.close()


async def produce(bootstrap: str, topic: str, count: int) -> int:
    """Send `count` records with acks=all from an idempotent producer; how many were acknowledged."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    acknowledged = 0
    try:
        for i in range(count):
            try:
                await producer.send_and_wait(topic, b"v", key=str(i).encode())
                acknowledged += 1
            except KafkaError:
                pass
    finally:
        await producer.stop()
    return acknowledged


def test_a_replicated_topic_takes_writes_with_one_broker_dead_and_heals_when_it_returns(
    three_brokers: LocalKafkaCluster,
) -> None:
    topic = f"replicated-{uuid.uuid4().hex[:8]}"
    settings = KafkaSettings(broker=three_brokers.bootstrap, replication_factor=3, node_id="test")
    asyncio.run(ensure_topics(settings, [TopicSpec(topic, 3)]))
    configs, partitions = asyncio.run(topic_description(three_brokers.bootstrap, topic))
    assert configs["min.insync.replicas"] == "2"
    assert all(len(p["replicas"]) == 3 for p in partitions)  # type: ignore[arg-type]

    three_brokers.broker(3).kill()
    try:
        assert asyncio.run(produce(three_brokers.bootstrap, topic, 20)) == 20  # two replicas of three: enough
    finally:
        three_brokers.broker(3).start()

    def healed() -> bool:
        _, partitions = asyncio.run(topic_description(three_brokers.bootstrap, topic))
        return all(len(p["isr"]) == 3 for p in partitions)  # type: ignore[arg-type]

    wait_for(healed, 60, "every replica back in sync")
    assert asyncio.run(produce(three_brokers.bootstrap, topic, 5)) == 5


def test_every_broker_serves_a_topic_once_ensure_topics_returns(
    three_brokers: LocalKafkaCluster, caplog: pytest.LogCaptureFixture
) -> None:
    """Each broker learns of a new topic in its own time, and a leader names itself before its log exists.

    A reader right after creation must find every partition served. Many
    partitions at once widen the leader's gap (it creates a log for each):
    without the wait, this fails in most rounds with NotLeaderForPartition.
    """
    settings = KafkaSettings(broker=three_brokers.bootstrap, replication_factor=3, node_id="test")

    async def create_then_read(topics: list[str]) -> dict[TopicPartition, int]:
        await ensure_topics(settings, [TopicSpec(topic, 12) for topic in topics])
        consumer = AIOKafkaConsumer(bootstrap_servers=three_brokers.bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            partitions = [TopicPartition(topic, p) for topic in topics for p in range(12)]
            consumer.assign(partitions)
            ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)  # asks each partition's leader
            return ends
        finally:
            await consumer.stop()

    with caplog.at_level(logging.WARNING, logger="aiokafka"):
        for _ in range(10):
            topics = [f"served-{uuid.uuid4().hex[:8]}" for _ in range(4)]
            assert set(asyncio.run(create_then_read(topics)).values()) == {0}
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
