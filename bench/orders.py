"""Benchmark of the order flow: `python -m bench.orders`.

In one run on the same broker it measures
  (a) the floor: one raw aiokafka produce→consume hop, p50/p99;
  (b) POST /v1/orders?wait_for=VALIDATED, sequential, p50/p99;
  (c) validated orders/s with 64 concurrent clients, and p50/p99 under that load;
  (d) the node's resident memory;
  (e) CPU ms per validated order during (c), for each process (node, services,
      broker, load generator), from /proc.
With `--backend trivial` the services are replaced by bench/approver.py, which
validates every order at once: what the gateway alone costs.
It prints a table and saves JSON in bench/results/. Not a test: nothing here
passes or fails.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import orjson

from .approver import READY_LINE
from .harness import (
    CpuMeter,
    Deployment,
    RawHttp,
    broker_process,
    closed_loop,
    deployment,
    kafka_hop,
    order_body,
    print_table,
    rss_mb,
    save_result,
    seed_stock,
    summary_ms,
)

# orders -> orders-by-customer -> fraud-checked -> orders-by-product -> inventory-checked -> orders -> view
HOPS_IN_FLOW = 6
HOPS_WITH_TRIVIAL_BACKEND = 2  # orders -> approver -> orders -> view


async def sequential_orders(url: str, count: int, product: str) -> list[float]:
    """POST and wait for VALIDATED, one order at a time."""
    parts = urlsplit(url)
    client = RawHttp(parts.hostname or "127.0.0.1", parts.port or 80)
    latencies: list[float] = []
    try:
        for i in range(count + 20):
            started = time.perf_counter()
            status, body = await client.request("POST", "/v1/orders?wait_for=VALIDATED", order_body(i, product))
            elapsed = time.perf_counter() - started
            assert status == 201 and orjson.loads(body)["state"] == "VALIDATED", (status, body[:200])
            if i >= 20:
                latencies.append(elapsed)
    finally:
        await client.close()
    return latencies


async def concurrent_orders(
    url: str, clients: int, seconds: float, products: list[str]
) -> tuple[int, int, list[float]]:
    """`clients` connections placing orders back to back for `seconds`; counts VALIDATED answers."""

    async def place(client: RawHttp, c: int, i: int) -> bool:
        body_bytes = order_body(c * 1_000_000 + i, products[i % len(products)])
        status, body = await client.request("POST", "/v1/orders?wait_for=VALIDATED&timeout=30", body_bytes)
        return status == 201 and orjson.loads(body)["state"] == "VALIDATED"

    return await closed_loop(url, clients, seconds, place)


@contextmanager
def backend(running: Deployment, bootstrap: str, trivial: bool) -> Iterator[int]:
    """The pid of what validates orders: the deployment's services, or a trivial approver started here."""
    if not trivial:
        assert running.services is not None
        yield running.services.pid
        return
    command = [sys.executable, "-m", "bench.approver"]
    approver = subprocess.Popen(command, stdout=subprocess.PIPE, env=running.environment)
    try:
        assert approver.stdout is not None
        line = approver.stdout.readline().decode()
        assert line.strip() == READY_LINE, f"the approver did not start: {line!r}"
        yield approver.pid
    finally:
        approver.terminate()
        approver.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sequential", type=int, default=500, help="orders in (b)")
    parser.add_argument("--clients", type=int, default=64, help="concurrent clients in (c)")
    parser.add_argument("--seconds", type=float, default=30.0, help="duration of (c)")
    parser.add_argument("--hops", type=int, default=500, help="raw Kafka hops in (a)")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds of load before measuring")
    parser.add_argument("--backend", choices=("services", "trivial"), default="services")
    args = parser.parse_args()
    trivial = args.backend == "trivial"

    with tempfile.TemporaryDirectory(prefix="stategate-bench-") as tmp:
        data = Path(tmp)
        with (
            broker_process(data) as (bootstrap, kafka),
            deployment(bootstrap, data, services=not trivial) as running,
            backend(running, bootstrap, trivial) as backend_pid,
        ):
            url, node = running.nodes[0]
            backend_name = "approver" if trivial else "services"
            pids = {"node": node.pid, backend_name: backend_pid, "load generator": os.getpid()}
            if kafka is not None and kafka.process is not None:
                pids["broker"] = kafka.process.pid
            cpu = CpuMeter(pids)
            products = [f"BENCH-{k}" for k in range(8)]  # spread over the partitions
            for product in products:
                seed_stock(url, product)
            # Warm up the broker's JIT and every connection before measuring anything.
            asyncio.run(kafka_hop(bootstrap, 1000))
            asyncio.run(sequential_orders(url, 300, products[0]))
            asyncio.run(concurrent_orders(url, args.clients, args.warmup, products))
            floor = summary_ms(asyncio.run(kafka_hop(bootstrap, args.hops)))
            sequential = summary_ms(asyncio.run(sequential_orders(url, args.sequential, products[0])))
            started = time.perf_counter()
            cpu.start()
            validated, other, latencies = asyncio.run(concurrent_orders(url, args.clients, args.seconds, products))
            used = cpu.stop()
            elapsed = time.perf_counter() - started
            loaded = summary_ms(latencies)
            rss = rss_mb(node.pid)

    hops = HOPS_WITH_TRIVIAL_BACKEND if trivial else HOPS_IN_FLOW
    target_p50 = round(1.5 * hops * floor["p50_ms"], 2)
    result = {
        "backend": args.backend,
        "floor_kafka_hop": floor,
        "sequential_post_wait_validated": {**sequential, "target_p50_ms": target_p50, "hops": hops},
        "concurrent": {
            "clients": args.clients,
            "seconds": round(elapsed, 1),
            "validated": validated,
            "not_validated": other,
            "validated_per_second": round(validated / elapsed, 1),
            "target_per_second": 2000 if trivial else 1000,
            **loaded,
        },
        "node_rss_mb": rss,
        "cpu_ms_per_validated_order": {
            **{name: round(seconds * 1000 / max(validated, 1), 3) for name, seconds in used.items()},
            "total": round(sum(used.values()) * 1000 / max(validated, 1), 3),
            "target_total": 2.0,
            **({"target_node": 0.4} if trivial else {}),
        },
        "cpu_percent_of_one_core": {name: round(100 * seconds / elapsed, 1) for name, seconds in used.items()},
    }
    saved = save_result("orders", result)
    print_result(result)
    print(f"\nsaved {saved}")


