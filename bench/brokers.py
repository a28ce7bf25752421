"""Benchmark on a three-broker Kafka cluster: `python -m bench.brokers`.

In one run on the same three local KRaft brokers (app/kafka_cluster.py) it measures
  (a) the floor: one raw aiokafka produce→consume hop (acks=all, idempotent), on a topic
      with three replicas (min.insync.replicas 2) and on one with a single replica;
  (b) POST /v1/orders?wait_for=VALIDATED, sequential, p50/p99, on one node with the services,
      with replication factor 3 and with 1: what replication costs a request;
  (c) with 64 clients spread over 1, 2 and 3 gateway nodes (replication factor 3):
      validated orders/s, p50/p99, and CPU ms per validated order of every process (each
      node, the services, each broker, the load generator);
  (d) SIGKILL of the broker that leads partition 0 of a replicated topic while a producer
      (acks=all, idempotent) sends to that partition back to back: the time from the kill
      to the first acknowledgement after it, and until the killed broker is back in sync.
It prints a table and saves JSON in bench/results/. Not a test: nothing here passes or fails.
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

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from stategate.app.kafka_cluster import LocalKafkaCluster
from stategate.streams.admin import TopicSpec, ensure_topics
from stategate.streams.kafka_settings import KafkaSettings

from .harness import CpuMeter, deployment, kafka_hop, print_table, save_result, seed_stock, summary_ms
from .orders import concurrent_orders, sequential_orders

PRODUCTS = [f"BENCH-{k}" for k in range(8)]


async def replicated_topic(bootstrap: str, replicas: int, partitions: int = 1) -> str:
    """A new topic with `replicas` replicas (and the majority as min.insync.replicas)."""
    topic = f"bench-rf{replicas}-{uuid.uuid4().hex[:6]}"
    settings = KafkaSettings(broker=bootstrap, replication_factor=replicas, node_id="bench")
    await ensure_topics(settings, [TopicSpec(topic, partitions)])
    return topic


async def leader_of(bootstrap: str, topic: str, partition: int) -> int:
    """The node id of the broker that leads `topic`'s `partition`."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
        return int(next(p["leader"] for p in described["partitions"] if p["partition"] == partition))
    finally:
        await admin.close()


async def in_sync(bootstrap: str, topic: str) -> bool:
    """Whether every replica of every partition of `topic` is in sync."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
        return all(len(p["isr"]) == len(p["replicas"]) for p in described["partitions"])
    finally:
        await admin.close()


async def produce_through_a_kill(cluster: LocalKafkaCluster) -> dict[str, float]:
    """Seconds from SIGKILL of partition 0's leader to the next acknowledged record, and to full sync again."""
    topic = await replicated_topic(cluster.bootstrap, 3)
    producer = AIOKafkaProducer(
        bootstrap_servers=cluster.bootstrap, acks="all", enable_idempotence=True, request_timeout_ms=30_000
    )
    await producer.start()
    try:
        for _ in range(200):  # warm: the connection, the leader's metadata
            await producer.send_and_wait(topic, b"warm", partition=0)
        victim = cluster.broker(await leader_of(cluster.bootstrap, topic, 0))
        killed = time.perf_counter()
        await asyncio.to_thread(victim.kill)
        while True:
            try:
                await producer.send_and_wait(topic, b"after", partition=0)
                break
            except KafkaError:
                continue  # a failed send is retried by the next one: what a client does
        first_ack = time.perf_counter() - killed
    finally:
        await producer.stop()
    await asyncio.to_thread(victim.start)
    for _ in range(1500):  # five minutes at most
        if await in_sync(cluster.bootstrap, topic):
            break
        await asyncio.sleep(0.2)  # polling the brokers' state, not product logic
    return {"kill_to_first_ack_s": round(first_ack, 3), "kill_to_in_sync_s": round(time.perf_counter() - killed, 1)}


def sequential(cluster: LocalKafkaCluster, data: Path, replicas: int, count: int) -> dict[str, float]:
    """Sequential POST+wait VALIDATED on one node with the services, topics with `replicas` replicas."""
    env = {"STATEGATE_REPLICATION_FACTOR": str(replicas)}
    with deployment(cluster.bootstrap, data / f"seq-rf{replicas}", nodes=1, env=env) as running:
        url = running.nodes[0][0]
        seed_stock(url, PRODUCTS[0])
        asyncio.run(sequential_orders(url, 200, PRODUCTS[0]))  # warm-up
        return summary_ms(asyncio.run(sequential_orders(url, count, PRODUCTS[0])))


