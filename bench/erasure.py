"""Benchmark of erasure: `python -m bench.erasure [--scale 600] [--orders 5]`.

In one run on the same broker it measures
  (a) the floor: one raw aiokafka produce→consume hop, p50;
  (b) for `--orders` orders placed (VALIDATED) by one node with the services, erased at
      once with DELETE: the time from the DELETE to `stategate audit` finding nothing of
      the order, against the bound the DELETE answer states (`within_seconds`), with the
      documented production settings divided by `--scale` (600: 5 minutes become 0.5 s);
  (c) what erasable keys cost: the same order records produced (acks=all, idempotent)
      and consumed back with plain keys and with erasable keys (a GUID each, partitioned
      by business key, stripped on read), records/s each way;
  (d) what a standby table copy pays to be never behind (streams/erasing_table.py): µs
      per changelog record applied one at a time against Faust's default of 1,000 at
      once, and the time to compact one erased key, on a real Faust table in RocksDB.
It prints a table and saves JSON in bench/results/. Not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, cast

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from faust.events import Event
from faust.types import TP
from faust.types.tuples import Message

from stategate.streams.erasable_keys import ErasablePartitioner, business_key, erasable_key
from stategate.streams.erasing_table import STANDBY_BUFFER_SIZE, compact_key
from stategate.streams.erasure_tools import audit_many
from stategate.streams.faust_app import create_faust_app, json_table
from stategate.streams.kafka_settings import KafkaSettings

from .harness import broker_process, deployment, kafka_hop, print_table, save_result, seed_stock, summary_ms

PRODUCTION = {
    "STATEGATE_ERASURE_SEGMENT_SECONDS": 300.0,
    "STATEGATE_ERASURE_COMPACTION_LAG_SECONDS": 600.0,
    "STATEGATE_ERASURE_TOMBSTONE_SECONDS": 600.0,
    "STATEGATE_CHANGELOG_MIN_LAG_SECONDS": 86400.0,
    "STATEGATE_ERASURE_CHECK_SECONDS": 60.0,
    "STATEGATE_REPLY_RETENTION_SECONDS": 3600.0,
}


def scaled(scale: float) -> dict[str, str]:
    """The production settings divided by `scale` (passes at least every 0.2 s)."""
    env = {name: f"{value / scale:g}" for name, value in PRODUCTION.items()}
    env["STATEGATE_ERASURE_CHECK_SECONDS"] = f"{max(PRODUCTION['STATEGATE_ERASURE_CHECK_SECONDS'] / scale, 0.2):g}"
    return env


async def erase_and_time(url: str, bootstrap: str, namespace: str, order_ids: list[str]) -> dict[str, Any]:
    """DELETE each order at once; seconds from its DELETE until audit finds nothing, and the bound it was told."""
    settings = KafkaSettings(broker=bootstrap, namespace=namespace, node_id="bench")
    async with httpx.AsyncClient(timeout=30, follow_redirects=True) as http:
        started = time.perf_counter()
        answers = await asyncio.gather(*(http.delete(f"{url}/v1/orders/{order_id}") for order_id in order_ids))
    bounds = [answer.json()["within_seconds"] for answer in answers if answer.status_code == 202]
    left = set(order_ids)
    own_gone: dict[str, float] = {}  # nothing left outside the checks' changelogs
    done: dict[str, float] = {}
    deadline = started + 2 * max(bounds) + 60
    while left and time.perf_counter() < deadline:
        audited = await audit_many(settings, sorted(left))
        now = time.perf_counter() - started
        for order_id, found in audited.items():
            if order_id not in own_gone and not [f for f in found if not _is_changelog(f.topic)]:
                own_gone[order_id] = now
            if not found:
                done[order_id] = now
                left.discard(order_id)
        await asyncio.sleep(0.2)
    return {
        "accepted": len(bounds),
        "bound_seconds": max(bounds),
        "seconds_to_own_records_gone": sorted(own_gone.values()),
        "seconds_to_nothing": sorted(done.values()),
        "never_clean": len(left),
    }


def _is_changelog(topic: str) -> bool:
    return topic.endswith(("-checked", "-changelog"))


async def key_throughput(bootstrap: str, records: int, erasable: bool) -> dict[str, float]:
    """Produce `records` order records and consume them back: records/s each way."""
    topic = f"bench-keys-{uuid.uuid4().hex[:6]}"
    partitioner: Any = ErasablePartitioner() if erasable else None
    options: dict[str, Any] = {"partitioner": partitioner} if erasable else {}
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5, **options
    )
    await producer.start()
    value = orjson.dumps({"id": "x", "customer_id": "c", "product": "p", "quantity": 1, "price": 1.0})
    try:
        await producer.send_and_wait(topic, value, key=b"warm-up")
        started = time.perf_counter()
        sends = []
        for i in range(records):
            order_id = f"order-{i:08d}"
            key = erasable_key(order_id) if erasable else order_id.encode()
            sends.append(await producer.send(topic, value, key=key))
        await asyncio.gather(*sends)
        produced = time.perf_counter() - started
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    try:
        started = time.perf_counter()
        seen = 0
        while seen < records + 1:
            for batch in (await consumer.getmany(timeout_ms=1000, max_records=5000)).values():
                for record in batch:
                    business_key(record.key)  # what every reader of an erasable topic does
                seen += len(batch)
        consumed = time.perf_counter() - started
    finally:
        await consumer.stop()
    return {"produced_per_second": records / produced, "consumed_per_second": records / consumed}


def standby_apply_cost(work: Path, records: int) -> dict[str, float]:
    """µs per changelog record a table copy applies, in batches of one and of 1,000; ms to compact one key."""
    settings = KafkaSettings(data_dir=work / "standby")
    table = json_table(create_faust_app("bench-standby", settings), "customer-orders", settings)
    changelog = TP(table.changelog_topic.get_topic_name(), 0)
    value = orjson.dumps({"orders": [f"order-{i:08d}" for i in range(4)]})

    def event(offset: int) -> Event:
        key = f"customer-{offset % 1000}".encode()
        message = Message(changelog.topic, 0, offset, 0.0, 0, None, key, value, None, tp=changelog)
        return Event(table.app, key, value, None, message)

    result: dict[str, float] = {}
    for size in (STANDBY_BUFFER_SIZE, 1000):
        events = [event(offset) for offset in range(records)]
        started = time.perf_counter()
        for start in range(0, records, size):
            table.apply_changelog_batch(events[start : start + size])
        result[f"us_per_record_batch_{size}"] = (time.perf_counter() - started) / records * 1e6
    db = cast(Any, table.data)._db_for_partition(0)
    started = time.perf_counter()
    for i in range(20):
        compact_key(db, f"customer-{i}".encode())
    result["ms_per_compacted_key"] = (time.perf_counter() - started) / 20 * 1e3
    return result


async def run(args: argparse.Namespace, bootstrap: str, work: Path) -> dict[str, Any]:
    floor = summary_ms(await kafka_hop(bootstrap, 300))
    with deployment(bootstrap, work, nodes=1, services=True, env=scaled(args.scale)) as deployed:
        url = deployed.nodes[0][0]
        seed_stock(url, "BENCH")
        order_ids = []
        async with httpx.AsyncClient(timeout=30, follow_redirects=True) as http:
            for i in range(args.orders):
                body = {"customer_id": f"erase-{i}", "product": "BENCH", "quantity": 1, "price": 1.0}
                placed = await http.post(f"{url}/v1/orders", params={"wait_for": "VALIDATED"}, json=body)
                order_ids.append(placed.json()["id"])
        erased = await erase_and_time(url, bootstrap, deployed.namespace, order_ids)
    plain = await key_throughput(bootstrap, args.records, erasable=False)
    suffixed = await key_throughput(bootstrap, args.records, erasable=True)
    standby = standby_apply_cost(work, args.records)
    return {
        "scale": args.scale,
        "floor_ms": floor,
        "erasure": erased,
        "plain_keys": plain,
        "erasable_keys": suffixed,
        "standby": standby,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=600.0, help="divide the production erasure settings by this")
    parser.add_argument("--orders", type=int, default=5, help="orders erased at once in (b)")
    parser.add_argument("--records", type=int, default=20_000, help="records produced and consumed in (c)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="stategate-bench-") as tmp, broker_process(Path(tmp)) as (bootstrap, _):
        result = asyncio.run(run(args, bootstrap, Path(tmp)))
    saved = save_result("erasure", result)
    erased = result["erasure"]
    times = erased["seconds_to_nothing"]
    own = erased["seconds_to_own_records_gone"]
    plain, suffixed, standby = result["plain_keys"], result["erasable_keys"], result["standby"]
    met = bool(times) and max(times) <= erased["bound_seconds"]
    rows = [
        ("(a) raw Kafka hop (floor), p50", f"{result['floor_ms']['p50_ms']:.2f} ms", ""),
        (
            "(b) DELETE → nothing left but the checks' old table values",
            f"median {statistics.median(own):.1f} s, max {max(own):.1f} s" if own else "never",
            "",
        ),
        (
            f"(b) DELETE → audit finds nothing, {erased['accepted']} orders, settings ÷ {args.scale:g}",
            f"median {statistics.median(times):.1f} s, max {max(times):.1f} s" if times else "never",
            f"≤ bound {erased['bound_seconds']:.1f} s: {'met' if met else 'MISSED'}",
        ),
        ("(b) the same at production scale", f"max {max(times) * args.scale / 3600:.1f} h" if times else "", ""),
        ("(b) never clean within twice the bound", str(erased["never_clean"]), ""),
        (
            "(c) produce, plain / erasable keys",
            f"{plain['produced_per_second']:,.0f} / {suffixed['produced_per_second']:,.0f} records/s",
            f"{suffixed['produced_per_second'] / plain['produced_per_second'] - 1:+.1%}",
        ),
        (
            "(c) consume (stripping the suffix), plain / erasable keys",
            f"{plain['consumed_per_second']:,.0f} / {suffixed['consumed_per_second']:,.0f} records/s",
            f"{suffixed['consumed_per_second'] / plain['consumed_per_second'] - 1:+.1%}",
        ),
        (
            "(d) a standby applies a changelog record, one at a time / 1,000 at a time",
            f"{standby['us_per_record_batch_1']:.1f} / {standby['us_per_record_batch_1000']:.1f} µs",
            "",
        ),
        ("(d) compact one erased key", f"{standby['ms_per_compacted_key']:.2f} ms", ""),
    ]
    print_table(("measurement", "result", "target"), rows)
    print(f"\nsaved {saved}")


if __name__ == "__main__":
    main()
