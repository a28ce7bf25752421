"""What reply topics cost the brokers: `python -m bench.sidecars [--nodes 100]`.

The sidecar layout gives every gateway node a one-partition reply topic of
its own, read without a group (`STATEGATE_REPLY_TOPIC=own`); the shared
layout gives N nodes one topic of N partitions (fewer, and some nodes would
read none and hand every reply over), read in one consumer group. In one run
on the same three local KRaft brokers (replication factor 3, min ISR 2) it
measures, for N readers that behave as nodes' reply consumers do (aiokafka,
fetch_max_wait_ms 100, idle):
  (a) the floor: one raw aiokafka produce→consume hop (acks=all);
  (b) the time to create the topics: N topics of one partition, or one of N; to start the
      N readers one after another (a group member's start waits for its join, and every
      join rebalances the group); and until every reader has its partition;
  (c) the brokers' CPU (all three, % of one core) and their resident memory while
      the N readers sit idle for `--seconds`;
  (d) one reply's hop (produce acks=all → the waiting reader has it), p50/p99,
      among the N idle readers.
It prints a table and saves JSON in bench/results/. Not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from stategate.app.kafka_cluster import LocalKafkaCluster
from stategate.streams.admin import TopicSpec, ensure_topics
from stategate.streams.kafka_settings import KafkaSettings

from .harness import CpuMeter, kafka_hop, print_table, rss_mb, save_result, summary_ms


async def create(bootstrap: str, specs: list[TopicSpec]) -> float:
    """Seconds to create the topics (and see their leaders elected)."""
    settings = KafkaSettings(broker=bootstrap, replication_factor=3, node_id="bench")
    started = time.perf_counter()
    await ensure_topics(settings, specs)
    return time.perf_counter() - started


async def readers(bootstrap: str, assignments: list[TopicPartition], group: str | None) -> list[AIOKafkaConsumer]:
    """One reader per partition, as a node's reply consumer reads: in a group, or assigned without one."""
    consumers = []
    for tp in assignments:
        if group is None:
            consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=100)
            await consumer.start()
            consumer.assign([tp])
        else:
            consumer = AIOKafkaConsumer(
                tp.topic, bootstrap_servers=bootstrap, group_id=group, fetch_max_wait_ms=100, enable_auto_commit=False
            )
            await consumer.start()
        consumers.append(consumer)
    return consumers


async def read_forever(consumer: AIOKafkaConsumer, waiting: dict[bytes, asyncio.Future[float]]) -> None:
    while True:
        for records in (await consumer.getmany(timeout_ms=1000)).values():
            for record in records:
                reply = waiting.pop(record.value or b"", None)
                if reply is not None:
                    reply.set_result(time.perf_counter())


