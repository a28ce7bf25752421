"""Orders written by other producers: taken by every reader, or rejected by every reader.

The records are written with Apache Kafka's own console producer
(`org.apache.kafka.tools.ConsoleProducer`, from kafka-tools), the way the
README shows. An order keyed by its id is validated like any other; a record
whose key is not its id, or that is not an order, is rejected by the gateway
(404, counted in /metrics) and by the services (sent to `orders-rejected`, no
stock reserved). A record without a key never gets in: `orders` is compacted
(erasable), and Kafka refuses keyless records on compacted topics.
"""

from __future__ import annotations

import asyncio
import subprocess
import uuid

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from stategate.app.broker import broker_classpath
from stategate.streams.erasable_keys import business_key

from .conftest import System
from .processes import wait_for


def console_produce(bootstrap: str, topic: str, lines: list[str]) -> None:
    """Write `lines` with Kafka's console producer; `key|value` lines carry a key, others none."""
    keyed = [line for line in lines if "|" in line.split("{", 1)[0]]
    for chunk, parse_key in ((keyed, "true"), ([line for line in lines if line not in keyed], "false")):
        if not chunk:
            continue
        subprocess.run(
            [
                "java", "-cp", broker_classpath(), "org.apache.kafka.tools.ConsoleProducer",
                "--bootstrap-server", bootstrap, "--topic", topic,
                "--property", f"parse.key={parse_key}", "--property", "key.separator=|",
            ],
            input="\n".join(chunk) + "\n", text=True, check=True, timeout=60, capture_output=True,
        )  # fmt: skip


async def values_of(bootstrap: str, topic: str) -> list[bytes]:
    """Every record value in `topic` now."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    try:
        partitions = [
            TopicPartition(topic, p)
            for p in (await consumer._client.fetch_all_metadata()).partitions_for_topic(topic) or ()
        ]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        values: list[bytes] = []
        async with asyncio.timeout(60):
            while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
                for batch in (await consumer.getmany(timeout_ms=500)).values():
                    values += [record.value for record in batch if record.value is not None]
        return values
    finally:
        await consumer.stop()


def order_json(order_id: str, product: str, customer: str) -> str:
    value = {"id": order_id, "customer_id": customer, "product": product, "quantity": 1, "price": 2.5}
    return orjson.dumps(value).decode()


async def dead_letters(bootstrap: str, topic: str, wanted: int) -> list[tuple[bytes | None, dict[str, bytes]]]:
    """The first `wanted` records of the dead-letter topic: key and headers."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    try:
        found: list[tuple[bytes | None, dict[str, bytes]]] = []
        async with asyncio.timeout(60):
            while len(found) < wanted:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    found += [(r.key and business_key(r.key), dict(r.headers)) for r in records]
        return found
    finally:
        await consumer.stop()


def test_orders_from_other_producers_are_taken_or_rejected_by_every_reader(
    system: System, kafka: str, product: str, customer: str
) -> None:
    topic = f"{system.namespace}.orders"
    system.stock(product, 1)  # room for one order: a rejected record that reserved stock would fail the good one
    no_key, wrong_key, good = (f"ext-{label}-{uuid.uuid4().hex[:8]}" for label in ("nokey", "wrongkey", "good"))
    console_produce(kafka, topic, [order_json(no_key, product, customer)])  # Kafka refuses it
    console_produce(kafka, topic, [f"someone-else|{order_json(wrong_key, product, customer)}", "junk|this is not JSON"])

    letters = asyncio.run(dead_letters(kafka, f"{system.namespace}.orders-rejected", 2))
    assert sorted(headers["reason"] for _, headers in letters) == [b"key-not-id", b"unreadable"]
    assert not [value for value in asyncio.run(values_of(kafka, topic)) if no_key.encode() in value]
    for order_id in (no_key, wrong_key, "someone-else", "junk"):
        assert httpx.get(f"{system.url}/v1/orders/{order_id}", follow_redirects=True).status_code == 404
    node = system.node
    wait_for(
        lambda: (
            node.metric('stategate_order_records_rejected_total{reason="key-not-id"}') == 1
            and node.metric('stategate_order_records_rejected_total{reason="unreadable"}') == 1
        ),
        30,
        "the node to count the two rejected records",
    )

    console_produce(kafka, topic, [f"{good}|{order_json(good, product, customer)}"])

    answer = httpx.get(f"{system.url}/v1/orders/{good}?wait_for=VALIDATED&timeout=30", follow_redirects=True)
    assert answer.status_code == 200, answer.text
    assert answer.json()["state"] == "VALIDATED"  # the only stock was still there: nothing else reserved it
