"""Benchmark of live updates (Server-Sent Events): `python -m bench.live`.

One broker, two gateway nodes, no services: the benchmark writes every order
version itself, straight to `orders` with an aiokafka producer (acks=all), as
any producer may and as tests/test_live_cluster.py does. In one run it measures
  (a) the floor: one raw aiokafka produce→consume hop;
  (b) change → SSE event on a node that does NOT own the order, p50/p99: a
      stream is opened on the non-owner, its snapshot read, then the next
      version written; the time runs from just before the produce to the
      event's arrival at the client (the same on the owner, for comparison);
  (c) memory per open SSE stream: 10,000 streams held open on one node (on
      orders that exist and do not change), the node's RSS before and after;
  (d) fan-out: 1,000 streams on one node, each on the same 10 orders, then
      2,000 versions of them written as fast as the producer goes: events
      delivered per second across the clients, the node's CPU per delivered
      event, and what the outbox conflated or dropped (from /metrics);
  (e) a hook for WebSockets (`/v1/ws`): memory per WebSocket at 10,000 open,
      measured only when the node has that route.
The client is raw asyncio streams (no HTTP library): one connection per
stream, it reads the response head, undoes the chunked framing and splits
events on blank lines; the fan-out clients only count `event: order` lines.
It prints a table and saves JSON in bench/results/. Not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import resource
import tempfile
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
from aiokafka import AIOKafkaProducer

from stategate.streams.erasable_keys import partition_for

from .cluster import wait_two_members
from .harness import CpuMeter, broker_process, deployment, kafka_hop, print_table, rss_mb, save_result, summary_ms

STREAMS_HEADROOM = 2_000
"""STATEGATE_MAX_STREAMS is the number of streams held in (c) plus this."""
LATENCY_WARM_UP = 20
FLOOR_P50_FACTOR = 1.5
FLOOR_P50_PLUS_MS = 1.0
"""(b)'s target: p50 ≤ 1.5 × the floor's p50 + 1 ms (one Kafka hop, plus HTTP and the SSE write)."""
MEMORY_TARGET_KIB = 10.0


def order_version(order_id: str, number: int, state: str = "CREATED") -> bytes:
    """One version of an order, as the services would write it to `orders`."""
    now = "2026-11-29T00:00:00+00:00"
    return orjson.dumps(
        {
            "id": order_id,
            "customer_id": "bench-live",
            "product": "BENCH",
            "quantity": 1,
            "price": 1.0,
            "state": state,
            "version": number,
            "validations": {},
            "created_at": now,
            "updated_at": now,
        }
    )


def new_ids(count: int, partitions: int, owned: frozenset[int] | None = None) -> list[str]:
    """`count` fresh order ids; only ids whose partition is in `owned`, when given."""
    ids: list[str] = []
    while len(ids) < count:
        order_id = f"live-{uuid.uuid4().hex[:16]}"
        if owned is None or partition_for(order_id.encode(), partitions) in owned:
            ids.append(order_id)
    return ids


class Orders:
    """Writes order versions to `orders`, keyed by id, with acks=all."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self.producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)

    async def start(self) -> None:
        await self.producer.start()

    async def stop(self) -> None:
        await self.producer.stop()

    async def write(self, order_id: str, number: int, state: str = "CREATED") -> None:
        """One version, waiting for its acknowledgement."""
        await self.producer.send_and_wait(self.topic, order_version(order_id, number, state), key=order_id.encode())

    async def write_many(self, versions: Iterable[tuple[str, int, str]]) -> None:
        """Many versions as fast as the producer takes them; returns once all are acknowledged."""
        acks = [
            await self.producer.send(self.topic, order_version(order_id, number, state), key=order_id.encode())
            for order_id, number, state in versions
        ]
        await asyncio.gather(*acks)


