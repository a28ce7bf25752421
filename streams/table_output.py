"""A table whose writes are a check's output, sent at once and in order (deviation 12).

A Faust table write is synchronous, so Faust queues the changelog record in
its producer buffer, and a task of the buffer sends the queue one record at a
time, later; the conductor stops the flow whenever more than 100 wait. For
the checks, whose table value *is* their output (streams/order_steps.py),
that queue was the slowest step of every order. `TableOutput.write` puts the
value in the table's store and sends the changelog record from the writing
agent itself. One lock per table keeps the records in the order of the
writes, whichever agent wrote them (the inventory table has two writers):
a newer value overtaken by an older one would leave the older one last in
the changelog, and a restart would restore it.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from faust.streams import current_event
from faust.types import TP, AppT, TableT
from faust.types.stores import StoreT

from .erasing_table import compact_key
from .erasure_records import HEADER, REQUEST


class TableOutput:
    """Writes one table's values, each with its changelog record sent at once."""

    def __init__(self, app: AppT, table: TableT[bytes, bytes]) -> None:
        self.app = app
        self.table = table
        self._sending = asyncio.Lock()

    async def write(self, key: bytes, value: bytes, headers: list[tuple[str, bytes]] | None = None) -> None:
        """`table[key] = value`, and its changelog record handed to the producer before this returns.

        Call it from an agent: like a Faust table write, it goes to the
        partition of the event being processed. `headers` go on the
        changelog record.
        """
        event = current_event()
        if event is None:
            raise RuntimeError("a table output is written from an agent, while it processes an event")
        partition = event.message.partition
        self.table.data[key] = value  # the store; no await between the agent's read and this write
        topic = self.table.changelog_topic.get_topic_name()
        async with self._sending:
            acknowledged = await self.app.producer.send(topic, key, value, partition, None, headers)
        store = cast(StoreT[bytes, bytes], self.table.data)
        tp = TP(topic, partition)

        def persisted(done: asyncio.Future[Any]) -> None:
            # What Faust does for its own changelog writes: recovery reads on from here.
            if not done.cancelled() and done.exception() is None:
                store.set_persisted_offset(tp, done.result().offset)

        asyncio.ensure_future(acknowledged).add_done_callback(persisted)

    async def overwrite(self, key: bytes, value: bytes) -> None:
        """`write` with the erasure header, then `compact` the key: for an erasure.

        The header tells every other copy of the table to compact the key as
        well (streams/erasing_table.py).
        """
        await self.write(key, value, [(HEADER, REQUEST)])
        self.compact(key)

    async def rewrite(self, key: bytes) -> None:
        """`overwrite` the key with the value it holds: for an erasure whose order the value no longer names.

        Older values under the key may still name it. Writing the current one
        again with the erasure header makes every copy of the table compact
        the key, not only this one.
        """
        value = cast(StoreT[bytes, bytes], self.table.data).get(key)
        if value is None:
            self.compact(key)
        else:
            await self.overwrite(key, value)

    def compact(self, key: bytes) -> None:
        """Push the key's old values out of RocksDB (in the current event's partition): for an erasure."""
        event = current_event()
        if event is None:
            raise RuntimeError("a table output is compacted from an agent, while it processes an event")
        compact_key(cast(Any, self.table.data)._db_for_partition(event.message.partition), key)
