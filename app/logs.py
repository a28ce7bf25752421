"""Structured logging: one line per event, `key=value` fields, the node id on every line.

Quiet by default: one line per thing that matters. The HTTP clients' request
lines (peer probes every second), uvicorn's access log and the Kafka
clients' INFO chatter stay below the default level.
"""

from __future__ import annotations

import logging
import sys
import time

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class KeyValueFormatter(logging.Formatter):
    """`time level logger message key=value ...`, with every `extra` field appended."""

    def __init__(self, node_id: str) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")
        self.node_id = node_id

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = {"node": self.node_id}
        fields.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
        return line + "".join(f" {k}={v}" for k, v in fields.items())


class RepeatFilter(logging.Filter):
    """Let the same warning from a Kafka client through once per `window` seconds.

    With the broker away, aiokafka logs a connection error every few
    milliseconds; one line per window, with the count of those dropped, says
    the same thing.
    """

    def __init__(self, window: float = 10.0, prefixes: tuple[str, ...] = ("aiokafka", "faust", "mode")) -> None:
        super().__init__()
        self.window = window
        self.prefixes = prefixes
        self._last: dict[tuple[str, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or not record.name.startswith(self.prefixes):
            return True
        key = (record.name, str(record.msg))
        seen = self._last.get(key)
        if seen is not None and record.created - seen[0] < self.window:
            self._last[key] = (seen[0], seen[1] + 1)
            return False
        if seen is not None and seen[1]:
            record.repeated = seen[1]
        if len(self._last) > 1000:
            self._last.clear()
        self._last[key] = (record.created, 0)
        return True


class StartupTransients(logging.Filter):
    """Drop the retriable errors aiokafka logs while a fresh broker elects its group coordinators.

    A process that starts with (or just after) its broker logs
    `GroupCoordinatorNotAvailableError` at ERROR once or twice and then
    joins, and a topic another process is creating right now is "not found";
    that is normal. After `grace` seconds the same error passes,
    because then it means the coordinator is really away.
    """

    MESSAGES = frozenset({"Group Coordinator Request failed: %s", "Topic %s not found in cluster metadata"})

    def __init__(self, grace: float = 30.0) -> None:
        super().__init__()
        self.until = time.time() + grace

    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and record.msg in self.MESSAGES and record.created < self.until)


def configure_logging(node_id: str, level: str = "INFO", kafka_level: str = "WARNING") -> None:
    """Log to stderr at `level`; Kafka client chatter only from `kafka_level` up.

    Set explicitly because Faust's worker would otherwise set the root logger
    to DEBUG, and building every aiokafka debug record costs real CPU.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(KeyValueFormatter(node_id))
    handler.addFilter(RepeatFilter())
    handler.addFilter(StartupTransients())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # The project's Faust subclasses log through their own modules' loggers: Faust's steps too.
    faust_parts = ("faust_app", "faust_transport", "faust_recovery")
    for noisy in ("aiokafka", "faust", "mode", *(f"stategate.streams.{part}" for part in faust_parts)):
        logging.getLogger(noisy).setLevel(kafka_level.upper())
    # A line per request (peers probe every second), and uvicorn's start-up steps ("node started" says it).
    for chatty in ("uvicorn.access", "uvicorn.error", "httpx", "httpcore"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
