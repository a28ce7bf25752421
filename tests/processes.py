"""Real stategate processes for the integration tests: start, wait until ready, stop."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx

from stategate.app.broker import free_port
from stategate.app.processes import READY_FILE, start_stategate, terminate

START_TIMEOUT = 60.0


def wait_for(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll `condition` until it holds; fail the test with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Stategate:
    """One `stategate node` or `stategate services` child process."""

    def __init__(
        self, command: str, data_dir: Path, env: dict[str, str], *args: str, prefix: Sequence[str] = ()
    ) -> None:
        self.command = command
        self.data_dir = data_dir
        self.env = env
        self.args = args
        self.prefix = list(prefix)
        """A command the process runs through: `ip netns exec NS` for a host of its own (tests/netns.py)."""
        self.log_path = data_dir / f"{command}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Stategate:
        """Start the process (its output goes to a log file under its data dir)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = start_stategate(
                self.command, "--data-dir", str(self.data_dir), *self.args, env=self.env, output=log, prefix=self.prefix
            )
        return self

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`; returns the exit code."""
        process, self.process = self.process, None
        return None if process is None else terminate(process, timeout)

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def services_ready(self) -> bool:
        """Whether a `stategate services` process says it is ready (its ready file exists)."""
        return (self.data_dir / READY_FILE).exists()

    def services_generation(self) -> int | None:
        """The consumer-group generation a ready `stategate services` process names, or None."""
        try:
            return int(json.loads((self.data_dir / READY_FILE).read_text())["generation"])
        except (OSError, ValueError, KeyError):
            return None

    def wait_services_ready(self, timeout: float = START_TIMEOUT) -> None:
        self.wait_while_running(self.services_ready, timeout, "the services to be ready")

    def wait_while_running(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        """Wait for `condition`; fail at once, with the process's log, if the process exits first."""

        def met() -> bool:
            if not self.running:
                raise AssertionError(f"{self.command} exited:\n{self.log()[-3000:]}")
            return condition()

        wait_for(met, timeout, what, interval=0.1)

    def log(self) -> str:
        """What the process has printed so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class Node(Stategate):
    """A gateway node on a free port (of 127.0.0.1, or of `host` through `prefix`: a host of its own)."""

    def __init__(
        self,
        data_dir: Path,
        env: dict[str, str],
        node_id: str = "node-1",
        port: int | None = None,
        host: str = "127.0.0.1",
        prefix: Sequence[str] = (),
    ) -> None:
        self.port = port or free_port()
        self.node_id = node_id
        self.host = host
        where = [] if host == "127.0.0.1" else ["--host", host, "--advertised-url", f"http://{host}:{self.port}"]
        super().__init__("node", data_dir, env, "--port", str(self.port), "--node-id", node_id, *where, prefix=prefix)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start_and_wait(self) -> Node:
        """Start and wait until /readyz answers 200."""
        self.start()
        self.wait_ready()
        return self

    def is_ready(self) -> bool:
        """Whether /readyz answers 200 now."""
        try:
            return httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        self.wait_while_running(self.is_ready, timeout, f"node {self.node_id} to be ready")

    def metric(self, name: str) -> float:
        """The value of an unlabelled metric from /metrics."""
        for line in httpx.get(f"{self.url}/metrics", timeout=5).text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise AssertionError(f"metric {name} not found")


def system_env(bootstrap: str, namespace: str, **extra: str) -> dict[str, str]:
    """The environment of a stategate process in `namespace` on the test broker."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STATEGATE_")}
    env.update(
        {
            "STATEGATE_BROKER": bootstrap,
            "STATEGATE_NAMESPACE": namespace,
            "STATEGATE_LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


def start_nodes(nodes: list[Node], timeout: float = 60) -> None:
    """Start the nodes and wait until each is ready and every one lists all of them, answering."""
    for node in nodes:
        node.start()
    for node in nodes:
        node.wait_ready()

    def see_each_other() -> bool:
        try:
            views = [httpx.get(f"{node.url}/v1/cluster", timeout=5).json() for node in nodes]
        except httpx.HTTPError:
            return False
        return all(
            len(view["nodes"]) == len(nodes) and all(n["answers"] and n["id"] for n in view["nodes"]) for view in views
        )

    wait_for(see_each_other, timeout, "the nodes to see each other", interval=0.2)
