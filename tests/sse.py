"""A Server-Sent Events reader for tests: events from an httpx streaming response, parsed by the spec's rules."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson


@dataclass
class Event:
    """One dispatched event (comments are counted, not dispatched)."""

    event: str = "message"
    id: str | None = None
    data_lines: list[str] = field(default_factory=list)
    retry: int | None = None

    @property
    def data(self) -> str:
        return "\n".join(self.data_lines)

    def json(self) -> Any:
        return orjson.loads(self.data)


@dataclass
class Reader:
    """Reads events from a streaming response; remembers the last event id and counts comment lines."""

    response: httpx.Response
    last_id: str | None = None
    comments: int = 0

    def __iter__(self) -> Iterator[Event]:
        current = Event()
        for line in self.response.iter_lines():
            if line == "":
                if current.data_lines or current.event != "message":
                    if current.id is not None:
                        self.last_id = current.id
                    yield current
                current = Event()
                continue
            if line.startswith(":"):
                self.comments += 1
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "event":
                current.event = value
            elif name == "data":
                current.data_lines.append(value)
            elif name == "id":
                current.id = value
            elif name == "retry" and value.isdigit():
                current.retry = int(value)
