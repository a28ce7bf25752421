"""A trivial backend for measuring the gateway alone: `python -m bench.approver`.

A plain aiokafka loop that reads `orders` and answers every CREATED order at
once with its VALIDATED version (all three checks PASS). It stands in for the
services when the question is what the gateway itself costs: no Faust, no
tables, one record back per order. Run by `python -m bench.orders --backend trivial`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from stategate.app.config import Settings
from stategate.streams.admin import TopicSpec, ensure_topics
from stategate.streams.erasable_keys import business_key
from stategate.streams.records import CHECK_TYPES, PASS, utc_now
from stategate.streams.topics import ORDERS

READY_LINE = "approver ready"


async def approve(settings: Settings) -> None:
    """Answer every CREATED order on the settings' `orders` topic with VALIDATED until SIGTERM."""
    bootstrap, topic = settings.broker, settings.topic(ORDERS)
    await ensure_topics(settings, [TopicSpec(topic, settings.partitions)])
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=100)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=0)
    await consumer.start()
    await producer.start()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    partitions = [TopicPartition(topic, p) for p in sorted(await producer.partitions_for(topic))]
    assert partitions, f"no topic {topic}"
    consumer.assign(partitions)
    await consumer.seek_to_end(*partitions)  # positioned at the end before saying ready
    print(READY_LINE, flush=True)
    validations = dict.fromkeys(CHECK_TYPES, PASS)
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                for record in records:
                    order = orjson.loads(record.value)
                    if order.get("state", "CREATED") != "CREATED":
                        continue
                    order.update(state="VALIDATED", version=order.get("version", 1) + 1, validations=validations)
                    order["updated_at"] = utc_now()
                    await producer.send(topic, orjson.dumps(order), key=business_key(record.key))
    finally:
        with contextlib.suppress(Exception):
            await producer.stop()
        await consumer.stop()


def main() -> None:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    asyncio.run(approve(Settings.from_env()))  # STATEGATE_BROKER, STATEGATE_NAMESPACE, ...


if __name__ == "__main__":
    main()
