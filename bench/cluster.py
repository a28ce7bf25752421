"""Benchmark of a cluster of gateway nodes: `python -m bench.cluster`.

In one run on the same broker it measures
  (a) the floor: one raw aiokafka produce→consume hop;
  (b) GET of an order straight from its owner versus through a non-owner following the 307;
  (c) failover: SIGKILL a node, time until the survivor serves every key the dead node owned;
  (d) 10,000 parked long-polls on one node: the node's extra RSS; the wake-up latency of one
      request among them, from Kafka's acknowledgement of the order's new version to the
      response; and how long answering all of them at once takes.
It prints a table and saves JSON in bench/results/. Not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
from aiokafka import AIOKafkaProducer

from .harness import RawHttp, broker, deployment, kafka_hop, print_table, rss_mb, save_result, summary_ms

ORDER = {"customer_id": "bench", "product": "BENCH", "quantity": 1, "price": 1.0}


def wait_two_members(urls: list[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            views = [httpx.get(f"{u}/v1/cluster", timeout=5).json() for u in urls]
            ready = all(httpx.get(f"{u}/readyz", timeout=5).status_code == 200 for u in urls)
            answering = all(n["answers"] for v in views for n in v["nodes"])
            if ready and answering and all(len(v["nodes"]) == len(urls) for v in views):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the cluster did not settle")


def redirect_costs(owner: str, other: str, count: int) -> tuple[list[float], list[float]]:
    """Sequential GETs of the owner's orders: straight to the owner, and through the other node."""
    with httpx.Client(timeout=10) as client:
        ids = [client.post(f"{owner}/v1/orders", json=ORDER).json()["id"] for _ in range(count)]
        for order_id in ids:  # every order is in the table before timing starts
            client.get(f"{owner}/v1/orders/{order_id}", params={"wait_for": "CREATED"})
    direct, via = [], []
    with httpx.Client(timeout=10, follow_redirects=True) as client:
        for order_id in ids * 2:
            started = time.perf_counter()
            assert client.get(f"{owner}/v1/orders/{order_id}").status_code == 200
            direct.append(time.perf_counter() - started)
            started = time.perf_counter()
            response = client.get(f"{other}/v1/orders/{order_id}")
            assert response.status_code == 200 and response.history[0].status_code == 307
            via.append(time.perf_counter() - started)
    return direct[count:], via[count:]


def failover_seconds(survivor: str, victim: str, process: object, count: int) -> float:
    """SIGKILL the victim; seconds until the survivor serves every order the victim owned."""
    with httpx.Client(timeout=10) as client:
        ids = [client.post(f"{victim}/v1/orders", json=ORDER).json()["id"] for _ in range(count)]
        for order_id in ids:
            client.get(f"{victim}/v1/orders/{order_id}", params={"wait_for": "CREATED"})
        process.kill()  # type: ignore[attr-defined]
        killed = time.perf_counter()
        pending = set(ids)
        while pending and time.perf_counter() - killed < 120:
            for order_id in list(pending):
                try:
                    if client.get(f"{survivor}/v1/orders/{order_id}", timeout=2).status_code == 200:
                        pending.discard(order_id)
                except httpx.HTTPError:
                    pass
            time.sleep(0.05)
        if pending:
            raise RuntimeError(f"{len(pending)} orders were never served by the survivor")
        return time.perf_counter() - killed


async def parked_long_polls(url: str, pid: int, bootstrap: str, topic: str, total: int, probes: int) -> dict[str, Any]:
    """Park `total` long-polls; wake `probes` of them one by one, then all the others at once.

    The probes measure the wake-up path while the registry holds ~`total`
    waiters: from Kafka's acknowledgement of an order's next version to
    the response (so one Kafka hop and the table agent are included; the
    floor above is that hop alone). The mass wake-up measures how long the
    node takes to answer everyone when all their orders change together.
    """
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    background = 100
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        placed = [(await client.post("/v1/orders", json=ORDER)).json() for _ in range(background + probes)]
        for order in placed:
            await client.get(f"/v1/orders/{order['id']}", params={"wait_for": "CREATED"})
    crowd, probe_orders = placed[:background], placed[background:]
    baseline = rss_mb(pid)

    async def poll(raw: RawHttp, order_id: str) -> float:
        status, _ = await raw.request("GET", f"/v1/orders/{order_id}?wait_for=VALIDATED&timeout=60")
        assert status == 200, status
        return time.perf_counter()

    crowd_clients = [RawHttp(host, port) for _ in range(total - probes)]
    probe_clients = [RawHttp(host, port) for _ in range(probes)]
    crowd_tasks = []
    for i, raw in enumerate(crowd_clients):
        crowd_tasks.append(asyncio.create_task(poll(raw, crowd[i % background]["id"])))
        if i % 500 == 499:
            await asyncio.sleep(0.05)  # let the listen backlog drain
    probe_tasks = [asyncio.create_task(poll(raw, o["id"])) for raw, o in zip(probe_clients, probe_orders, strict=True)]
    await wait_parked(url, total)
    parked_rss = rss_mb(pid)

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()

    async def next_version(order: dict[str, Any]) -> float:
        validated = {**order, "state": "VALIDATED", "version": order["version"] + 1}
        await producer.send_and_wait(topic, key=order["id"].encode(), value=orjson.dumps(validated))
        return time.perf_counter()

    try:
        single = []
        for order, task in zip(probe_orders, probe_tasks, strict=True):
            acked = await next_version(order)
            single.append(await task - acked)
        started = time.perf_counter()
        for order in crowd:
            await next_version(order)
        answered = await asyncio.gather(*crowd_tasks)
        mass_seconds = max(answered) - started
    finally:
        await producer.stop()
        for raw in crowd_clients + probe_clients:
            await raw.close()
    return {
        "parked": total,
        "rss_before_mb": baseline,
        "rss_parked_mb": parked_rss,
        "extra_rss_mb": round(parked_rss - baseline, 1),
        "extra_kib_per_request": round((parked_rss - baseline) * 1024 / total, 1),
        "wake_up_one_at_a_time": summary_ms(single),
        "wake_up_all_at_once_seconds": round(mass_seconds, 2),
    }


