"""Event ids of live streams: how far into each partition of `orders` a client has been brought.

An id is `partition:offset` pairs joined by commas (`3:1050,7:200`). It
promises: every change of the stream's orders at or below those offsets has
been sent, or a newer version of that order has been queued behind it. So a
client that reconnects with `Last-Event-ID`, to any node, is sent exactly
the changes after those offsets (read from the feed's memory or from
Kafka). Offsets are the same on every node, which is why any node can
resume any stream. Clients treat the id as opaque.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

MAX_EVENT_ID_LENGTH = 4096
_PAIR = re.compile(r"(\d{1,9}):(-1|\d{1,19})")


def encode_event_id(positions: Mapping[int, int]) -> str:
    """The id for these positions: partitions in ascending order."""
    return ",".join(f"{partition}:{offset}" for partition, offset in sorted(positions.items()))


def decode_event_id(text: str | None, partitions: int) -> dict[int, int] | None:
    """The positions an id names, or None for no id or one this cluster did not make.

    A partition beyond `partitions`, a negative number or anything that is
    not `int:int` makes the whole id unusable: the client then gets fresh
    snapshots, never an error it would retry for ever.
    """
    if not text or len(text) > MAX_EVENT_ID_LENGTH:
        return None
    positions: dict[int, int] = {}
    for pair in text.split(","):
        match = _PAIR.fullmatch(pair.strip())
        if match is None:
            return None
        p, o = int(match[1]), int(match[2])
        if p >= partitions or p in positions:
            return None
        positions[p] = o
    return positions
