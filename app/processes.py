"""Child `stategate` processes: start one, wait until it is ready, stop it.

Written once for `stategate dev`, the benchmarks and the integration tests.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import IO

READY_FILE = "services.ready"
"""What `stategate services` writes into its data dir once it is ready."""

START_TIMEOUT_SECONDS = 90.0


def stategate_argv(*args: str) -> list[str]:
    """The command line that runs `stategate ARGS` with this Python."""
    return [sys.executable, "-m", "stategate", *args]


def start_stategate(
    *args: str, env: dict[str, str], output: IO[bytes] | None = None, prefix: Sequence[str] = ()
) -> subprocess.Popen[bytes]:
    """Start `stategate ARGS` as a child process; its output goes to `output` (default: ours).

    `prefix` runs it through another command (`ip netns exec NS` in tests).
    """
    stderr = None if output is None else subprocess.STDOUT
    return subprocess.Popen([*prefix, *stategate_argv(*args)], env=env, stdout=output, stderr=stderr)


def wait_until_ready(url: str, process: subprocess.Popen[bytes], timeout: float = START_TIMEOUT_SECONDS) -> None:
    """Wait until a node's `url`/readyz answers 200, or fail if the process dies or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the process exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)  # polling a child process's start-up
    raise RuntimeError(f"{url} was not ready within {timeout:.0f}s")


def wait_until_services_ready(
    data_dir: Path, process: subprocess.Popen[bytes], timeout: float = START_TIMEOUT_SECONDS
) -> None:
    """Wait until `stategate services` (its data dir `data_dir`) writes its ready file."""
    deadline = time.monotonic() + timeout
    while not (data_dir / READY_FILE).exists():
        if process.poll() is not None:
            raise RuntimeError(f"stategate services exited with {process.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"stategate services was not ready within {timeout:.0f}s")
        time.sleep(0.2)  # polling a child process's start-up


def terminate(process: subprocess.Popen[bytes], timeout: float) -> int:
    """Ask `process` to stop (SIGTERM), wait up to `timeout` seconds, then kill it; returns its exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode
