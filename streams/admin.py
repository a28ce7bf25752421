"""Creating the topics a Faust app needs before it starts.

Faust declares topics while its consumer is already subscribing, and its
cached metadata may then see a changelog topic with zero partitions (the
table's agent crashes with PartitionsMismatch). Creating every topic first,
with the right partition count and compaction, avoids that race.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

import faust
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from faust.types import TopicT

from app.config import Settings

log = logging.getLogger("stategate.streams.admin")


@dataclass(frozen=True)
class TopicSpec:
    """A topic to create: name, partitions and topic configs."""

    name: str
    partitions: int
    configs: dict[str, str] = field(default_factory=dict)


def topics_of(app: faust.App, topics: Iterable[TopicT], partitions: int) -> list[TopicSpec]:
    """The given topics plus every table's compacted changelog topic."""
    specs = [TopicSpec(name, partitions) for topic in topics for name in topic.topics]
    for table in app.tables.values():
        specs.append(TopicSpec(table.changelog_topic.get_topic_name(), partitions, {"cleanup.policy": "compact"}))
    return specs


async def ensure_topics(settings: Settings, specs: Iterable[TopicSpec]) -> None:
    """Create the topics that do not exist yet; leave existing ones alone."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.broker, client_id=f"stategate-admin-{settings.node_id}")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [spec for spec in specs if spec.name not in existing]
        if not missing:
            return
        new_topics = [
            NewTopic(spec.name, spec.partitions, settings.replication_factor, topic_configs=spec.configs)
            for spec in missing
        ]
        try:
            await admin.create_topics(new_topics)
        except TopicAlreadyExistsError:
            pass  # another process created it meanwhile
        log.info("created topics", extra={"topics": ",".join(spec.name for spec in missing)})
    finally:
        await admin.close()