class Refused(Exception):
    """The node answered a stream's request with an error instead of the stream."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"{status} {body}")
        self.status, self.body = status, body


class SseStream:
    """One Server-Sent Events response on a raw connection: the head, then events, chunked framing undone."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.buffer = b""
        self.ended = False

    @classmethod
    async def open(cls, url: str, path: str) -> SseStream:
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        stream = cls(reader, writer)
        if status != 200 or b"transfer-encoding: chunked" not in head.lower():
            body = await asyncio.wait_for(reader.read(2000), 5)
            stream.close()
            raise Refused(status, body.decode(errors="replace"))
        return stream

    async def _chunk(self) -> bytes | None:
        """The next chunk of the body; None at its end."""
        size = int((await self.reader.readline()).split(b";")[0], 16)
        if size == 0:
            await self.reader.readline()
            self.ended = True
            return None
        return (await self.reader.readexactly(size + 2))[:-2]

    async def event(self) -> bytes | None:
        """The next event's lines (comments skipped); None when the response ended."""
        while True:
            while b"\n\n" not in self.buffer:
                chunk = await self._chunk()
                if chunk is None:
                    return None
                self.buffer += chunk
            block, _, self.buffer = self.buffer.partition(b"\n\n")
            if not block.startswith(b":"):
                return block

    async def order(self) -> dict[str, Any]:
        """The order the next event carries."""
        block = await self.event()
        if block is None:
            raise RuntimeError("the stream ended before an event")
        data = next(line for line in block.split(b"\n") if line.startswith(b"data: "))
        return orjson.loads(data[6:])  # type: ignore[no-any-return]

    def close(self) -> None:
        self.writer.close()


async def metrics(url: str) -> dict[str, float]:
    """The node's /metrics, sample name (with labels) → value."""
    async with httpx.AsyncClient(timeout=10) as client:
        text = (await client.get(f"{url}/metrics")).text
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


async def wait_metric(url: str, name: str, value: float, timeout: float = 60) -> float:
    """Until the node's metric `name` equals `value`; returns the last value seen."""
    deadline = time.monotonic() + timeout
    seen = -1.0
    while time.monotonic() < deadline:
        seen = (await metrics(url)).get(name, 0.0)
        if seen == value:
            break
        await asyncio.sleep(0.2)
    return seen


async def wait_known(urls: list[str], order_ids: list[str]) -> None:
    """Until every order can be read (following the redirect to its owner)."""
    async with httpx.AsyncClient(timeout=30, follow_redirects=True) as client:
        for order_id in order_ids:
            for _ in range(30):  # a 503 (a node busy or a peer briefly marked down): try again, as a client would
                response = await client.get(f"{urls[0]}/v1/orders/{order_id}", params={"wait_for": "CREATED"})
                if response.status_code != 503:
                    break
                await asyncio.sleep(1.0)
            assert response.status_code == 200, (order_id, response.status_code)


def ownership(url: str) -> tuple[int, dict[str, frozenset[int]]]:
    """The partition count of `orders`, and each node's URL → the partitions it owns."""
    view = httpx.get(f"{url}/v1/cluster", timeout=10).json()
    return view["partitions"], {n["url"]: frozenset(n["partitions"]) for n in view["nodes"]}


async def change_to_event(
    orders: Orders, ids: list[str], partitions: int, owners: dict[str, frozenset[int]], on_owner: bool
) -> tuple[list[float], list[float]]:
    """For each order in turn: a stream on its non-owner (or owner), the snapshot, then the next version's event."""
    latencies: list[float] = []
    from_ack: list[float] = []
    for i, order_id in enumerate(ids):
        partition = partition_for(order_id.encode(), partitions)
        url = next(u for u, owned in owners.items() if (partition in owned) == on_owner)
        stream = await SseStream.open(url, f"/v1/orders/{order_id}/events?timeout=10")
        try:
            snapshot = await stream.order()
            assert snapshot["id"] == order_id and snapshot["version"] == 1, snapshot
            arrived = asyncio.create_task(_next_order_at(stream))
            started = time.perf_counter()
            await orders.write(order_id, 2, "VALIDATED")
            acked = time.perf_counter()
            order, at = await arrived
            assert order["version"] == 2, order
            if i >= LATENCY_WARM_UP:
                latencies.append(at - started)
                from_ack.append(at - acked)
        finally:
            stream.close()
    return latencies, from_ack


async def _next_order_at(stream: SseStream) -> tuple[dict[str, Any], float]:
    order = await stream.order()
    return order, time.perf_counter()


async def open_many(
    url: str, paths: list[str], refusals: list[str], events_each: int = 1, batch: int = 500
) -> list[SseStream]:
    """Open a stream per path, `batch` at a time (the listen backlog), each read up to its `events_each`-th event.

    A 503 is retried after its Retry-After second, as a client would; each refusal's body goes to `refusals`.
    """
    streams: list[SseStream] = []

    async def one(path: str) -> SseStream:
        for _ in range(10):
            try:
                stream = await SseStream.open(url, path)
                break
            except Refused as exc:
                refusals.append(exc.body)
                if exc.status != 503:
                    raise
                await asyncio.sleep(1.0)
        else:
            raise RuntimeError(f"{path}: refused ten times")
        for _ in range(events_each):
            if await stream.event() is None:
                raise RuntimeError(f"{path} ended early")
        return stream

    for start in range(0, len(paths), batch):
        streams.extend(await asyncio.gather(*(one(path) for path in paths[start : start + batch])))
    return streams


async def settled_orders(
    url: str, pid: int, orders: Orders, owned: frozenset[int], count: int, partitions: int
) -> tuple[list[str], float]:
    """`count` new orders on partitions the node owns, known to it; the ids and the node's RSS once settled."""
    ids = new_ids(count, partitions, owned)
    await orders.write_many((order_id, 1, "CREATED") for order_id in ids)
    await wait_known([url], ids[-200:])
    await asyncio.sleep(1.0)
    return ids, rss_mb(pid)


async def held_streams(
    url: str, pid: int, orders: Orders, owned: frozenset[int], count: int, partitions: int
) -> dict[str, Any]:
    """`count` streams open at once on one node, on orders it owns that do not change: its extra RSS."""
    ids, before = await settled_orders(url, pid, orders, owned, count, partitions)
    started = time.perf_counter()
    refusals: list[str] = []
    streams = await open_many(url, [f"/v1/orders/{order_id}/events" for order_id in ids], refusals)
    opened_seconds = time.perf_counter() - started
    gauge = await wait_metric(url, 'stategate_live_streams{kind="sse"}', count, timeout=10)
    await asyncio.sleep(1.0)
    after = rss_mb(pid)
    for stream in streams:
        stream.close()
    closed = await wait_metric(url, 'stategate_live_streams{kind="sse"}', 0)
    return {
        "streams": count,
        "snapshots_received": len(streams),
        "refused_then_retried": len(refusals),
        "refusals": sorted(set(refusals))[:5],
        "open_seconds": round(opened_seconds, 2),
        "gauge_while_open": gauge,
        "gauge_after_close": closed,
        "rss_before_mb": before,
        "rss_open_mb": after,
        "rss_after_close_mb": rss_mb(pid),
        "extra_rss_mb": round(after - before, 1),
        "kib_per_stream": round((after - before) * 1024 / count, 2),
    }


class Counting:
    """A fan-out client: counts `event: order` lines in the raw bytes until the response ends."""

    MARK = b"event: order"

    def __init__(self, stream: SseStream) -> None:
        self.stream = stream
        self.events = 0
        self.last_at = 0.0

    async def run(self) -> None:
        reader = self.stream.reader
        tail = b""
        while True:
            data = await reader.read(1 << 16)
            if not data:
                return
            now = time.perf_counter()
            seen = tail + data
            found = seen.count(self.MARK)
            if found:
                self.events += found
                self.last_at = now
            tail = seen[-(len(self.MARK) - 1) :]
            if seen.endswith(b"\r\n0\r\n\r\n"):  # the last chunk: every watched order reached a terminal state
                return


async def fan_out(
    url: str,
    pid: int,
    bootstrap_pid: int | None,
    orders: Orders,
    clients: int,
    hot: int,
    versions: int,
    partitions: int,
) -> dict[str, Any]:
    """`clients` streams on the same `hot` orders; `versions` new versions of them, as fast as the producer goes."""
    ids = new_ids(hot, partitions)
    await orders.write_many((order_id, 1, "CREATED") for order_id in ids)
    await wait_known([url], ids)
    path = "/v1/events?orders=" + ",".join(ids)
    refusals: list[str] = []
    streams = await open_many(url, [path] * clients, refusals, events_each=hot)
    counters = [Counting(stream) for stream in streams]
    reading = [asyncio.create_task(counter.run()) for counter in counters]
    before = await metrics(url)
    per_order = versions // hot
    plan = [
        (order_id, number, "VALIDATED" if number == per_order + 1 else "CREATED")
        for number in range(2, per_order + 2)
        for order_id in ids
    ]
    pids = {"node": pid, "load generator": os.getpid()}
    if bootstrap_pid is not None:
        pids["broker"] = bootstrap_pid
    cpu = CpuMeter(pids)
    cpu.start()
    started = time.perf_counter()
    await orders.write_many(plan)
    produced_seconds = time.perf_counter() - started
    await asyncio.wait_for(asyncio.gather(*reading), 300)
    used = cpu.stop()
    for stream in streams:
        stream.close()
    await wait_metric(url, 'stategate_live_streams{kind="sse"}', 0)
    after = await metrics(url)
    received = sum(counter.events for counter in counters)
    last = max(counter.last_at for counter in counters)
    seconds = last - started
    sent_name = 'stategate_live_events_sent_total{kind="sse"}'
    return {
        "clients": clients,
        "orders": hot,
        "refused_then_retried": len(refusals),
        "refusals": sorted(set(refusals))[:5],
        "versions_written": len(plan),
        "produce_seconds": round(produced_seconds, 3),
        "events_possible": len(plan) * clients,
        "events_received": received,
        "events_sent_per_metrics": after.get(sent_name, 0) - before.get(sent_name, 0),
        "seconds_first_produce_to_last_event": round(seconds, 3),
        "events_per_second": round(received / seconds),
        "conflated": after.get("stategate_live_events_conflated_total", 0)
        - before.get("stategate_live_events_conflated_total", 0),
        "clients_dropped": after.get('stategate_live_clients_dropped_total{kind="sse"}', 0)
        - before.get('stategate_live_clients_dropped_total{kind="sse"}', 0),
        "cpu_seconds": {name: round(value, 2) for name, value in used.items()},
        "node_cpu_us_per_event": round(used["node"] / received * 1e6, 2),
    }


# --- (e) WebSockets: `/v1/ws`, JSON messages ({"op": "subscribe", "orders": [...]} → {"type": "order", ...}) ---


async def ws_route_status(url: str) -> int:
    """101 when the node accepts a WebSocket on /v1/ws, else the status it answered the handshake with."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET /v1/ws HTTP/1.1\r\nHost: {parts.hostname}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    finally:
        writer.close()
    return int(head.split(b" ", 2)[1])


async def held_websockets(
    url: str, pid: int, orders: Orders, owned: frozenset[int], count: int, partitions: int
) -> dict[str, Any]:
    """`count` WebSockets open at once on one node, each subscribed to one order it owns: its extra RSS."""
    from websockets.asyncio.client import ClientConnection, connect

    ids, before = await settled_orders(url, pid, orders, owned, count, partitions)
    ws_url = url.replace("http://", "ws://", 1) + "/v1/ws"

    async def one(order_id: str) -> ClientConnection:
        socket = await connect(ws_url, ping_interval=None, compression=None, open_timeout=60)
        hello = orjson.loads(await socket.recv())
        assert hello["type"] == "hello", hello
        await socket.send(orjson.dumps({"op": "subscribe", "orders": [order_id]}).decode())
        message = orjson.loads(await socket.recv())
        assert message["type"] == "order" and message["order"]["id"] == order_id, message
        return socket

    sockets: list[ClientConnection] = []
    started = time.perf_counter()
    for start in range(0, count, 500):
        sockets.extend(await asyncio.gather(*(one(order_id) for order_id in ids[start : start + 500])))
    opened_seconds = time.perf_counter() - started
    gauge = await wait_metric(url, 'stategate_live_streams{kind="ws"}', count, timeout=10)
    await asyncio.sleep(1.0)
    after = rss_mb(pid)
    await asyncio.gather(*(socket.close() for socket in sockets))
    return {
        "websockets": count,
        "first_messages_received": len(sockets),
        "open_seconds": round(opened_seconds, 2),
        "gauge_while_open": gauge,
        "rss_before_mb": before,
        "rss_open_mb": after,
        "extra_rss_mb": round(after - before, 1),
        "kib_per_websocket": round((after - before) * 1024 / count, 2),
    }


async def websockets_or_none(
    url: str, pid: int, orders: Orders, owned: frozenset[int], count: int, partitions: int
) -> dict[str, Any]:
    status = await ws_route_status(url)
    if status != 101:
        return {"measured": False, "handshake_status": status}
    return {"measured": True, **await held_websockets(url, pid, orders, owned, count, partitions)}


# --- the run ---


def raise_open_files(needed: int) -> int:
    """Raise this process's soft RLIMIT_NOFILE to the hard limit (children inherit it); returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise SystemExit(f"RLIMIT_NOFILE hard limit {hard} < {needed}: raise it (ulimit -Hn) first")
    target = hard if hard != resource.RLIM_INFINITY else max(soft, needed)
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return target


