"""An `asyncio.Event` that costs less: thousands of them wait at once, one per parked request or live stream."""

from __future__ import annotations

import asyncio
from typing import Any


class LeanEvent(asyncio.Event):
    """An `asyncio.Event` whose waiters are kept in a list (it rarely has more than one)."""

    def __init__(self) -> None:
        super().__init__()
        self._waiters: Any = []  # Event only appends, removes and iterates
