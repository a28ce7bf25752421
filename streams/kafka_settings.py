"""What the Kafka side of a stategate process is told: broker, topics, group timing, client tuning.

The streams read only these fields; `stategate.app.config.Settings` adds the
HTTP side. Every field `some_field` reads `STATEGATE_SOME_FIELD`; the broker
address also reads `KAFKA_BOOTSTRAP_SERVERS`.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class KafkaSettings(BaseSettings):
    """A process as a Kafka client and group member.

    The defaults suit one laptop: loopback addresses, small RocksDB caches and
    replication factor 1. Production clusters set `replication_factor` to 3.
    """

    model_config = SettingsConfigDict(env_prefix="STATEGATE_", frozen=True, populate_by_name=True, extra="forbid")

    broker: str = Field(
        "localhost:9092", validation_alias=AliasChoices("broker", "STATEGATE_BROKER", "KAFKA_BOOTSTRAP_SERVERS")
    )
    namespace: str = ""
    # 12: one, two, three, four or six processes of a kind each get an equal share.
    partitions: int = Field(12, ge=1, le=1000)
    # The order checks' own topics and tables (keyed by customer or product) scale with
    # `stategate services` processes, not nodes; every fetch names every partition it reads
    # (aiokafka has no incremental fetch sessions), so fewer partitions make each hop cheaper.
    services_partitions: int = Field(4, ge=1, le=1000)
    replication_factor: int = Field(1, ge=1)

    # This process as a member of its groups: its id, and the URL the other
    # members learn from the group's metadata (where requests are redirected).
    node_id: str = Field(default_factory=socket.gethostname, min_length=1, max_length=100)
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    advertised_url: str = ""
    data_dir: Path = Path("./data")

    # Failover: a standby copy of each table partition on another node, and a
    # short session so that a dead node is noticed quickly. Shorter sessions
    # notice crashes sooner but evict a node that stalls (a long GC pause, a
    # blocked loop) for that long.
    standby_replicas: int = Field(1, ge=0)
    session_timeout_seconds: float = Field(6.0, gt=0)
    heartbeat_interval_seconds: float = Field(1.0, gt=0)
    rebalance_timeout_seconds: float = Field(20.0, gt=0)

    # Kafka client tuning: these shape the latency of every hop.
    producer_linger_ms: int = Field(0, ge=0)
    # How long a fetch waits on the broker when no record is there yet; the
    # broker answers at once when one arrives, so this only paces idle fetches.
    fetch_max_wait_ms: int = Field(100, ge=0)
    commit_interval_seconds: float = Field(1.0, gt=0)
    produce_timeout_seconds: float = Field(5.0, gt=0)
    # How long to wait before trying the broker again, and what `Retry-After` says.
    retry_after_seconds: int = Field(1, ge=1)
    rocksdb_block_cache_bytes: int = Field(8 * 1024 * 1024, ge=0)
    rocksdb_write_buffer_bytes: int = Field(4 * 1024 * 1024, ge=1024)

    # Erasure: the topics that carry customer data are compacted, with erasable keys
    # (streams/erasable_keys.py), so that a tombstone deletes one record. These bound how long
    # an erased record stays on the brokers' disks (README, Erasure): a segment rolls after
    # `erasure_segment_seconds`, the cleaner must compact it within `erasure_compaction_lag_seconds`,
    # and tombstones themselves are kept `erasure_tombstone_seconds`, for readers that were away.
    erasure_segment_seconds: float = Field(300.0, gt=0)
    erasure_compaction_lag_seconds: float = Field(600.0, gt=0)
    erasure_tombstone_seconds: float = Field(600.0, gt=0)
    # The checks' changelogs double as their output, read by the relay: a value may be compacted
    # away only once the relay has surely read it, so they keep every value this long (and an
    # erased order's old values with them). The owner of an erased order checks Kafka this often.
    changelog_min_lag_seconds: float = Field(24 * 3600.0, gt=0)
    # Replies to service requests (`gateway-replies`) are useless once their request timed out:
    # deleted after this long (segments roll after `erasure_segment_seconds`, so it is a bound).
    reply_retention_seconds: float = Field(3600.0, gt=0)
    # `shared`: the nodes share `gateway-replies` in one group. `own`: the sidecar layout, one
    # node per service instance, each reading a one-partition topic of its own (streams/replies.py).
    reply_topic: Literal["shared", "own"] = "shared"
    erasure_check_seconds: float = Field(60.0, gt=0)

    @property
    def url(self) -> str:
        """The URL other nodes and clients use to reach this process."""
        return self.advertised_url or f"http://{self.host}:{self.port}"

    def topic(self, name: str) -> str:
        """A topic's name in this deployment's namespace (`orders` or `NS.orders`)."""
        return f"{self.namespace}.{name}" if self.namespace else name


def ms(seconds: float) -> str:
    """Seconds as the whole milliseconds of a Kafka topic config (`segment.ms`, `retention.ms`, ...)."""
    return str(int(seconds * 1000))


def durability_configs(replication_factor: int) -> dict[str, str]:
    """The topic configs that make `acks=all` mean "on a majority of the replicas".

    With three replicas or more, a write is acknowledged only once a majority
    has it (`min.insync.replicas` 2 of 3, 3 of 5): one broker may die without
    losing an acknowledged record or stopping writes. With one or two, the
    broker's default (1) stays, or a single broker down would stop all writes.
    """
    if replication_factor < 3:
        return {}
    return {"min.insync.replicas": str(replication_factor // 2 + 1)}
