"""One pass of an order's erasure over Kafka: tombstone what can be, and say whether anything is left.

The erasure of an order (app/erasure.py) runs passes on the node that owns
the order until one finds nothing. A pass reads the partitions that can
hold the order, from the beginning, and matches records exactly (the
business key is the id, or the JSON value names the id), never by
substring, so that erasing `a1` leaves `a10` alone:

- `orders`, the order's partition: its versions and the erasure request, keyed by its id: tombstoned.
- `orders-by-customer` and `orders-by-product`, the customer's and the product's
  partitions: the steps that carry the order: tombstoned.
- `orders-rejected`, every partition: dead letters keyed by the id or naming it: tombstoned.
- `gateway-replies`, every partition: answers of the customer-orders service
  that listed the order. Not compacted: they expire (`reply_retention_seconds`).
- `fraud-checked`, `inventory-checked` and the `customer-orders` changelog, the
  customer's and the product's partitions: older table values that named the
  order. They are not tombstoned (the key is the customer's or product's
  whole state); the checks wrote newer values without the order, and
  compaction drops the older ones.

The tables drop the order when an erasure step reaches them: a pass sends
one to `orders-by-customer` and one to `orders-by-product` the first time,
and again whenever a table's newest value still names the order (a check
that was in flight when the erasure began wrote it afterwards).

Then it appends a tombstone for a fresh key to each partition it read, so
that the segment holding the tombstones can roll (a segment rolls only when
a record arrives after `segment.ms`) and the cleaner can reach it. Once the
tombstones themselves have been cleaned away (`delete.retention.ms`), a
pass finds nothing: the erasure is complete.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer, TopicPartition

from .erasable_keys import business_key, erasable_key, partition_for
from .erasure_records import HEADER, REQUEST, ErasureRequest, erasure_step
from .erasure_tools import read_all, reader
from .kafka_settings import KafkaSettings
from .records import RecordError, read_object
from .replies import REPLIES
from .topics import (
    CUSTOMER_ORDERS_TABLE,
    FRAUD_CHECKED,
    INVENTORY_CHECKED,
    ORDERS,
    ORDERS_BY_CUSTOMER,
    ORDERS_BY_PRODUCT,
    ORDERS_REJECTED,
    SERVICES_APP_ID,
)

ROLL_KEY = "~roll"
"""The business key of the tombstones a pass appends so that segments roll."""


@dataclass(frozen=True, slots=True)
class Target:
    """Partitions of one topic that may hold the order, and whether its records there can be tombstoned."""

    topic: str
    partitions: tuple[int, ...] | None  # None: every partition
    erasable: bool


@dataclass(frozen=True, slots=True)
class PassResult:
    """What one pass found (records that still hold the order) and tombstoned."""

    found: int
    tombstoned: int

    @property
    def clean(self) -> bool:
        """Nothing of the order is left in Kafka."""
        return self.found == 0


def targets(settings: KafkaSettings, request: ErasureRequest) -> list[Target]:
    """Where the order's data can be, topic by topic (see the module's table)."""
    by_order = partition_for(request.order_id.encode(), settings.partitions)
    by_customer = partition_for(request.customer_id.encode(), settings.services_partitions)
    by_product = partition_for(request.product.encode(), settings.services_partitions)
    changelog = f"{settings.topic(SERVICES_APP_ID)}-{CUSTOMER_ORDERS_TABLE}-changelog"
    return [
        Target(settings.topic(ORDERS), (by_order,), erasable=True),
        Target(settings.topic(ORDERS_BY_CUSTOMER), (by_customer,), erasable=True),
        Target(settings.topic(ORDERS_BY_PRODUCT), (by_product,), erasable=True),
        Target(settings.topic(ORDERS_REJECTED), None, erasable=True),
        Target(settings.topic(FRAUD_CHECKED), (by_customer,), erasable=False),
        Target(settings.topic(INVENTORY_CHECKED), (by_product,), erasable=False),
        Target(changelog, (by_customer,), erasable=False),
        Target(settings.topic(REPLIES), None, erasable=False),  # the customer-orders service's answers
    ]


def names_order(key: bytes | None, value: bytes | None, order_id: str) -> bool:
    """Whether a record is about the order: keyed by its id, or a JSON value that names it.

    The values that can name an order: an order (`{"id"}`), a step
    (`{"order": {"id"}}`), an erasure request or step (`{"id"}`), a check's
    table value (`{"order": {"id"}}`) and a customer's index (`{"orders": [ids]}`).
    """
    if key is not None and business_key(key) == order_id.encode():
        return True
    if value is None or order_id.encode() not in value:
        return False  # cheap: most records do not even hold the bytes
    try:
        data = read_object(value)
    except RecordError:
        return False
    order = data.get("order")
    listed = data.get("orders")
    return (
        data.get("id") == order_id
        or (isinstance(order, dict) and order.get("id") == order_id)
        or (isinstance(listed, list) and order_id in listed)
    )


async def erasure_pass(
    settings: KafkaSettings, request: ErasureRequest, producer: AIOKafkaProducer, first: bool
) -> PassResult:
    """Read every target, tombstone the order's erasable records, tell the tables, roll the segments read."""
    found = 0
    tombstones: list[tuple[str, int, bytes]] = []
    read: list[TopicPartition] = []
    topics: set[str] = set()  # the targets that exist
    newest_names_order: dict[tuple[str, bytes | None], bool] = {}  # table values: does each key's newest?
    erasable: dict[str, bool] = {}
    async with reader(settings) as consumer:
        metadata = await consumer._client.fetch_all_metadata()  # once: a consumer knows only topics it asked about
        for target in targets(settings, request):
            existing = metadata.partitions_for_topic(target.topic)
            if not existing:
                continue  # not created yet: nothing there
            topics.add(target.topic)
            erasable[target.topic] = target.erasable
            chosen = sorted(existing) if target.partitions is None else [p for p in target.partitions if p in existing]
            read.extend(TopicPartition(target.topic, p) for p in chosen)
        async for record in read_all(consumer, read):  # every target at once, each partition in offset order
            named = names_order(record.key, record.value, request.order_id)
            if not erasable[record.topic]:
                newest_names_order[(record.topic, record.key)] = named
            if not named:
                continue
            found += 1
            if erasable[record.topic] and record.value is not None and record.key is not None:
                tombstones.append((record.topic, record.partition, record.key))
    steps = first or any(newest_names_order.values())
    if steps:
        await _send_erasure_steps(settings, request, producer, topics)
    sent = [
        await producer.send(topic, value=None, key=key, partition=partition) for topic, partition, key in tombstones
    ]
    sent += [await producer.send(tp.topic, None, erasable_key(ROLL_KEY), partition=tp.partition) for tp in read]
    await asyncio.gather(*sent)  # acknowledged, all of them
    return PassResult(found, len(tombstones))


async def _send_erasure_steps(
    settings: KafkaSettings, request: ErasureRequest, producer: AIOKafkaProducer, existing: set[str]
) -> None:
    """Tell the fraud, inventory and customer-orders tables to drop the order (on the customer's and product's
    partitions, where its steps went). Not to topics that do not exist: no services ever ran, and a send
    must not create them with the broker's default partition count."""
    value = erasure_step(request.order_id)
    headers = [(HEADER, REQUEST)]
    for topic, key in ((ORDERS_BY_CUSTOMER, request.customer_id), (ORDERS_BY_PRODUCT, request.product)):
        if settings.topic(topic) in existing:
            await producer.send_and_wait(settings.topic(topic), value=value, key=erasable_key(key), headers=headers)
