"""Starting the system under measurement, and measuring: a raw HTTP client, percentiles, RSS."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import statistics
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from stategate.app.broker import LocalKafka, free_port
from stategate.app.dev import put_stock
from stategate.app.processes import start_stategate, terminate, wait_until_ready, wait_until_services_ready
from stategate.streams.admin import TopicSpec, ensure_topics
from stategate.streams.kafka_settings import KafkaSettings


@contextmanager
def broker(data_dir: Path) -> Iterator[str]:
    """`KAFKA_BOOTSTRAP_SERVERS`, or a local broker for the run."""
    with broker_process(data_dir) as (bootstrap, _):
        yield bootstrap


@contextmanager
def broker_process(data_dir: Path) -> Iterator[tuple[str, LocalKafka | None]]:
    """The broker's address, and the broker itself when the run started it (None for `KAFKA_BOOTSTRAP_SERVERS`)."""
    existing = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if existing:
        yield existing, None
        return
    with LocalKafka(data_dir / "kafka") as kafka:
        yield kafka.bootstrap, kafka


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds used by named processes between `start()` and `stop()`."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.before: dict[str, float] = {}
        self.used: dict[str, float] = {}

    def start(self) -> None:
        self.before = {name: cpu_seconds(pid) for name, pid in self.pids.items()}

    def stop(self) -> dict[str, float]:
        self.used = {name: cpu_seconds(pid) - self.before[name] for name, pid in self.pids.items()}
        return self.used


@dataclass
class Deployment:
    """The processes of one benchmark run, in a namespace of their own."""

    namespace: str
    nodes: list[tuple[str, subprocess.Popen[bytes]]]
    environment: dict[str, str]
    services: subprocess.Popen[bytes] | None = None


@contextmanager
def deployment(
    bootstrap: str, data_dir: Path, nodes: int = 1, services: bool = True, env: dict[str, str] | None = None
) -> Iterator[Deployment]:
    """Gateway nodes (and the services) in a fresh namespace, stopped on exit."""
    namespace = f"bench-{uuid.uuid4().hex[:6]}"
    environment = {
        **os.environ,
        "STATEGATE_BROKER": bootstrap,
        "STATEGATE_NAMESPACE": namespace,
        "STATEGATE_LOG_LEVEL": "WARNING",
        **(env or {}),
    }
    data_dir.mkdir(parents=True, exist_ok=True)
    logs = open(data_dir / "processes.log", "ab")
    processes: list[subprocess.Popen[bytes]] = []

    def start(*args: str) -> subprocess.Popen[bytes]:
        process = start_stategate(*args, env=environment, output=logs)
        processes.append(process)
        return process

    try:
        services_process = start("services", "--data-dir", str(data_dir / "services")) if services else None
        started = []
        for i in range(1, nodes + 1):
            port = free_port()
            node = start(
                "node", "--port", str(port), "--node-id", f"bench-{i}", "--data-dir", str(data_dir / f"node-{i}")
            )
            started.append((f"http://127.0.0.1:{port}", node))
        for url, node in started:
            wait_until_ready(url, node)
        if services_process is not None:
            wait_until_services_ready(data_dir / "services", services_process)
        yield Deployment(namespace, started, environment, services_process)
    finally:
        for process in reversed(processes):
            terminate(process, 30)
        logs.close()


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0–100) of `values`, nearest-rank."""
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def summary_ms(seconds: list[float]) -> dict[str, float]:
    """p50, p99 and mean of latencies, in milliseconds."""
    return {
        "count": len(seconds),
        "p50_ms": round(percentile(seconds, 50) * 1000, 2),
        "p99_ms": round(percentile(seconds, 99) * 1000, 2),
        "mean_ms": round(statistics.fmean(seconds) * 1000, 2),
    }


def rss_mb(pid: int) -> float:
    """Resident memory of a process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


async def kafka_hop(bootstrap: str, count: int, replicas: int | None = None) -> list[float]:
    """The floor: one produce→consume hop with plain aiokafka, sequential, acks=all.

    The topic has `replicas` replicas (and their majority as min.insync.replicas);
    by default the broker's own default.
    """
    topic = f"bench-hop-{uuid.uuid4().hex[:6]}"
    if replicas is not None:
        settings = KafkaSettings(broker=bootstrap, replication_factor=replicas, node_id="bench")
        await ensure_topics(settings, [TopicSpec(topic, 1)])
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    await producer.send_and_wait(topic, b"warm-up")  # creates the topic
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    partition = TopicPartition(topic, 0)
    consumer.assign([partition])
    await consumer.seek_to_end(partition)
    hops: list[float] = []
    try:
        for i in range(count + 20):
            started = time.perf_counter()
            await producer.send_and_wait(topic, str(i).encode(), partition=0)
            await consumer.getone()
            if i >= 20:  # after warm-up
                hops.append(time.perf_counter() - started)
    finally:
        await consumer.stop()
        await producer.stop()
    return hops


class RawHttp:
    """A minimal keep-alive HTTP/1.1 client on one connection: cheap enough to load the server."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        status_line = await self.reader.readline()
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        return int(status_line.split()[1]), await self.reader.readexactly(length)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def order_body(i: int, product: str) -> bytes:
    """A small order that passes every check (a customer of its own, so no fraud limit)."""
    return orjson.dumps({"customer_id": f"bench-{i}", "product": product, "quantity": 1, "price": 1.0})


def seed_stock(url: str, product: str) -> None:
    """Enough stock that no benchmark order fails the inventory check."""
    put_stock(url, product, 1_000_000_000)


def print_table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> None:
    """Rows under a header, in aligned columns."""
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)))


Exchange = Callable[[RawHttp, int, int], Awaitable[bool]]
"""One request of client `c`, its `i`-th: sends it, answers whether it succeeded."""


async def closed_loop(url: str, clients: int, seconds: float, exchange: Exchange) -> tuple[int, int, list[float]]:
    """`clients` keep-alive connections sending requests back to back for `seconds`.

    Returns how many succeeded, how many did not, and every request's latency.
    """
    parts = urlsplit(url)
    deadline = time.perf_counter() + seconds
    latencies: list[float] = []
    succeeded = failed = 0

    async def client_loop(c: int) -> None:
        nonlocal succeeded, failed
        client = RawHttp(parts.hostname or "127.0.0.1", parts.port or 80)
        i = 0
        try:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                ok = await exchange(client, c, i)
                latencies.append(time.perf_counter() - started)
                succeeded += ok
                failed += not ok
                i += 1
        finally:
            await client.close()

    await asyncio.gather(*(client_loop(c) for c in range(clients)))
    return succeeded, failed, latencies


RESULTS = Path(__file__).parent / "results"


def save_result(name: str, result: dict[str, Any]) -> str:
    """Write `result`, with when and on what it ran, to bench/results/NAME-STAMP.json; returns that path."""
    RESULTS.mkdir(exist_ok=True)
    now = datetime.now(UTC)
    stamped = {
        "when": now.isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        **result,
    }
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    (RESULTS / f"{name}-{stamp}.json").write_text(json.dumps(stamped, indent=2))
    return f"bench/results/{name}-{stamp}.json"
