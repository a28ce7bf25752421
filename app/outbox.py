"""What a live stream has yet to send its client: every change in order, conflated only when it falls behind.

A slow client must never slow the node, nor make it hold an unbounded
backlog. A client that keeps up gets every version of every order it
watches, in the order the feed read them. Once more than `capacity`
changes wait, the outbox conflates: for state, a client that has not yet
been sent version 2 of an order gains nothing from it once version 3
waits behind it, so only the newest waiting change of each order stays,
where it was. The changes of each partition stay in offset order, so an
event id remains a promise about everything before it (app/event_ids.py).
Only a client with more distinct orders waiting than `capacity` is too
slow, and is dropped. An erased order's waiting changes are dropped at
once (`forget`): its erasure is all the client gets of it.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass

from stategate.streams.order_feed import Change, FeedItem
from stategate.streams.records import Order


@dataclass(frozen=True, slots=True)
class Pending:
    """A change (or an erasure) waiting to be sent, and the event id it carries (None inside a snapshot batch)."""

    change: FeedItem
    event_id: str | None

    @property
    def order(self) -> Order | None:
        """The order as this change leaves it; None when the change is the order's erasure."""
        return self.change.order if isinstance(self.change, Change) else None


class Outbox:
    """A bounded queue of order changes that conflates each order's older changes when it is full."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.conflated = 0
        self._pending: collections.deque[Pending] | None = None  # made on the first change: most streams idle

    def __len__(self) -> int:
        return len(self._pending) if self._pending else 0

    def put(self, change: FeedItem, event_id: str | None) -> bool:
        """Queue a change; False when, even conflated, more than `capacity` changes wait."""
        if self._pending is None:
            self._pending = collections.deque()
        self._pending.append(Pending(change, event_id))
        if len(self._pending) <= self.capacity:
            return True
        self._conflate()
        return len(self._pending) <= self.capacity

    def take(self) -> Pending | None:
        """The oldest waiting change, or None."""
        if not self._pending:
            return None
        pending = self._pending.popleft()
        if not self._pending:
            self._pending = None  # an idle stream holds no deque
        return pending

    def forget(self, order_id: str) -> None:
        """Drop every waiting change of an erased order."""
        if self._pending and any(pending.change.order_id == order_id for pending in self._pending):
            self._pending = collections.deque(p for p in self._pending if p.change.order_id != order_id) or None

    def _conflate(self) -> None:
        """Keep only each order's newest waiting change, where it is."""
        assert self._pending is not None
        newest = {pending.change.order_id: i for i, pending in enumerate(self._pending)}
        kept = [pending for i, pending in enumerate(self._pending) if newest[pending.change.order_id] == i]
        self.conflated += len(self._pending) - len(kept)
        self._pending = collections.deque(kept)
