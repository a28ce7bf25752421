"""Stopping child processes: SIGTERM first, SIGKILL when they do not stop in time."""

from __future__ import annotations

import signal
import subprocess


def terminate(process: subprocess.Popen[bytes], timeout: float) -> int:
    """Ask `process` to stop, wait up to `timeout` seconds, then kill it; returns its exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode
