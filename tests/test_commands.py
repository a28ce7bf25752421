"""The `stategate kafka` and `stategate dev` commands, run as a user runs them."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from stategate.app.broker import free_port
from stategate.app.processes import start_stategate, terminate

from .processes import wait_for
from .test_kafka_cluster import consecutive_free_ports, topic_description


def start(args: list[str], tmp_path: Path) -> tuple[subprocess.Popen[bytes], Path]:
    log = tmp_path / "out.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("STATEGATE_")}
    with open(log, "wb") as out:
        process = start_stategate(*args, env=env, output=out)
    return process, log


def processes_mentioning(text: str) -> list[int]:
    """Pids of live processes whose command line contains `text`."""
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if text in cmdline.read_bytes().decode(errors="ignore"):
                pids.append(int(cmdline.parent.name))
        except OSError:
            continue
    return pids


def stop(process: subprocess.Popen[bytes], timeout: float = 30) -> float:
    """SIGTERM; how long the process took to exit."""
    started = time.monotonic()
    terminate(process, timeout)
    return time.monotonic() - started


def test_stategate_kafka_prints_ready_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    process, log = start(["kafka", "--port", str(port), "--data-dir", str(tmp_path / "kafka")], tmp_path)
    try:
        wait_for(lambda: "ready" in log.read_text(), 90, "the ready line", interval=0.2)
        assert f"127.0.0.1:{port}" in log.read_text()
        assert processes_mentioning(str(tmp_path)), "no broker process found"
    finally:
        assert stop(process) < 30
    assert "stopped" in log.read_text()
    assert not processes_mentioning(str(tmp_path)), "the broker outlived the command"


def two_free_ports() -> int:
    """A port p such that p and p + 1 are both free."""
    while True:
        port = free_port()
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port + 1)) != 0:
                return port


@pytest.mark.parametrize("brokers", [1, 3])
def test_stategate_dev_runs_two_nodes_and_places_a_validated_order(tmp_path: Path, brokers: int) -> None:
    port, kafka_port = two_free_ports(), consecutive_free_ports(brokers)
    args = ["dev", "--port", str(port), "--kafka-port", str(kafka_port), "--data-dir", str(tmp_path / "dev")]
    process, log = start([*args, "--brokers", str(brokers)], tmp_path)
    try:
        wait_for(lambda: "stategate dev is ready" in log.read_text(), 120, "stategate dev to be ready", interval=0.2)
        response = httpx.post(
            f"http://127.0.0.1:{port}/v1/orders?wait_for=VALIDATED&timeout=30",
            content=b'{"customer_id":"c1","product":"JUMPERS","quantity":2,"price":9.5}',
            timeout=30,
        )
        assert response.status_code == 201, response.text
        assert response.json()["state"] == "VALIDATED"
        cluster = httpx.get(f"http://127.0.0.1:{port + 1}/v1/cluster", timeout=10).json()
        assert cluster["self"] == "node-2"
        assert sorted(n["id"] for n in cluster["nodes"]) == ["node-1", "node-2"]
        bootstrap = ",".join(f"127.0.0.1:{kafka_port + i}" for i in range(brokers))
        assert f"Kafka      {bootstrap}\n" in log.read_text()
        configs, partitions = asyncio.run(topic_description(bootstrap, "orders"))
        assert all(len(p["replicas"]) == brokers for p in partitions)  # type: ignore[arg-type]
        assert configs["min.insync.replicas"] == ("2" if brokers == 3 else "1")
    finally:
        assert stop(process, timeout=60) < 60
    assert not processes_mentioning(str(tmp_path)), "a child of stategate dev outlived it"
    lines = log.read_text().splitlines()
    assert [line for line in lines if " ERROR " in line] == []  # a fresh broker's coordinator election is normal
    assert [line for line in lines if "/healthz" in line or "HTTP Request:" in line] == []  # peer probes
    assert len(lines) < 100, "\n".join(lines)
