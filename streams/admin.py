"""Creating the topics a Faust app needs before it starts.

Faust declares topics while its consumer is already subscribing, and its
cached metadata may then see a changelog topic with zero partitions (the
table's agent crashes with PartitionsMismatch). Creating every topic first,
with the right partition count and compaction, avoids that race.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import faust
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from aiokafka.protocol.metadata import MetadataRequest
from aiokafka.protocol.offset import OffsetRequest
from faust.types import TopicT
from faust.types.tables import CollectionT

from .kafka_settings import KafkaSettings, durability_configs, ms

log = logging.getLogger("stategate.streams.admin")

LEADER_WAIT_SECONDS = 10.0


@dataclass(frozen=True)
class TopicSpec:
    """A topic to create: name, partitions and topic configs."""

    name: str
    partitions: int
    configs: dict[str, str] = field(default_factory=dict)


def topic_specs(topics: Iterable[TopicT]) -> list[TopicSpec]:
    """The given topics, each with the partition count and topic configs it was declared with."""
    return [
        TopicSpec(name, _declared(topic.partitions), {key: str(value) for key, value in (topic.config or {}).items()})
        for topic in topics
        for name in topic.topics
    ]


def _declared(partitions: int | None) -> int:
    if partitions is None:
        raise ValueError("every stategate topic is declared with its partition count")
    return partitions


def changelog_configs(settings: KafkaSettings) -> dict[str, str]:
    """Compacted, never before `changelog_min_lag_seconds`, surely within the erasure bound after that.

    A changelog that is also a check's output (fraud-checked, inventory-checked)
    keeps every record until the relay has surely read it (a day by default).
    Then old values, an erased order's among them, must go within the erasure
    bound: segments roll, and the cleaner must get to them.
    """
    return {
        "cleanup.policy": "compact",
        "min.compaction.lag.ms": ms(settings.changelog_min_lag_seconds),
        "max.compaction.lag.ms": ms(settings.changelog_min_lag_seconds + settings.erasure_compaction_lag_seconds),
        "segment.ms": ms(settings.erasure_segment_seconds),
        "delete.retention.ms": ms(settings.erasure_tombstone_seconds),
    }


def changelog_specs(tables: Iterable[CollectionT], settings: KafkaSettings) -> list[TopicSpec]:
    """The tables' compacted changelog topics, each with its table's partition count."""
    compact = changelog_configs(settings)
    return [TopicSpec(table.changelog_topic.get_topic_name(), _declared(table.partitions), compact) for table in tables]


def topics_of(app: faust.App, topics: Iterable[TopicT], settings: KafkaSettings) -> list[TopicSpec]:
    """The given topics, every table's compacted changelog topic, and the app's assignor topic.

    Faust creates its `<app id>-__assignor-__leader` topic itself, after its
    consumer first asked for it (aiokafka then logs "not found" at ERROR).
    """
    leader = TopicSpec(f"{app.conf.id}-__assignor-__leader", 1)
    return [*topic_specs(topics), *changelog_specs(app.tables.values(), settings), leader]


async def ensure_topics(settings: KafkaSettings, specs: Iterable[TopicSpec]) -> None:
    """Create the topics that do not exist yet, leave existing ones alone, and wait until every broker serves them."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.broker, client_id=f"stategate-admin-{settings.node_id}")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = {spec.name: spec for spec in specs}  # the same topic may be listed twice
        missing = [spec for name, spec in wanted.items() if name not in existing]
        if missing:
            durability, replicas = durability_configs(settings.replication_factor), settings.replication_factor
            new_topics = [
                NewTopic(spec.name, spec.partitions, replicas, topic_configs=durability | spec.configs)
                for spec in missing
            ]
            try:
                await admin.create_topics(new_topics)
            except TopicAlreadyExistsError:
                pass  # another process created it meanwhile
            log.info("created topics", extra={"topics": ",".join(spec.name for spec in missing)})
        # Also for topics that exist: another process may have created them a moment ago.
        await _wait_until_served(admin, list(wanted))
    finally:
        await admin.close()


async def _wait_until_served(admin: AIOKafkaAdminClient, names: list[str]) -> None:
    """Wait until every broker knows `names` and every partition's leader answers for it, at most LEADER_WAIT_SECONDS.

    The controller creates a topic; each broker learns of it from the
    metadata log in its own time, and a leader names itself in its metadata a
    moment before its log for the partition exists. A client that reads the
    topic in between gets UnknownTopicOrPartition or NotLeaderForPartition,
    which aiokafka logs at ERROR before it retries. Kafka announces neither to
    clients, so this asks, briefly: each broker's metadata until all name
    every leader, then each leader for the partitions' end offsets, as a
    consumer's first request does.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + LEADER_WAIT_SECONDS
    brokers = [int(broker["node_id"]) for broker in (await admin.describe_cluster())["brokers"]]
    unaware = set(brokers)
    while unaware and loop.time() < deadline:
        for broker in sorted(unaware):
            if _all_led(await _described(admin, names, broker, deadline), names):
                unaware.discard(broker)
        if unaware:
            await asyncio.sleep(0.05)
    silent: list[int] = []
    while not unaware and loop.time() < deadline:
        # Asked anew each round: a leader that does not answer may have handed over.
        leaders = _partitions_by_leader(await _described(admin, names, brokers[0], deadline))
        silent = [
            leader
            for leader, partitions in sorted(leaders.items())
            if not _all_answered(await _ask(admin, _latest_offsets(partitions), leader, deadline))
        ]
        if leaders and not silent:
            return
        await asyncio.sleep(0.05)
    log.warning(
        "brokers do not serve new topics yet",
        extra={"topics": ",".join(names), "brokers": ",".join(map(str, sorted(unaware) or silent))},
    )


async def _ask(admin: AIOKafkaAdminClient, request: Any, broker: int, deadline: float) -> Any | None:
    """One broker's answer to `request`, or None when it does not answer before `deadline`."""
    client = admin._client  # noqa: SLF001
    try:
        async with asyncio.timeout(max(deadline - asyncio.get_running_loop().time(), 0.1)):
            if client.cluster.broker_metadata(broker) is None:
                # Sending to a broker the client's metadata lacks logs StaleMetadata at ERROR.
                await client.force_metadata_update()
                return None
            # No public call asks one chosen broker; `describe_topics` asks any.
            return await admin._send_request(request, broker)  # noqa: SLF001
    except (KafkaError, TimeoutError):
        return None  # a broker that does not answer now is asked again, until the deadline


async def _described(
    admin: AIOKafkaAdminClient, names: list[str], broker: int, deadline: float
) -> list[dict[str, Any]]:
    """The topics `names` as one broker's metadata describes them; empty when it does not answer."""
    metadata = await _ask(admin, MetadataRequest(names), broker, deadline)
    return [] if metadata is None else list(metadata.to_object()["topics"])


def _partitions_by_leader(described: list[dict[str, Any]]) -> dict[int, dict[str, list[int]]]:
    """The described topics' partitions, by the broker that leads them."""
    leaders: dict[int, dict[str, list[int]]] = {}
    for entry in described:
        for partition in entry.get("partitions") or []:
            by_topic = leaders.setdefault(int(partition["leader"]), {})
            by_topic.setdefault(entry["topic"], []).append(int(partition["partition"]))
    return leaders


def _latest_offsets(partitions: dict[str, list[int]]) -> OffsetRequest:
    """A ListOffsets request for the end of each partition, as a consumer sends it first."""
    latest = -1
    return OffsetRequest(-1, 0, [(topic, [(p, latest) for p in numbers]) for topic, numbers in partitions.items()])


def _all_answered(answer: Any | None) -> bool:
    """Whether a ListOffsets answer gives an offset, not an error, for every partition asked."""
    return answer is not None and all(code == 0 for _, partitions in answer.topics for _, code, *_ in partitions)


def _all_led(described: list[dict[str, Any]], names: list[str]) -> bool:
    """Whether a metadata answer names every topic of `names`, each with a leader for every partition."""
    led = {
        entry["topic"]
        for entry in described
        if entry.get("partitions") and all(p.get("leader", -1) >= 0 for p in entry["partitions"])
    }
    return led >= set(names)


async def partition_count(settings: KafkaSettings, topic: str) -> int:
    """How many partitions an existing topic has; raises LookupError when the broker does not know it."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.broker, client_id=f"stategate-admin-{settings.node_id}")
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    for entry in described:
        if entry.get("topic") == topic and entry.get("partitions"):
            return len(entry["partitions"])
    raise LookupError(f"topic {topic!r} has no partitions")
