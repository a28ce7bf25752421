"""Benchmark of request/response to a service over Kafka: `python -m bench.services`.

In one run on the same broker it measures
  (a) the floor: one raw aiokafka produce→consume hop, p50/p99;
  (b) POST /v1/services/echo/... round trip, sequential, p50/p99 (two hops:
      request topic → echo service → reply topic → gateway);
  (c) echo requests/s with 64 concurrent clients on one node, p50/p99 under that load;
  (d) (b) again through an echo service written with plain aiokafka (no Faust), which
      tells the gateway's share of (b) from the Faust agent's.
It prints a table and saves JSON in bench/results/. Not a test: nothing here
passes or fails.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from .harness import (
    CpuMeter,
    RawHttp,
    broker_process,
    closed_loop,
    deployment,
    kafka_hop,
    print_table,
    save_result,
    summary_ms,
)

HOPS = 2


async def sequential_echo(url: str, count: int, service: str = "echo") -> list[float]:
    """One echo request at a time."""
    parts = urlsplit(url)
    client = RawHttp(parts.hostname or "127.0.0.1", parts.port or 80)
    latencies: list[float] = []
    try:
        for i in range(count):
            started = time.perf_counter()
            status, body = await client.request("POST", f"/v1/services/{service}/s{i}", b"ping")
            latencies.append(time.perf_counter() - started)
            assert status == 200, (status, body[:200])
    finally:
        await client.close()
    return latencies


async def concurrent_echo(url: str, clients: int, seconds: float) -> tuple[int, int, list[float]]:
    """`clients` connections sending echo requests back to back for `seconds`."""

    async def echo(client: RawHttp, c: int, i: int) -> bool:
        status, _ = await client.request("POST", f"/v1/services/echo/c{c}-{i}", b"ping")
        return status == 200

    return await closed_loop(url, clients, seconds, echo)


async def plain_echo_round_trips(url: str, bootstrap: str, topic: str, count: int) -> list[float]:
    """(b) through an echo service written with plain aiokafka, running in this process."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=f"{topic}-echo", auto_offset_reset="latest"
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await consumer.start()
    await producer.start()

    async def serve() -> None:
        async for request in consumer:
            headers = dict(request.headers)
            await producer.send(
                headers["reply-to"].decode(),
                request.value,
                key=headers["correlation-id"],
                headers=[(":status", b"200"), ("content-type", b"text/plain")],
            )

    serving = asyncio.create_task(serve())
    deadline = time.monotonic() + 30
    while not consumer.assignment():  # requests written before the group assigns the topic would be skipped
        assert time.monotonic() < deadline, "the plain echo consumer got no partitions"
        await asyncio.sleep(0.05)
    for tp in consumer.assignment():
        await consumer.position(tp)  # "latest" is resolved now, not after the first requests
    try:
        await sequential_echo(url, 50, service="plain-echo")  # warm up
        return await sequential_echo(url, count, service="plain-echo")
    finally:
        serving.cancel()
        await consumer.stop()
        await producer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sequential", type=int, default=500, help="requests in (b)")
    parser.add_argument("--clients", type=int, default=64, help="concurrent clients in (c)")
    parser.add_argument("--seconds", type=float, default=20.0, help="duration of (c)")
    parser.add_argument("--hops", type=int, default=500, help="raw Kafka hops in (a)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="stategate-bench-") as tmp:
        data = Path(tmp)
        plain_topic = f"bench-plain-echo-{uuid.uuid4().hex[:6]}"
        with (
            broker_process(data) as (bootstrap, kafka),
            deployment(bootstrap, data, env={"STATEGATE_SERVICES": f"plain-echo={plain_topic}"}) as running,
        ):
            url, node = running.nodes[0]
            assert running.services is not None
            pids = {"node": node.pid, "services": running.services.pid, "load generator": os.getpid()}
            if kafka is not None and kafka.process is not None:
                pids["broker"] = kafka.process.pid
            cpu = CpuMeter(pids)
            asyncio.run(kafka_hop(bootstrap, 1000))  # warm up the broker and every connection
            asyncio.run(sequential_echo(url, 200))
            asyncio.run(concurrent_echo(url, args.clients, 5))
            floor = summary_ms(asyncio.run(kafka_hop(bootstrap, args.hops)))
            sequential = summary_ms(asyncio.run(sequential_echo(url, args.sequential)))
            started = time.perf_counter()
            cpu.start()
            answered, failed, latencies = asyncio.run(concurrent_echo(url, args.clients, args.seconds))
            used = cpu.stop()
            elapsed = time.perf_counter() - started
            plain = summary_ms(asyncio.run(plain_echo_round_trips(url, bootstrap, plain_topic, args.sequential)))

    target_p50 = round(1.5 * HOPS * floor["p50_ms"], 2)
    result: dict[str, Any] = {
        "floor_kafka_hop": floor,
        "sequential_echo": {**sequential, "target_p50_ms": target_p50, "hops": HOPS},
        "concurrent": {
            "clients": args.clients,
            "seconds": round(elapsed, 1),
            "answered": answered,
            "failed": failed,
            "requests_per_second": round(answered / elapsed, 1),
            "target_per_second": 2000,
            **summary_ms(latencies),
        },
        "sequential_plain_aiokafka_echo": plain,
        "cpu_ms_per_request": {
            **{name: round(seconds * 1000 / max(answered, 1), 3) for name, seconds in used.items()},
            "total": round(sum(used.values()) * 1000 / max(answered, 1), 3),
        },
        "cpu_percent_of_one_core": {name: round(100 * seconds / elapsed, 1) for name, seconds in used.items()},
    }
    saved = save_result("services", result)
    f, s, c, p = result["floor_kafka_hop"], result["sequential_echo"], result["concurrent"], plain
    rows = [
        ("(a) raw Kafka hop (floor)", f"{f['p50_ms']:.2f}", f"{f['p99_ms']:.2f}", "", ""),
        (
            f"(b) echo round trip, sequential ({s['count']})",
            f"{s['p50_ms']:.2f}",
            f"{s['p99_ms']:.2f}",
            "",
            f"p50 ≤ {target_p50:.2f} ms (2 hops × floor × 1.5): " + ("met" if s["p50_ms"] <= target_p50 else "MISSED"),
        ),
        (
            f"(c) {c['clients']} clients, {c['seconds']:.0f} s",
            f"{c['p50_ms']:.2f}",
            f"{c['p99_ms']:.2f}",
            f"{c['requests_per_second']:.0f}",
            "≥ 2000 requests/s: " + ("met" if c["requests_per_second"] >= 2000 else "MISSED"),
        ),
        ("(d) (b) through a plain aiokafka echo", f"{p['p50_ms']:.2f}", f"{p['p99_ms']:.2f}", "", ""),
    ]
    header = ("measurement", "p50 ms", "p99 ms", "requests/s", "target")
    print_table(header, rows)
    per_request, busy = result["cpu_ms_per_request"], result["cpu_percent_of_one_core"]
    cpu_rows = [(name, f"{per_request[name]:.3f}", f"{busy[name]:.0f} %") for name in busy]
    cpu_rows.append(("total", f"{per_request['total']:.3f}", ""))
    print()
    print_table(("CPU during (c)", "ms per request", "of one core"), cpu_rows)
    print(f"\nsaved {saved}")


if __name__ == "__main__":
    main()
