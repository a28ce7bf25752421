"""The consumer-group settings every aiokafka group of the project shares.

The gateway's order view, its reply consumer and the services' relay all
join groups; they should notice a dead member, and give a rebalance time,
in the same way, as configured (`STATEGATE_SESSION_TIMEOUT_SECONDS`, ...).
"""

from __future__ import annotations

from .kafka_settings import KafkaSettings


def group_timing(settings: KafkaSettings) -> dict[str, int]:
    """Session, heartbeat, rebalance and poll intervals for an AIOKafkaConsumer, in milliseconds."""
    return {
        "session_timeout_ms": int(settings.session_timeout_seconds * 1000),
        "heartbeat_interval_ms": int(settings.heartbeat_interval_seconds * 1000),
        "rebalance_timeout_ms": int(settings.rebalance_timeout_seconds * 1000),
        "max_poll_interval_ms": int(max(settings.rebalance_timeout_seconds, 10) * 1000),
    }
