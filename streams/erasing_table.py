"""A Faust table whose every copy forgets an erased order's bytes, not only the copy that erased it.

When a check erases an order it overwrites the value that named it and
compacts the key in its own RocksDB (streams/table_output.py). The changelog
record of that overwrite carries the erasure header, and every other copy of
the table applies it here: a standby, and any process that recovers the
table later. Applying the record is not enough on its own, because RocksDB
keeps the overwritten value in its write-ahead log and in its files until a
compaction reaches the last level; so the key is compacted too.

A standby applies each changelog record as it comes (`STANDBY_BUFFER_SIZE`).
Faust's default buffers 1,000 records per partition and applies them only
when the buffer is full, at the end of a recovery or at stop: a quiet
standby could keep an erased order's value in memory, and then on disk, for
as long as the table stays quiet.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

import faust
import rocksdict
from faust.types import EventT

from .erasure_records import erasure_kind

STANDBY_BUFFER_SIZE = 1
"""Changelog records a standby copy gathers before applying them: one, so it is never behind."""


def compact_key(db: Any, key: bytes) -> None:
    """Push `key`'s old values out of one RocksDB database's files and write-ahead log.

    RocksDB keeps an overwritten value in its files until a compaction of
    those files reaches the last level, and in the write-ahead log until the
    memtable is flushed. Both are forced here, for this key's range only.
    """
    db.flush(True)
    everything_down = rocksdict.CompactOptions()
    everything_down.set_bottommost_level_compaction(rocksdict.BottommostLevelCompaction.force())
    db.compact_range(key, key + b"\x00", everything_down)


class ErasingTable(faust.Table[Any, Any]):
    """`faust.Table`, compacting the keys of changelog records that carry the erasure header.

    Set as the app's `Table` class (streams/faust_app.py), so every table of
    a stategate app is one.
    """

    def apply_changelog_batch(self, batch: Iterable[EventT[Any]]) -> None:
        events = list(batch)
        super().apply_changelog_batch(events)
        for event in events:
            message = event.message
            if erasure_kind(message.headers) is not None and message.key is not None:
                compact_key(cast(Any, self.data)._db_for_partition(message.partition), message.key)