def loaded(cluster: LocalKafkaCluster, data: Path, nodes: int, clients: int, seconds: float) -> dict[str, Any]:
    """`clients` spread over `nodes` gateway nodes for `seconds`: validated orders/s, latency, CPU per order."""
    env = {"STATEGATE_REPLICATION_FACTOR": "3"}
    with deployment(cluster.bootstrap, data / f"load-{nodes}", nodes=nodes, env=env) as running:
        urls = [url for url, _ in running.nodes]
        for product in PRODUCTS:
            seed_stock(urls[0], product)
        pids = {f"node {i}": process.pid for i, (_, process) in enumerate(running.nodes, start=1)}
        assert running.services is not None
        pids["services"] = running.services.pid
        for broker in cluster.brokers:
            assert broker.process is not None
            pids[f"broker {broker.node_id}"] = broker.process.pid
        pids["load generator"] = os.getpid()

        async def spread(duration: float) -> tuple[int, int, list[float]]:
            shares = [clients // nodes + (i < clients % nodes) for i in range(nodes)]
            runs = await asyncio.gather(
                *(concurrent_orders(url, share, duration, PRODUCTS) for url, share in zip(urls, shares, strict=True))
            )
            return sum(r[0] for r in runs), sum(r[1] for r in runs), [x for r in runs for x in r[2]]

        asyncio.run(spread(5.0))  # warm-up
        cpu = CpuMeter(pids)
        started = time.perf_counter()
        cpu.start()
        validated, other, latencies = asyncio.run(spread(seconds))
        used = cpu.stop()
        elapsed = time.perf_counter() - started
    return {
        "nodes": nodes,
        "clients": clients,
        "validated": validated,
        "not_validated": other,
        "validated_per_second": round(validated / elapsed, 1),
        **summary_ms(latencies),
        "cpu_ms_per_validated_order": {
            **{name: round(s * 1000 / max(validated, 1), 3) for name, s in used.items()},
            "total": round(sum(used.values()) * 1000 / max(validated, 1), 3),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sequential", type=int, default=300, help="orders in (b), per replication factor")
    parser.add_argument("--clients", type=int, default=64, help="concurrent clients in (c)")
    parser.add_argument("--seconds", type=float, default=20.0, help="duration of each load in (c)")
    parser.add_argument("--hops", type=int, default=500, help="raw Kafka hops in (a)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="stategate-bench-") as tmp:
        data = Path(tmp)
        with LocalKafkaCluster(data / "kafka", brokers=3) as cluster:
            asyncio.run(kafka_hop(cluster.bootstrap, 500))  # warm the brokers' JIT
            floor = {
                "rf3": summary_ms(asyncio.run(kafka_hop(cluster.bootstrap, args.hops, replicas=3))),
                "rf1": summary_ms(asyncio.run(kafka_hop(cluster.bootstrap, args.hops, replicas=1))),
            }
            post = {
                "rf3": sequential(cluster, data, 3, args.sequential),
                "rf1": sequential(cluster, data, 1, args.sequential),
            }
            load = [loaded(cluster, data, nodes, args.clients, args.seconds) for nodes in (1, 2, 3)]
            failure = asyncio.run(produce_through_a_kill(cluster))
    result = {"floor_kafka_hop": floor, "sequential_post_wait_validated": post, "load": load, "broker_kill": failure}
    saved = save_result("brokers", result)
    print_result(result)
    print(f"\nsaved {saved}")


def print_result(r: dict[str, Any]) -> None:
    floor, post, failure = r["floor_kafka_hop"], r["sequential_post_wait_validated"], r["broker_kill"]
    rows = [
        ("(a) raw hop, 3 replicas / 1, p50", f"{floor['rf3']['p50_ms']:.2f} / {floor['rf1']['p50_ms']:.2f} ms", ""),
        ("(a) raw hop, 3 replicas / 1, p99", f"{floor['rf3']['p99_ms']:.2f} / {floor['rf1']['p99_ms']:.2f} ms", ""),
        (
            "(b) POST+wait VALIDATED, 3 replicas / 1, p50",
            f"{post['rf3']['p50_ms']:.2f} / {post['rf1']['p50_ms']:.2f} ms",
            f"{post['rf3']['p50_ms'] / post['rf1']['p50_ms'] - 1:+.0%}",
        ),
        ("(b) the same, p99", f"{post['rf3']['p99_ms']:.2f} / {post['rf1']['p99_ms']:.2f} ms", ""),
    ]
    for run in r["load"]:
        rows.append(
            (
                f"(c) {run['clients']} clients on {run['nodes']} node(s)",
                f"{run['validated_per_second']:,.0f} validated/s, p50 {run['p50_ms']:.1f} / p99 {run['p99_ms']:.1f} ms",
                f"{run['not_validated']} not validated",
            )
        )
        cpu = run["cpu_ms_per_validated_order"]
        rows.append(("    CPU ms per order", ", ".join(f"{name} {ms:.3f}" for name, ms in cpu.items()), ""))
    rows.append(("(d) SIGKILL leader → first ack", f"{failure['kill_to_first_ack_s']:.3f} s", ""))
    rows.append(("(d) SIGKILL leader → every replica in sync (restarted)", f"{failure['kill_to_in_sync_s']:.1f} s", ""))
    print_table(("measurement", "result", ""), rows)


if __name__ == "__main__":
    main()
