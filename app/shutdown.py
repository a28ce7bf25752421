"""A hard deadline on shutting down, so SIGTERM always ends the process in time.

The graceful path (answer parked requests, stop Faust, commit offsets,
leave the consumer group) normally finishes in a second or two, but it
talks to Kafka: with the broker gone it could wait forever.
"""

from __future__ import annotations

import logging
import os
import threading

log = logging.getLogger("stategate.shutdown")

_started = threading.Event()


def exit_within(seconds: float) -> None:
    """End the process `seconds` from now unless it has exited by then (idempotent)."""
    if _started.is_set():
        return
    _started.set()

    def force_exit() -> None:
        log.error("graceful shutdown took longer than %.0fs; exiting now", seconds)
        logging.shutdown()
        os._exit(1)

    timer = threading.Timer(seconds, force_exit)
    timer.daemon = True
    timer.start()