async def measure(
    args: argparse.Namespace, bootstrap: str, broker_pid: int | None, topic: str, nodes: list[tuple[str, int]]
) -> dict[str, Any]:
    urls = [url for url, _ in nodes]
    partitions, owners = ownership(urls[0])
    orders = Orders(bootstrap, topic)
    await orders.start()
    try:
        ids = new_ids(args.latency_orders + LATENCY_WARM_UP, partitions)
        await orders.write_many((order_id, 1, "CREATED") for order_id in ids)
        await wait_known(urls, ids)
        non_owner, non_owner_ack = await change_to_event(orders, ids, partitions, owners, on_owner=False)
        ids = new_ids(args.latency_orders + LATENCY_WARM_UP, partitions)
        await orders.write_many((order_id, 1, "CREATED") for order_id in ids)
        await wait_known(urls, ids)
        owner, owner_ack = await change_to_event(orders, ids, partitions, owners, on_owner=True)
        (first_url, first_pid), (second_url, second_pid) = nodes
        held = await held_streams(first_url, first_pid, orders, owners[first_url], args.streams, partitions)
        fanned = await fan_out(
            first_url,
            first_pid,
            broker_pid,
            orders,
            args.fanout_clients,
            args.fanout_orders,
            args.fanout_versions,
            partitions,
        )
        # Fewer versions than a stream's backlog (STATEGATE_STREAM_BACKLOG, 1,000): nothing to conflate.
        fanned_small = await fan_out(
            first_url,
            first_pid,
            broker_pid,
            orders,
            args.fanout_clients,
            args.fanout_orders,
            args.fanout_small_versions,
            partitions,
        )
        ws = await websockets_or_none(second_url, second_pid, orders, owners[second_url], args.streams, partitions)
    finally:
        await orders.stop()
    return {
        "change_to_event_non_owner": summary_ms(non_owner),
        "change_to_event_owner": summary_ms(owner),
        "ack_to_event_non_owner": summary_ms(non_owner_ack),
        "ack_to_event_owner": summary_ms(owner_ack),
        "held_sse_streams": held,
        "fan_out": fanned,
        "fan_out_within_backlog": fanned_small,
        "websockets": ws,
    }


def fan_out_rows(fanned: dict[str, Any], label: str) -> list[tuple[str, str, str]]:
    return [
        (
            f"(d) fan-out, {label}: {fanned['clients']:,} streams × {fanned['orders']} orders, "
            f"{fanned['versions_written']:,} versions",
            f"{fanned['events_received']:,} of {fanned['events_possible']:,} events in "
            f"{fanned['seconds_first_produce_to_last_event']:.2f} s = {fanned['events_per_second']:,}/s",
            "",
        ),
        (
            "(d) node CPU per delivered event; conflated; dropped",
            f"{fanned['node_cpu_us_per_event']:.1f} µs; {fanned['conflated']:,.0f}; {fanned['clients_dropped']:.0f}"
            f" ({fanned['refused_then_retried']} 503s retried while opening)",
            "",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency-orders", type=int, default=500, help="orders timed one at a time in (b)")
    parser.add_argument("--streams", type=int, default=10_000, help="streams (and WebSockets) held open in (c), (e)")
    parser.add_argument("--fanout-clients", type=int, default=1_000, help="streams in (d)")
    parser.add_argument("--fanout-orders", type=int, default=10, help="orders each (d) stream watches")
    parser.add_argument("--fanout-versions", type=int, default=2_000, help="versions written in (d), over those orders")
    parser.add_argument("--fanout-small-versions", type=int, default=200, help="versions in (d)'s second pass")
    args = parser.parse_args()
    open_files = raise_open_files(args.streams + STREAMS_HEADROOM)
    env = {"STATEGATE_MAX_STREAMS": str(args.streams + STREAMS_HEADROOM)}

    with tempfile.TemporaryDirectory(prefix="stategate-bench-") as tmp:
        data = Path(tmp)
        with broker_process(data) as (bootstrap, kafka):
            asyncio.run(kafka_hop(bootstrap, 1000))
            floor = summary_ms(asyncio.run(kafka_hop(bootstrap, 500)))
            with deployment(bootstrap, data, nodes=2, services=False, env=env) as cluster:
                urls = [url for url, _ in cluster.nodes]
                wait_two_members(urls)
                broker_pid = kafka.process.pid if kafka is not None and kafka.process is not None else None
                measured = asyncio.run(
                    measure(
                        args,
                        bootstrap,
                        broker_pid,
                        f"{cluster.namespace}.orders",
                        [(url, process.pid) for url, process in cluster.nodes],
                    )
                )

    target_ms = round(FLOOR_P50_FACTOR * floor["p50_ms"] + FLOOR_P50_PLUS_MS, 2)
    non_owner, owner = measured["change_to_event_non_owner"], measured["change_to_event_owner"]
    held, ws = measured["held_sse_streams"], measured["websockets"]
    result: dict[str, Any] = {
        "setup": {
            "nodes": 2,
            "services": False,
            "writer": "the benchmark, straight to `orders` (aiokafka, acks=all)",
            "client": "raw asyncio streams, one connection per stream",
            "rlimit_nofile": open_files,
            "max_streams": args.streams + STREAMS_HEADROOM,
        },
        "floor_kafka_hop": floor,
        **measured,
        "targets": {
            "change_to_event_p50_ms": target_ms,
            "change_to_event_rule": f"p50 <= {FLOOR_P50_FACTOR} x floor p50 + {FLOOR_P50_PLUS_MS} ms",
            "kib_per_stream": MEMORY_TARGET_KIB,
        },
    }
    saved = save_result("live", result)

    def met(ok: bool) -> str:
        return "met" if ok else "MISSED"

    ratio = non_owner["p50_ms"] / floor["p50_ms"]
    if ws["measured"]:
        ws_row = (
            f"(e) {ws['websockets']:,} WebSockets open on one node",
            f"+{ws['extra_rss_mb']} MiB = {ws['kib_per_websocket']} KiB each",
            f"< {MEMORY_TARGET_KIB:.0f} KiB: {met(ws['kib_per_websocket'] < MEMORY_TARGET_KIB)}",
        )
    else:
        ws_row = (
            "(e) WebSockets open on one node",
            f"not measured (no /v1/ws yet: handshake answered {ws['handshake_status']})",
            "",
        )
    rows = [
        ("(a) raw Kafka hop (floor), p50 / p99", f"{floor['p50_ms']:.2f} / {floor['p99_ms']:.2f} ms", ""),
        (
            "(b) change → SSE event, non-owner, p50 / p99",
            f"{non_owner['p50_ms']:.2f} / {non_owner['p99_ms']:.2f} ms ({ratio:.2f} × floor)",
            f"p50 ≤ {target_ms:.2f} ms: {met(non_owner['p50_ms'] <= target_ms)}",
        ),
        (
            "(b) the same, from Kafka's ack, non-owner / owner p50",
            f"{measured['ack_to_event_non_owner']['p50_ms']:.2f} / {measured['ack_to_event_owner']['p50_ms']:.2f} ms",
            "",
        ),
        (
            "(b) the same on the owner, p50 / p99",
            f"{owner['p50_ms']:.2f} / {owner['p99_ms']:.2f} ms ({owner['p50_ms'] / floor['p50_ms']:.2f} × floor)",
            "",
        ),
        (
            f"(c) {held['streams']:,} SSE streams open on one node",
            f"+{held['extra_rss_mb']} MiB = {held['kib_per_stream']} KiB each; "
            f"{held['snapshots_received']:,} snapshots, gauge {held['gauge_while_open']:.0f}, "
            f"{held['refused_then_retried']} 503s retried",
            f"< {MEMORY_TARGET_KIB:.0f} KiB: {met(held['kib_per_stream'] < MEMORY_TARGET_KIB)}",
        ),
        *fan_out_rows(measured["fan_out"], "burst"),
        *fan_out_rows(measured["fan_out_within_backlog"], "within the backlog"),
        ws_row,
    ]
    print_table(("measurement", "result", "target"), rows)
    print(f"\nsaved {saved}")


if __name__ == "__main__":
    main()
