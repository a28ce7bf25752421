"""Faust's table recovery and flow control, mended so that no event is cleared while it flows.

Written for faust-streaming 0.15.3 and mode-streaming 0.7.1; tested in
tests/test_faust_transport.py. Two deviations, each small enough to offer
upstream (cf. faust-streaming #596, #606, #707):

1. **Resuming flow that already flows clears nothing.** mode's
   `FlowControlEvent.resume()` empties every stream buffer and the changelog
   queue each time it is called, and recovery calls it again and again while
   records flow (after standby partitions start, when recovery completes):
   events already fetched, and their offsets already passed, were thrown away.
   Stale events are cleared when flow is suspended (at revocation) and on the
   one resume that ends a suspension.
2. **Recovery seeks before it resumes.** `Recovery.on_recovery_completed`
   resumed the source partitions and then sought them to their committed
   offsets, so records fetched in between from the old positions reached the
   agents and were then read again after the seek. Here the partitions are
   sought while still paused, then resumed.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from faust.tables.manager import TableManager as FaustTableManager
from faust.tables.recovery import Recovery as FaustRecovery
from mode.utils.queues import FlowControlEvent


class FlowControl(FlowControlEvent):
    """Stream flow control that clears buffers only when flow resumes after a suspension (deviation 1)."""

    def resume(self) -> None:
        if self.is_active():
            return
        super().resume()


class Recovery(FaustRecovery):
    """Faust's table recovery, seeking source partitions before resuming them (deviation 2)."""

    async def on_recovery_completed(self, generation_id: int = 0) -> None:
        app: Any = self.app
        consumer = app.consumer
        self.log.info("Restore complete!")
        await app.on_rebalance_complete.send()
        self._set_recovery_ended()
        callbacks = [
            asyncio.ensure_future(
                table.on_recovery_completed(self.actives_for_table[table], self.standbys_for_table[table])
            )
            for table in self.tables.values()
        ]
        if callbacks:
            await asyncio.wait(callbacks)
        assignment = consumer.assignment()
        if app.consumer_generation_id != generation_id:
            self.log.warning(
                "Recovery rebalancing again: generation %r, not %r", app.consumer_generation_id, generation_id
            )
            return
        if assignment:
            self.log.info("Seek stream partitions to committed offsets.")
            await self._wait(consumer.perform_seek(), timeout=app.conf.broker_request_timeout)
        consumer.resume_partitions({tp for tp in assignment if not self._is_changelog_tp(tp)})
        self.completed.set()
        app.flow_control.resume()
        consumer.resume_flow()
        await app._fetcher.maybe_start()
        self.tables.on_actives_ready()
        if not app.assignor.assigned_standbys():
            self.tables.on_standbys_ready()
        app.on_rebalance_end()
        self.log.info("Worker ready")


class TableManager(FaustTableManager):
    """Faust's table manager with the mended recovery."""

    @property
    def recovery(self) -> Recovery:
        if self._recovery is None:
            self._recovery = Recovery(self.app, self, beacon=self.beacon, loop=self.loop)
        return cast(Recovery, self._recovery)
