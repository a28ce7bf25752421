"""The gateway's orders, on disk: RocksDB (rocksdict) with each partition's applied offset.

Exactly once by construction: the newest version of each order and the
offset of the last `orders` record applied from its partition are written in
one RocksDB write batch. A node that restarts, or takes a partition over,
reads the partition from the offset after its own stored one, so every
record is applied once, whatever happened to the process or the group's
committed offsets. A record is applied only when its version is newer than
the stored one, so duplicates and stale writes change nothing.

Erasure (streams/erasure_records.py): an erasure request deletes the order,
keeps its marker (`e:`) for good and the request itself (`j:`, the erasure
still to finish) until the `done` marker comes; later versions of an erased
order are dropped. After either, the database is flushed and the range
compacted, so that the order's bytes leave the disk, not only the index.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from aiokafka import ConsumerRecord
from rocksdict import (
    BlockBasedOptions,
    BottommostLevelCompaction,
    Cache,
    CompactOptions,
    Options,
    Rdict,
    WriteBatch,
)

from .erasure_records import DONE, REQUEST, ErasureRequest, erasure_kind, marker_in
from .records import REJECTIONS, Order, RecordError, order_record_rejection

log = logging.getLogger("stategate.streams.order_store")

_ORDER = b"o:"
_OFFSET = b"p:"
_ERASED = b"e:"
_PENDING = b"j:"
NOTHING_APPLIED = -1

OnRejected = Callable[[str], None]
"""Told the reason (a key of `records.REJECTIONS`) of each `orders` record the view rejects."""


@dataclass(frozen=True, slots=True)
class Erased:
    """An order the store dropped because an erasure request for it was applied."""

    order_id: str


MarkerOf = Callable[[str], str]
"""An order id's erasure marker (streams/erasure_records.py `marker_of`, with the cluster secret)."""


