"""Writing commands to Kafka so that a 2xx always means Kafka has them.

The gateway's own producer is idempotent with acks=all, separate from the
Faust app's producer, and every send has a deadline: when the broker cannot
take a command in time the caller learns it at once, instead of a request
that hangs.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from .erasable_keys import ErasablePartitioner, erasable_or_plain
from .kafka_settings import KafkaSettings

log = logging.getLogger("stategate.streams.commands")


class KafkaUnavailable(Exception):
    """Kafka did not acknowledge a command within its deadline.

    The command may still land later: clients retry with the same
    Idempotency-Key (or order id), which never makes a second order.
    """


class CommandProducer:
    """An idempotent acks=all producer with a deadline on every send."""

    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        """Connect to the cluster."""
        settings = self.settings
        self._producer = AIOKafkaProducer(
            bootstrap_servers=settings.broker,
            client_id=f"stategate-{settings.node_id}",
            acks="all",
            enable_idempotence=True,
            linger_ms=settings.producer_linger_ms,
            request_timeout_ms=int(settings.produce_timeout_seconds * 1000),
            retry_backoff_ms=100,
            partitioner=ErasablePartitioner(),
        )
        await self._producer.start()

    @property
    def kafka(self) -> AIOKafkaProducer:
        """The started aiokafka producer, for senders that need no deadline of their own (erasure passes)."""
        assert self._producer is not None, "CommandProducer.start() first"
        return self._producer

    async def stop(self) -> None:
        """Flush what is in flight and disconnect."""
        if self._producer is not None:
            await self._producer.stop()

    async def send(
        self,
        topic: str,
        key: str,
        value: bytes,
        headers: list[tuple[str, bytes]] | None = None,
        erasable: bool = False,
        partition: int | None = None,
    ) -> None:
        """Send one record and wait for Kafka's acknowledgement, or raise KafkaUnavailable.

        `erasable`: the record's key gets a GUID of its own (streams/erasable_keys.py), so that this one
        record can be erased later. `partition`: this one, not the key's.
        """
        raw_key = erasable_or_plain(key.encode()) if erasable else key.encode()
        deadline = self.settings.produce_timeout_seconds
        assert self._producer is not None, "CommandProducer.start() first"
        try:
            async with asyncio.timeout(deadline):  # no extra task, unlike asyncio.wait_for
                await self._producer.send_and_wait(
                    topic, value=value, key=raw_key, headers=headers, partition=partition
                )
        except (TimeoutError, KafkaError) as exc:
            log.warning("command not acknowledged", extra={"topic": topic, "key": key, "error": repr(exc)})
            raise KafkaUnavailable(f"Kafka did not acknowledge the command within {deadline:g}s") from exc
