"""Benchmark of request/response to a service over Kafka: `python -m bench.services`.

In one run on the same broker it measures
  (a) the floor: one raw aiokafka produce→consume hop, p50/p99;
  (b) POST /v1/services/echo/... round trip, sequential, p50/p99 (two hops:
      request topic → echo service → reply topic → gateway);
  (c) echo requests/s with 64 concurrent clients on one node, p50/p99 under that load.
It prints a table and saves JSON in bench/results/. Not a test: nothing here
passes or fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .harness import RawHttp, broker, gateway, kafka_hop, summary_ms

HOPS = 2
RESULTS = Path(__file__).parent / "results"


async def sequential_echo(url: str, count: int) -> list[float]:
    """One echo request at a time."""
    parts = urlsplit(url)
    client = RawHttp(parts.hostname or "127.0.0.1", parts.port or 80)
    latencies: list[float] = []
    try:
        for i in range(count):
            started = time.perf_counter()
            status, body = await client.request("POST", f"/v1/services/echo/s{i}", b"ping")
            latencies.append(time.perf_counter() - started)
            assert status == 200, (status, body[:200])
    finally:
        await client.close()
    return latencies


async def concurrent_echo(url: str, clients: int, seconds: float) -> tuple[int, int, list[float]]:
    """`clients` connections sending echo requests back to back for `seconds`."""
    parts = urlsplit(url)
    deadline = time.perf_counter() + seconds
    latencies: list[float] = []
    answered = failed = 0

    async def client_loop(c: int) -> None:
        nonlocal answered, failed
        client = RawHttp(parts.hostname or "127.0.0.1", parts.port or 80)
        i = 0
        try:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                status, _ = await client.request("POST", f"/v1/services/echo/c{c}-{i}", b"ping")
                latencies.append(time.perf_counter() - started)
                answered += status == 200
                failed += status != 200
                i += 1
        finally:
            await client.close()

    await asyncio.gather(*(client_loop(c) for c in range(clients)))
    return answered, failed, latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sequential", type=int, default=500, help="requests in (b)")
    parser.add_argument("--clients", type=int, default=64, help="concurrent clients in (c)")
    parser.add_argument("--seconds", type=float, default=20.0, help="duration of (c)")
    parser.add_argument("--hops", type=int, default=500, help="raw Kafka hops in (a)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="stategate-bench-") as tmp:
        data = Path(tmp)
        with broker(data) as bootstrap, gateway(bootstrap, data) as (url, _node):
            asyncio.run(kafka_hop(bootstrap, 1000))  # warm up the broker and every connection
            asyncio.run(sequential_echo(url, 200))
            asyncio.run(concurrent_echo(url, args.clients, 5))
            floor = summary_ms(asyncio.run(kafka_hop(bootstrap, args.hops)))
            sequential = summary_ms(asyncio.run(sequential_echo(url, args.sequential)))
            started = time.perf_counter()
            answered, failed, latencies = asyncio.run(concurrent_echo(url, args.clients, args.seconds))
            elapsed = time.perf_counter() - started

    target_p50 = round(1.5 * HOPS * floor["p50_ms"], 2)
    result: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
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
    }
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (RESULTS / f"services-{stamp}.json").write_text(json.dumps(result, indent=2))
    f, s, c = result["floor_kafka_hop"], result["sequential_echo"], result["concurrent"]
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
    ]
    header = ("measurement", "p50 ms", "p99 ms", "requests/s", "target")
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(5)]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)))
    print(f"\nsaved bench/results/services-{stamp}.json")


if __name__ == "__main__":
    main()