async def layout(cluster: LocalKafkaCluster, nodes: int, shared: bool, seconds: float, hops: int) -> dict[str, Any]:
    """Create the reply topics of one layout, start N idle readers, measure the brokers and a reply hop."""
    tag = uuid.uuid4().hex[:6]
    if shared:
        specs = [TopicSpec(f"bench-replies-{tag}", nodes)]
        assignments = [TopicPartition(specs[0].name, p) for p in range(nodes)]
    else:
        specs = [TopicSpec(f"bench-replies-{tag}.node-{i}", 1) for i in range(nodes)]
        assignments = [TopicPartition(spec.name, 0) for spec in specs]
    created = await create(cluster.bootstrap, specs)
    joining = time.perf_counter()
    consumers = await readers(cluster.bootstrap, assignments, f"bench-replies-{tag}" if shared else None)
    readers_started = time.perf_counter() - joining
    waiting: dict[bytes, asyncio.Future[float]] = {}
    tasks = [asyncio.create_task(read_forever(c, waiting)) for c in consumers]
    pids = {f"broker {b.node_id}": b.process.pid for b in cluster.brokers if b.process is not None}
    try:
        settled: float | None = None
        for _ in range(900):  # three minutes at most
            if all(consumer.assignment() for consumer in consumers):
                settled = time.perf_counter() - joining
                break
            await asyncio.sleep(0.2)  # the group settles (a rebalance per join)
        await asyncio.sleep(2)  # and every reader is fetching
        cpu = CpuMeter(pids)
        cpu.start()
        await asyncio.sleep(seconds)  # idle: what N readers cost while nothing happens
        used = cpu.stop()
        rss = {name: rss_mb(pid) for name, pid in pids.items()}
        producer = AIOKafkaProducer(bootstrap_servers=cluster.bootstrap, acks="all", enable_idempotence=True)
        await producer.start()
        latencies = []
        try:
            for i in range(hops):
                tp = assignments[i % len(assignments)]
                value = f"{tag}-{i}".encode()
                reply = waiting[value] = asyncio.get_running_loop().create_future()
                started = time.perf_counter()
                await producer.send_and_wait(tp.topic, value, partition=tp.partition)
                latencies.append(await asyncio.wait_for(reply, 30) - started)
        finally:
            await producer.stop()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for consumer in consumers:
            await consumer.stop()
    return {
        "layout": "shared" if shared else "own",
        "topics": len(specs),
        "partitions": nodes,
        "create_seconds": round(created, 2),
        "readers_started_seconds": round(readers_started, 1),
        "every_reader_assigned_seconds": None if settled is None else round(settled, 1),
        "brokers_cpu_percent_idle": round(100 * sum(used.values()) / seconds, 1),
        "brokers_rss_mb": rss,
        "reply_hop": summary_ms(latencies),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=100, help="gateway nodes, so reply readers and partitions")
    parser.add_argument("--seconds", type=float, default=20.0, help="idle time measured in (c)")
    parser.add_argument("--hops", type=int, default=300, help="reply hops in (d)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="stategate-bench-") as tmp:
        with LocalKafkaCluster(Path(tmp) / "kafka", brokers=3) as cluster:
            asyncio.run(kafka_hop(cluster.bootstrap, 300))  # warm the brokers' JIT
            floor = summary_ms(asyncio.run(kafka_hop(cluster.bootstrap, 300, replicas=3)))
            pids = {f"broker {b.node_id}": b.process.pid for b in cluster.brokers if b.process is not None}
            base_rss = {name: rss_mb(pid) for name, pid in pids.items()}
            runs = [
                asyncio.run(layout(cluster, args.nodes, shared, args.seconds, args.hops)) for shared in (True, False)
            ]
    result = {"nodes": args.nodes, "floor_kafka_hop": floor, "brokers_rss_mb_before": base_rss, "layouts": runs}
    saved = save_result("sidecars", result)
    rows = [("(a) raw hop, 3 replicas, p50 / p99", f"{floor['p50_ms']:.2f} / {floor['p99_ms']:.2f} ms", "")]
    for run in runs:
        name = f"{run['layout']}: {run['topics']} topic(s), {run['partitions']} partitions"
        rows += [
            (f"(b) {name}: create", f"{run['create_seconds']:.2f} s", ""),
            (f"(b) {name}: readers started one after another", f"{run['readers_started_seconds']:.1f} s", ""),
            (
                f"(b) {name}: every reader assigned",
                "never (3 min)"
                if run["every_reader_assigned_seconds"] is None
                else f"{run['every_reader_assigned_seconds']:.1f} s",
                "",
            ),
            (f"(c) {name}: brokers idle CPU", f"{run['brokers_cpu_percent_idle']:.1f} % of one core", ""),
            (f"(c) {name}: brokers RSS", ", ".join(f"{v:.0f}" for v in run["brokers_rss_mb"].values()) + " MiB", ""),
            (
                f"(d) {name}: reply hop p50 / p99",
                f"{run['reply_hop']['p50_ms']:.2f} / {run['reply_hop']['p99_ms']:.2f} ms",
                "",
            ),
        ]
    rows.append(("brokers RSS before", ", ".join(f"{v:.0f}" for v in base_rss.values()) + " MiB", ""))
    print_table(("measurement", "result", ""), rows)
    print(f"\nsaved {saved}")


if __name__ == "__main__":
    main()