class OrderStore:
    """Orders by id, applied offsets by partition and erasure markers, in one RocksDB database."""

    def __init__(
        self, path: Path, block_cache_bytes: int, write_buffer_bytes: int, marker_of: MarkerOf | None = None
    ) -> None:
        path.mkdir(parents=True, exist_ok=True)
        options = Options(raw_mode=True)
        options.create_if_missing(True)
        options.set_write_buffer_size(write_buffer_bytes)
        options.set_max_write_buffer_number(2)
        table = BlockBasedOptions()
        table.set_block_cache(Cache(block_cache_bytes))
        options.set_block_based_table_factory(table)
        self._path, self._options = str(path), options
        self._db = Rdict(self._path, options)
        self._offsets: dict[int, int] = {}
        self.marker_of = marker_of
        self._unheard: set[str] = set()  # done markers whose request this store never applied
        self._erased: set[str] = {key[len(_ERASED) :].decode() for key in self._keys(_ERASED)}

    def _keys(self, prefix: bytes) -> list[bytes]:
        keys: list[bytes] = []
        for key in self._db.keys(from_key=prefix):
            if not isinstance(key, bytes) or not key.startswith(prefix):
                break
            keys.append(key)
        return keys

    def is_erased(self, order_id: str) -> bool:
        """Whether an erasure of this order id was applied (the id may never come back)."""
        return bool(self._erased) and self.marker_of is not None and self.marked(self.marker_of(order_id))

    def marked(self, marker: str) -> bool:
        """Whether an erasure with this marker was applied."""
        return marker in self._erased

    def pending_erasures(self) -> list[ErasureRequest]:
        """The erasure requests applied here whose `done` marker has not come yet."""
        return [ErasureRequest.from_json(self._db.get(key)) for key in self._keys(_PENDING)]

    def erasure_done(self, marker: str) -> bool:
        """Whether the erasure with this marker is finished (its `done` marker applied)."""
        return self.marked(marker) and self._db.get(_PENDING + marker.encode()) is None

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
    ) -> list[Order | Erased]:
        """Apply the records of one partition, in offset order; return the orders that changed or were erased.

        Records at or below the stored offset were applied before and are
        skipped. Records every reader of `orders` rejects (unreadable, no key,
        a key that is not the id: `records.order_record_rejection`) advance the
        offset and change nothing; `on_rejected` hears of each, once.
        """
        applied = self.applied_offset(partition)
        last = applied
        batch = WriteBatch(raw_mode=True)
        newest: dict[str, Order] = {}
        erased: dict[str, Erased] = {}
        markers: set[str] = set()
        deleted: list[bytes] = []
        for record in records:
            if record.offset <= last:
                continue
            last = record.offset
            kind = erasure_kind(record.headers)
            if kind is not None:
                gone = self._erasure(kind, record, batch, markers, deleted)
                if gone is not None:
                    newest.pop(gone.order_id, None)
                    erased[gone.order_id] = gone
                continue
            order = _accepted(record, on_rejected)
            if order is None:
                continue
            if order.id in erased or self.is_erased(order.id):
                continue  # a version of an erased order that was still on its way (a check in flight)
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
        if markers:
            self._erased |= markers
            if self._unheard:
                deleted += self._drop_unheard_erasures(self._unheard)
                self._unheard = set()
            self._forget_deleted_bytes(deleted)
        return [*newest.values(), *erased.values()]

    def _erasure(
        self,
        kind: bytes,
        record: ConsumerRecord[bytes, bytes],
        batch: WriteBatch,
        markers: set[str],
        deleted: list[bytes],
    ) -> Erased | None:
        """Apply an erasure request (the order goes) or a `done` marker (the erasure is finished)."""
        try:
            if kind == REQUEST:
                request = ErasureRequest.from_json(record.value)
                batch.delete(_ORDER + request.order_id.encode())
                deleted.append(_ORDER + request.order_id.encode())
                batch.put(_ERASED + request.marker.encode(), b"")
                batch.put(_PENDING + request.marker.encode(), request.to_json())
                markers.add(request.marker)
                return Erased(request.order_id)
            if kind == DONE:
                marker = marker_in(record.value)
                if marker not in self._erased and marker not in markers:
                    self._unheard.add(marker)
                batch.put(_ERASED + marker.encode(), b"")
                batch.delete(_PENDING + marker.encode())
                deleted.append(_PENDING + marker.encode())
                markers.add(marker)
        except RecordError as exc:
            log.warning("skipping an unreadable erasure record", extra={"offset": record.offset, "error": str(exc)})
        return None

    def _drop_unheard_erasures(self, markers: set[str]) -> list[bytes]:
        """Delete the orders erased while this store was away (it read only their `done` markers).

        This node missed the erasure request: it was stopped longer than the
        request stayed in Kafka. It can find the orders only by the markers
        of the ids it holds, so it hashes each of them, once per batch that
        brings such markers.
        """
        if self.marker_of is None:
            return []
        gone = [key for key in self._keys(_ORDER) if self.marker_of(key[len(_ORDER) :].decode()) in markers]
        batch = WriteBatch(raw_mode=True)
        for key in gone:
            batch.delete(key)
        self._db.write(batch)
        if gone:
            log.info("dropped orders erased while this node was away", extra={"count": len(gone)})
        return gone

    def _forget_deleted_bytes(self, keys: list[bytes]) -> None:
        """Write the memtable out and compact the deleted keys' ranges, so that they are gone from the files too.

        A delete only hides a value; its bytes stay in the SST files (and the
        delete itself, with the key, in the write-ahead log) until a flush and
        a compaction of those files down to the last level drop them. The
        MANIFEST names each file's first and last key and keeps old entries
        until it is rewritten, which RocksDB does when it opens the database:
        so the database is opened again.
        """
        self._db.flush(True)
        everything_down = CompactOptions()
        everything_down.set_bottommost_level_compaction(BottommostLevelCompaction.force())
        for key in keys:
            self._db.compact_range(key, key + b"\x00", everything_down)
        self._db.close()
        self._db = Rdict(self._path, self._options)


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
