"""One typed settings object, read from the environment and the command line.

Every option `--some-option` of the `stategate` command also reads
`STATEGATE_SOME_OPTION`; the broker address falls back to
`KAFKA_BOOTSTRAP_SERVERS`, then `localhost:9092`.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def default_broker() -> str:
    """The broker from `STATEGATE_BROKER`, `KAFKA_BOOTSTRAP_SERVERS` or localhost."""
    return os.environ.get("STATEGATE_BROKER", os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092"))


@dataclass(frozen=True)
class Settings:
    """Everything a stategate process can be told.

    The defaults suit one laptop: loopback addresses, small RocksDB caches and
    replication factor 1. Production clusters set `replication_factor` to 3.
    """

    broker: str = field(default_factory=default_broker)
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path("./data")
    node_id: str = field(default_factory=lambda: socket.gethostname())
    advertised_url: str = ""
    # `advertised=internal,...`: where nodes reach each other when the URLs
    # advertised to clients do not work between nodes (containers that
    # publish ports on the host). Clients only ever see advertised URLs.
    peer_urls: str = ""
    routing: str = "redirect"  # or "proxy": forward requests to the owning node

    namespace: str = ""
    partitions: int = 4
    replication_factor: int = 1

    # Failover: a standby copy of each table partition on another node, and a
    # short session so that a dead node is noticed quickly. Shorter sessions
    # notice crashes sooner but evict a node that stalls (a long GC pause, a
    # blocked loop) for that long.
    standby_replicas: int = 1
    session_timeout_seconds: float = 6.0
    heartbeat_interval_seconds: float = 1.0
    rebalance_timeout_seconds: float = 20.0

    # HTTP bounds.
    max_body_bytes: int = 64 * 1024
    max_waiters: int = 20_000
    produce_timeout_seconds: float = 5.0
    retry_after_seconds: int = 1
    drain_seconds: float = 5.0
    shutdown_seconds: float = 15.0

    # Kafka client tuning: these shape the latency of every hop.
    producer_linger_ms: int = 0
    # How long a fetch waits on the broker when no record is there yet; the
    # broker answers at once when one arrives, so this only paces idle fetches.
    fetch_max_wait_ms: int = 100
    commit_interval_seconds: float = 1.0
    rocksdb_block_cache_bytes: int = 8 * 1024 * 1024
    rocksdb_write_buffer_bytes: int = 4 * 1024 * 1024

    # Request/response to services behind request topics: `name=topic,...`,
    # added to (or overriding) the example services' topics.
    services: str = ""
    max_service_requests: int = 20_000
    # Shared by the nodes of one cluster: signs replies handed over between
    # nodes. Without it, a reply that lands on another node is dropped.
    cluster_secret: str = field(default="", repr=False)

    log_level: str = "INFO"
    # Faust, aiokafka and mode log a lot at INFO; their rebalance and recovery
    # steps show at INFO, so raise this when a rebalance misbehaves.
    kafka_log_level: str = "WARNING"

    @property
    def url(self) -> str:
        """The URL other nodes and clients use to reach this node."""
        return self.advertised_url or f"http://{self.host}:{self.port}"

    def topic(self, name: str) -> str:
        """A topic's name in this deployment's namespace (`orders` or `NS.orders`)."""
        return f"{self.namespace}.{name}" if self.namespace else name

    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        """Build settings from `STATEGATE_*` variables, then apply `overrides`.

        Overrides whose value is None are ignored, so parsed CLI options can be
        passed straight through.
        """
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name == "broker":
                continue
            raw = os.environ.get(f"STATEGATE_{f.name.upper()}")
            if raw is not None:
                values[f.name] = _coerce(f.type, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def with_changes(self, **changes: Any) -> Settings:
        """A copy with some fields replaced."""
        return dataclasses.replace(self, **changes)


def _coerce(type_name: Any, raw: str) -> Any:
    kind = str(type_name)
    if kind == "int":
        return int(raw)
    if kind == "float":
        return float(raw)
    if kind == "Path":
        return Path(raw)
    return raw
