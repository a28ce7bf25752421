"""Whether this process is still a member of its consumer group, judged by the heartbeats the broker answered.

A node cut off from Kafka never hears that the group evicted it. aiokafka's
heartbeat task blocks on finding the coordinator again (`ensure_coordinator_known`)
and so never reaches its own session check, and no rebalance callback runs
without a broker. The node would go on answering for partitions another
member owns by then, from a view that no longer moves: stale data as fresh.

`GroupSession` counts the node out once no heartbeat has succeeded for the
session timeout less one heartbeat interval, that is before the broker
evicts it and before another member can take its partitions over. It sees
the heartbeats by wrapping the consumer's `GroupCoordinator._do_heartbeat`
(aiokafka has no public hook for them): one instance attribute, small
enough to offer upstream as a callback.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer

from .kafka_settings import KafkaSettings

log = logging.getLogger("stategate.streams.group_session")


class GroupSession:
    """The time of the last heartbeat the group's coordinator answered, and whether the session is surely gone."""

    def __init__(self, settings: KafkaSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self.allowed_silence = max(settings.session_timeout_seconds - settings.heartbeat_interval_seconds, 0.5)
        self.clock = clock
        self.last_answered: float | None = None
        self._said_lost = False

    def watch(self, consumer: AIOKafkaConsumer) -> None:
        """Count the heartbeats of a started group consumer."""
        coordinator: Any = consumer._coordinator  # noqa: SLF001 - see the module docstring
        beat: Callable[[], Awaitable[bool]] = coordinator._do_heartbeat  # noqa: SLF001

        async def counted_heartbeat() -> bool:
            answered = await beat()
            if answered:
                self.answered()
            return answered

        coordinator._do_heartbeat = counted_heartbeat  # noqa: SLF001

    def answered(self) -> None:
        """The coordinator answered: a heartbeat, or the end of a join (an assignment)."""
        self.last_answered = self.clock()
        if self._said_lost:
            self._said_lost = False
            log.warning("in touch with the consumer group again")

    @property
    def lost(self) -> bool:
        """No answer from the coordinator for longer than the session allows: the group may have moved on."""
        if self.last_answered is None:
            return False  # not joined yet: the caller knows that from its own state
        silent = self.clock() - self.last_answered > self.allowed_silence
        if silent and not self._said_lost:
            self._said_lost = True
            log.warning("no heartbeat answered for %.1fs: counting this node out of the group", self.allowed_silence)
        return silent
