"""One typed settings object, read from the environment and the command line.

Every option `--some-option` of the `stategate` command also reads
`STATEGATE_SOME_OPTION`; the broker address falls back to
`KAFKA_BOOTSTRAP_SERVERS`, then `localhost:9092`. The Kafka side of the
settings lives below, in `stategate.streams.kafka_settings`, so that the
streams need nothing from here.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from stategate.streams.kafka_settings import KafkaSettings


class Settings(KafkaSettings):
    """Everything a stategate process can be told."""

    # `advertised=internal,...`: where nodes reach each other when the URLs
    # advertised to clients do not work between nodes (containers that
    # publish ports on the host). Clients only ever see advertised URLs.
    peer_urls: str = ""
    routing: Literal["redirect", "proxy"] = "redirect"  # proxy: forward requests to the owning node

    # Browser clients on other origins: `https://shop.example,...` (CORS). Empty: no CORS headers at all.
    cors_origins: str = ""

    # HTTP bounds.
    max_body_bytes: int = Field(64 * 1024, ge=1024)
    max_waiters: int = Field(20_000, ge=1)
    drain_seconds: float = Field(5.0, ge=0)
    shutdown_seconds: float = Field(15.0, gt=0)

    # Request/response to services behind request topics: `name=topic,...`,
    # added to (or overriding) the example services' topics.
    services: str = ""
    max_service_requests: int = Field(20_000, ge=1)
    # Shared by the nodes of one cluster: signs replies handed over between
    # nodes. Without it, the nodes agree on one through Kafka (streams/cluster_secret.py).
    cluster_secret: str = Field("", repr=False)

    # Live updates (SSE, WebSocket): how many streams a node holds, how many distinct orders
    # a stream may have waiting for a slow client before it is dropped, how long one write
    # may stall, the keep-alive comment interval, and how many recent records of each
    # partition the order feed keeps for clients that reconnect with Last-Event-ID.
    max_streams: int = Field(10_000, ge=1)  # SSE streams and WebSocket subscriptions (one per order)
    max_sockets: int = Field(10_000, ge=1)
    stream_backlog: int = Field(1_000, ge=1)
    slow_client_seconds: float = Field(10.0, gt=0)
    heartbeat_seconds: float = Field(15.0, gt=0)
    feed_history: int = Field(1_000, ge=1)
    # WebSocket sessions: how long a session waits for its client to come back (to any node),
    # and how many of its answers it keeps for a client that comes back.
    session_grace_seconds: float = Field(60.0, gt=0)
    session_replay: int = Field(1_000, ge=1)

    log_level: str = "INFO"
    # Faust, aiokafka and mode log a lot at INFO; their rebalance and recovery
    # steps show at INFO, so raise this when a rebalance misbehaves.
    kafka_log_level: str = "WARNING"

    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        """Settings from `STATEGATE_*` variables, then `overrides` (those that are None are ignored).

        Parsed command-line options can be passed straight through.
        """
        return cls(**{name: value for name, value in overrides.items() if value is not None})