def print_result(r: dict) -> None:  # type: ignore[type-arg]
    f, s, c = r["floor_kafka_hop"], r["sequential_post_wait_validated"], r["concurrent"]
    rows = [
        ("(a) raw Kafka hop (floor)", f"{f['p50_ms']:.2f}", f"{f['p99_ms']:.2f}", "", ""),
        (
            f"(b) POST+wait VALIDATED, sequential ({s['count']})",
            f"{s['p50_ms']:.2f}",
            f"{s['p99_ms']:.2f}",
            "",
            f"p50 ≤ {s['target_p50_ms']:.2f} ms ({s['hops']} hops × floor × 1.5): "
            + ("met" if s["p50_ms"] <= s["target_p50_ms"] else "MISSED"),
        ),
        (
            f"(c) {c['clients']} clients, {c['seconds']:.0f} s",
            f"{c['p50_ms']:.2f}",
            f"{c['p99_ms']:.2f}",
            f"{c['validated_per_second']:.0f}",
            f"≥ {c['target_per_second']} validated/s: "
            + ("met" if c["validated_per_second"] >= c["target_per_second"] else "MISSED"),
        ),
        ("(d) node RSS after the run", "", "", "", f"{r['node_rss_mb']} MiB"),
    ]
    header = ("measurement", "p50 ms", "p99 ms", "orders/s", "target")
    print_table(header, rows)
    cpu, busy = r["cpu_ms_per_validated_order"], r["cpu_percent_of_one_core"]
    print()
    cpu_rows = [(name, f"{cpu[name]:.3f}", f"{busy[name]:.0f} %", "") for name in busy]
    if "target_node" in cpu:
        cpu_rows[0] = (*cpu_rows[0][:3], "≤ 0.4 ms: " + ("met" if cpu["node"] <= cpu["target_node"] else "MISSED"))
    cpu_rows.append(("total", f"{cpu['total']:.3f}", "", "≤ 2 ms: " + ("met" if cpu["total"] <= 2.0 else "MISSED")))
    print_table(("(e) CPU during (c)", "ms per validated order", "of one core", "target"), cpu_rows)


if __name__ == "__main__":
    main()