async def wait_parked(url: str, count: int, timeout: float = 120) -> None:
    """Until the node reports `count` parked requests."""
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        deadline = time.monotonic() + timeout
        while True:
            metrics = (await client.get("/metrics")).text
            parked = next(
                float(line.split()[1]) for line in metrics.splitlines() if line.startswith("stategate_parked_requests ")
            )
            if parked >= count:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {parked:.0f} requests parked")
            await asyncio.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gets", type=int, default=300, help="orders read in (b)")
    parser.add_argument("--failover-orders", type=int, default=200, help="orders of the killed node in (c)")
    parser.add_argument("--parked", type=int, default=10_000, help="parked long-polls in (d)")
    parser.add_argument("--probes", type=int, default=100, help="of which woken one at a time in (d)")
    parser.add_argument("--parked-only", action="store_true", help="measure (d) alone, print its JSON")
    args = parser.parse_args()
    if args.parked_only:
        with tempfile.TemporaryDirectory(prefix="stategate-bench-") as tmp, broker(Path(tmp)) as bootstrap:
            with deployment(bootstrap, Path(tmp), nodes=1, services=False) as alone:
                url, process = alone.nodes[0]
                topic = f"{alone.namespace}.orders"
                print(
                    json.dumps(
                        asyncio.run(parked_long_polls(url, process.pid, bootstrap, topic, args.parked, args.probes)),
                        indent=2,
                    )
                )
        return

    with tempfile.TemporaryDirectory(prefix="stategate-bench-") as tmp:
        data = Path(tmp)
        with broker(data) as bootstrap:
            asyncio.run(kafka_hop(bootstrap, 1000))
            floor = summary_ms(asyncio.run(kafka_hop(bootstrap, 500)))
            (data / "cluster").mkdir()
            with deployment(bootstrap, data / "cluster", nodes=2, services=False) as cluster:
                (first, _), (second, second_process) = cluster.nodes
                wait_two_members([first, second])
                direct, via = redirect_costs(second, first, args.gets)
                failover = failover_seconds(first, second, second_process, args.failover_orders)
            (data / "alone").mkdir()
            with deployment(bootstrap, data / "alone", nodes=1, services=False) as alone:
                url, process = alone.nodes[0]
                parked = asyncio.run(
                    parked_long_polls(
                        url, process.pid, bootstrap, f"{alone.namespace}.orders", args.parked, args.probes
                    )
                )

    result: dict[str, Any] = {
        "floor_kafka_hop": floor,
        "get_direct_to_owner": summary_ms(direct),
        "get_via_307": summary_ms(via),
        "failover_seconds": round(failover, 2),
        "failover_target_seconds": 10,
        "parked_long_polls": parked,
    }
    saved = save_result("cluster", result)
    w = parked["wake_up_one_at_a_time"]
    rows = [
        ("(a) raw Kafka hop (floor)", f"{floor['p50_ms']:.2f}", f"{floor['p99_ms']:.2f}", ""),
        (
            "(b) GET straight to the owner",
            f"{result['get_direct_to_owner']['p50_ms']:.2f}",
            f"{result['get_direct_to_owner']['p99_ms']:.2f}",
            "",
        ),
        (
            "(b) GET via a non-owner + 307",
            f"{result['get_via_307']['p50_ms']:.2f}",
            f"{result['get_via_307']['p99_ms']:.2f}",
            "",
        ),
        ("(c) failover after SIGKILL", "", "", f"{failover:.1f} s (target < 10 s)"),
        (
            f"(d) {parked['parked']} parked long-polls",
            "",
            "",
            f"+{parked['extra_rss_mb']} MiB = {parked['extra_rss_mb'] * 1.048576:.0f} MB RSS (target < 100 MB)",
        ),
        ("(d) one wake-up among them, ack → response", f"{w['p50_ms']:.2f}", f"{w['p99_ms']:.2f}", "p99 < 20 ms"),
        ("(d) all woken at once", "", "", f"last answer after {parked['wake_up_all_at_once_seconds']} s"),
    ]
    header = ("measurement", "p50 ms", "p99 ms", "result")
    print_table(header, rows)
    print(f"\nsaved {saved}")


if __name__ == "__main__":
    main()
