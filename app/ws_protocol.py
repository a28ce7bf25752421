"""uvicorn's wsproto WebSocket protocol with lighter objects for each socket.

A node may hold ten thousand open WebSockets. uvicorn's sans-I/O protocol
keeps no task per socket (the `websockets` one keeps three), but each
socket still carries an `asyncio.Queue` of incoming events and an
`asyncio.Event` for flow control, whose waiter queues are empty
`collections.deque`s of 760 bytes each. Lists do the same job, as in
app/http_protocol.py. Everything else is uvicorn's own code, unchanged.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.websockets.wsproto_impl import WSProtocol

from .lean_event import LeanEvent


class _Waiters(list[Any]):
    """A queue's waiting futures, as a list with the deque methods asyncio.Queue calls."""

    def popleft(self) -> Any:
        return self.pop(0)


class LeanQueue(asyncio.Queue[Any]):
    """An `asyncio.Queue` whose getters and putters are lists: at most one reader waits on a socket's queue."""

    def __init__(self) -> None:
        super().__init__()
        self._getters: Any = _Waiters()
        self._putters: Any = _Waiters()


class LeanWSProtocol(WSProtocol):
    """`WSProtocol` with a `LeanQueue` and a `LeanEvent`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = LeanQueue()
        self.writable = LeanEvent()
        self.writable.set()
