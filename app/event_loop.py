"""Run a process's main coroutine on uvloop when it is installed, else on asyncio's loop."""

from __future__ import annotations

import asyncio
from typing import Any


def run_loop(main: Any) -> None:
    """Run a coroutine on uvloop when it is installed, else on asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main)
