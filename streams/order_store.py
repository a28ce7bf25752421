"""The gateway's orders, on disk: RocksDB (rocksdict) with each partition's applied offset.

Exactly once by construction: the newest version of each order and the
offset of the last `orders` record applied from its partition are written in
one RocksDB write batch. A node that restarts, or takes a partition over,
reads the partition from the offset after its own stored one, so every
record is applied once, whatever happened to the process or the group's
committed offsets. A record is applied only when its version is newer than
the stored one, so duplicates and stale writes change nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path

from aiokafka import ConsumerRecord
from rocksdict import BlockBasedOptions, Cache, Options, Rdict, WriteBatch

from .records import REJECTIONS, Order, RecordError, order_record_rejection

log = logging.getLogger("stategate.streams.order_store")

_ORDER = b"o:"
_OFFSET = b"p:"
NOTHING_APPLIED = -1

OnRejected = Callable[[str], None]
"""Told the reason (a key of `records.REJECTIONS`) of each `orders` record the view rejects."""


class OrderStore:
    """Orders by id and applied offsets by partition, in one RocksDB database."""

    def __init__(self, path: Path, block_cache_bytes: int, write_buffer_bytes: int) -> None:
        path.mkdir(parents=True, exist_ok=True)
        options = Options(raw_mode=True)
        options.create_if_missing(True)
        options.set_write_buffer_size(write_buffer_bytes)
        options.set_max_write_buffer_number(2)
        table = BlockBasedOptions()
        table.set_block_cache(Cache(block_cache_bytes))
        options.set_block_based_table_factory(table)
        self._db = Rdict(str(path), options)
        self._offsets: dict[int, int] = {}

    def close(self) -> None:
        """Flush and close the database."""
        self._db.close()

    def get(self, order_id: str) -> Order | None:
        """The newest version of an order, or None."""
        data = self._db.get(_ORDER + order_id.encode())
        return None if data is None else Order.from_json(data)

    def applied_offset(self, partition: int) -> int:
        """The offset of the last record applied from `partition`, or -1."""
        offset = self._offsets.get(partition)
        if offset is None:
            data = self._db.get(_OFFSET + str(partition).encode())
            offset = NOTHING_APPLIED if data is None else int(data)
            self._offsets[partition] = offset
        return offset

    def apply(
        self, partition: int, records: Iterable[ConsumerRecord[bytes, bytes]], on_rejected: OnRejected | None = None
    ) -> list[Order]:
        """Apply the records of one partition, in offset order; return the orders that changed.

        Records at or below the stored offset were applied before and are
        skipped. Records every reader of `orders` rejects (unreadable, no key,
        a key that is not the id: `records.order_record_rejection`) advance the
        offset and change nothing; `on_rejected` hears of each, once.
        """
        applied = self.applied_offset(partition)
        last = applied
        batch = WriteBatch(raw_mode=True)
        newest: dict[str, Order] = {}
        for record in records:
            if record.offset <= last:
                continue
            last = record.offset
            order = _accepted(record, on_rejected)
            if order is None:
                continue
            current = newest.get(order.id) or self.get(order.id)
            if current is not None and order.version <= current.version:
                continue
            newest[order.id] = order
            batch.put(_ORDER + order.id.encode(), order.to_json())
        if last == applied:
            return []
        batch.put(_OFFSET + str(partition).encode(), str(last).encode())
        self._db.write(batch)
        self._offsets[partition] = last
        return list(newest.values())


def _accepted(record: ConsumerRecord[bytes, bytes], on_rejected: OnRejected | None) -> Order | None:
    if record.value is None:
        return None  # a tombstone: one message was erased (streams/erasable_keys.py), not a bad record
    timestamp = record.timestamp / 1000.0 if record.timestamp else None
    order: Order | None
    rejection: str | None
    try:
        order = Order.from_record(record.value or b"", record.key, timestamp)
    except RecordError:
        order, rejection = None, "unreadable"
    else:
        rejection = order_record_rejection(record.key, order)
    if rejection is None:
        return order
    if on_rejected is not None:
        log.warning(
            "rejected an order record",
            extra={"partition": record.partition, "offset": record.offset, "reason": REJECTIONS[rejection]},
        )
        on_rejected(rejection)
    return None
