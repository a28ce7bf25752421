"""Live updates across two nodes: any node streams any order, and a stream resumes anywhere (real broker, real nodes).

No services run here: every version of an order is written by the test
itself, straight to `orders` (as any producer may), so the test decides
when the flow is "in the middle".
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from stategate.streams.erasable_keys import partition_for

from .conftest import new_namespace
from .processes import Node, start_nodes, system_env, wait_for
from .sse import Event, Reader

PARTITIONS = 12


class TwoNodes:
    """Two gateway nodes in one namespace, no services; node-2 keeps only 2 records per partition in memory."""

    def __init__(self, root: Path, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.namespace = new_namespace("live")
        env = system_env(
            bootstrap,
            self.namespace,
            STATEGATE_HEARTBEAT_SECONDS="0.5",
            STATEGATE_SLOW_CLIENT_SECONDS="3",
            STATEGATE_STREAM_BACKLOG="100",
        )
        self.root = root
        self.env = env
        self.nodes = [
            Node(root / "node-1", env, node_id="node-1"),
            Node(root / "node-2", {**env, "STATEGATE_FEED_HISTORY": "2"}, node_id="node-2"),
        ]

    def start(self) -> TwoNodes:
        try:
            start_nodes(self.nodes)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def owner_and_other(self, order_id: str) -> tuple[Node, Node]:
        partition = partition_for(order_id.encode(), PARTITIONS)
        view = httpx.get(f"{self.nodes[0].url}/v1/cluster", timeout=5).json()
        owner_url = next(n["url"] for n in view["nodes"] if partition in n["partitions"])
        owner = next(node for node in self.nodes if node.url == owner_url)
        return owner, next(node for node in self.nodes if node is not owner)

    def write(self, *orders: dict[str, object]) -> None:
        """Write order versions to `orders`, keyed by id, as any producer may; wait for the acknowledgements."""

        async def send() -> None:
            producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all", linger_ms=5)
            await producer.start()
            try:
                sent = [
                    await producer.send(f"{self.namespace}.orders", orjson.dumps(o), key=str(o["id"]).encode())
                    for o in orders
                ]
                await asyncio.gather(*sent)
            finally:
                await producer.stop()

        asyncio.run(send())


@pytest.fixture(scope="module")
def nodes(kafka: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoNodes]:
    running = TwoNodes(tmp_path_factory.mktemp("live"), kafka).start()
    try:
        yield running
    finally:
        running.stop()


def version(order_id: str, number: int, state: str = "CREATED", customer: str = "c-live") -> dict[str, object]:
    now = "2026-11-29T00:00:00+00:00"
    return {
        "id": order_id,
        "customer_id": customer,
        "product": "JUMPERS",
        "quantity": 1,
        "price": 1.0,
        "state": state,
        "version": number,
        "validations": {},
        "created_at": now,
        "updated_at": now,
    }


def new_id() -> str:
    return f"live-{uuid.uuid4().hex[:12]}"


class Listener:
    """Reads an SSE stream in a thread, so the test can write versions while it listens."""

    def __init__(self, url: str, headers: dict[str, str] | None = None, stop_after: int | None = None) -> None:
        self.url = url
        self.headers = headers or {}
        self.stop_after = stop_after
        self.events: list[Event] = []
        self.status: int | None = None
        self.response_headers: httpx.Headers | None = None
        self.node: str | None = None
        self.last_id: str | None = None
        self.reader: Reader | None = None
        self.finished = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Listener:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            with httpx.stream("GET", self.url, headers=self.headers, timeout=30) as response:
                self.status = response.status_code
                self.response_headers = response.headers
                self.node = response.headers.get("x-stategate-node")
                self.reader = reader = Reader(response)
                for event in reader:
                    self.events.append(event)
                    self.last_id = reader.last_id
                    if self.stop_after is not None and len(self.events) >= self.stop_after:
                        return  # leaves the stream: the connection closes
        finally:
            self.finished.set()

    @property
    def comments(self) -> int:
        """Comment lines (keep-alives) read so far."""
        return 0 if self.reader is None else self.reader.comments

    def wait_events(self, count: int, timeout: float = 15) -> None:
        wait_for(lambda: len(self.events) >= count or self.finished.is_set(), timeout, f"{count} events")
        assert len(self.events) >= count, [e.data for e in self.events]

    def join(self, timeout: float = 15) -> None:
        assert self.finished.wait(timeout), "the stream did not end"

    def versions(self) -> list[int]:
        return [int(event.json()["version"]) for event in self.events if event.event == "order"]


def test_a_non_owner_streams_an_order_another_node_owns(nodes: TwoNodes) -> None:
    order_id = new_id()
    owner, other = nodes.owner_and_other(order_id)
    nodes.write(version(order_id, 1))
    listener = Listener(f"{other.url}/v1/orders/{order_id}/events").start()
    listener.wait_events(1)
    assert listener.status == 200 and listener.node == other.node_id != owner.node_id
    nodes.write(version(order_id, 2), version(order_id, 3, "VALIDATED"))
    listener.join()
    assert listener.versions() == [1, 2, 3]
    assert listener.events[0].id is not None and listener.events[-1].id is not None


def test_an_order_that_appears_later_is_streamed_from_its_first_version(nodes: TwoNodes) -> None:
    order_id = new_id()
    node = nodes.nodes[0]
    listener = Listener(f"{node.url}/v1/orders/{order_id}/events?timeout=20").start()
    wait_for(lambda: node.metric("stategate_live_subscriptions") == 1, 10, "the stream to be registered")
    nodes.write(version(order_id, 1), version(order_id, 2, "FAILED"))
    listener.join()
    assert listener.status == 200 and listener.versions() == [1, 2]


def test_heartbeats_do_not_end_the_wait_for_an_order_to_appear(nodes: TwoNodes) -> None:
    """The nodes here beat every 0.5 s: a wait of 20 s for an unknown order outlasts several beats, then streams it."""
    order_id = new_id()
    node = nodes.nodes[1]
    listener = Listener(f"{node.url}/v1/orders/{order_id}/events?timeout=20").start()
    wait_for(lambda: node.metric("stategate_live_subscriptions") == 1, 10, "the stream to be registered")
    assert not listener.finished.wait(2.0), f"answered {listener.status} before the order appeared"  # 4 beats
    nodes.write(version(order_id, 1), version(order_id, 2, "VALIDATED"))
    listener.join()
    assert listener.status == 200 and listener.versions() == [1, 2]


def test_an_unknown_order_is_404_after_the_timeout(nodes: TwoNodes) -> None:
    response = httpx.get(f"{nodes.nodes[1].url}/v1/orders/{new_id()}/events?timeout=0.5", timeout=10)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("resume_on", ["node-1", "node-2"])
def test_resuming_with_last_event_id_on_either_node_misses_nothing_and_repeats_nothing(
    nodes: TwoNodes, resume_on: str
) -> None:
    order_id = new_id()
    nodes.write(version(order_id, 1))
    first = Listener(f"{nodes.nodes[0].url}/v1/orders/{order_id}/events", stop_after=2).start()
    first.wait_events(1)
    nodes.write(version(order_id, 2))
    first.join()
    assert first.versions() == [1, 2] and first.last_id is not None
    # While the client is away: two versions of this order, and records of other orders on every
    # partition, so that node-2 (2 records in memory per partition) must read Kafka to resume.
    others = [version(new_id(), 1) for _ in range(60)]
    nodes.write(version(order_id, 3), *others, version(order_id, 4), *others[:30])
    node = next(n for n in nodes.nodes if n.node_id == resume_on)
    second = Listener(f"{node.url}/v1/orders/{order_id}/events", headers={"Last-Event-ID": first.last_id}).start()
    second.wait_events(2)
    nodes.write(version(order_id, 5, "VALIDATED"))
    second.join()
    assert second.versions() == [3, 4, 5]


def test_an_id_from_elsewhere_gives_a_fresh_snapshot(nodes: TwoNodes) -> None:
    order_id = new_id()
    nodes.write(version(order_id, 1), version(order_id, 2, "VALIDATED"))
    wait_for(lambda: _state(nodes, order_id) == "VALIDATED", 10, "the order to be validated")
    for bad in ("garbage", "99:1", "0:x", "1:2,1:3"):
        response = httpx.get(
            f"{nodes.nodes[0].url}/v1/orders/{order_id}/events", headers={"Last-Event-ID": bad}, timeout=10
        )
        assert response.status_code == 200
        assert response.text.count("event: order") == 1 and '"version":2' in response.text


def test_one_stream_for_several_orders_ends_when_all_are_terminal(nodes: TwoNodes) -> None:
    a, b = new_id(), new_id()
    nodes.write(version(a, 1), version(b, 1))
    listener = Listener(f"{nodes.nodes[1].url}/v1/events?orders={a},{b}").start()
    listener.wait_events(2)
    nodes.write(version(a, 2, "VALIDATED"))
    listener.wait_events(3)
    assert not listener.finished.wait(0.5)
    nodes.write(version(b, 2, "FAILED"))
    listener.join()
    seen = [(e.json()["id"], e.json()["version"]) for e in listener.events]
    assert sorted(seen) == sorted([(a, 1), (b, 1), (a, 2), (b, 2)])


def test_idle_streams_get_keep_alive_comments(nodes: TwoNodes) -> None:
    order_id = new_id()
    nodes.write(version(order_id, 1))
    listener = Listener(f"{nodes.nodes[0].url}/v1/orders/{order_id}/events").start()
    wait_for(lambda: listener.comments >= 2, 10, "two keep-alive comments (0.5 s apart)")
    nodes.write(version(order_id, 2, "VALIDATED"))
    listener.join()


def test_bad_requests_get_problems_before_any_stream(nodes: TwoNodes) -> None:
    url = nodes.nodes[0].url
    cases = {
        f"{url}/v1/orders/{'x' * 65}/events": 422,
        f"{url}/v1/orders/bad%20id/events": 422,
        f"{url}/v1/events": 422,
        f"{url}/v1/events?orders=a&customer_id=b": 422,
        f"{url}/v1/events?orders=" + ",".join(f"o{i}" for i in range(101)): 422,
        f"{url}/v1/events?orders=a,,b%20c": 422,
        f"{url}/v1/orders/a/events?timeout=61": 422,
    }
    for target, status in cases.items():
        response = httpx.get(target, timeout=10)
        assert response.status_code == status, (target, response.status_code, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    refused = httpx.get(f"{url}/v1/orders/a/events", headers={"Accept": "application/json"}, timeout=10)
    assert refused.status_code == 406


def _state(nodes: TwoNodes, order_id: str) -> str | None:
    response = httpx.get(f"{nodes.nodes[0].url}/v1/orders/{order_id}", timeout=5, follow_redirects=True)
    return str(response.json()["state"]) if response.status_code == 200 else None


def test_a_slow_reader_is_dropped_while_a_fast_one_keeps_up(nodes: TwoNodes) -> None:
    node = nodes.nodes[0]
    ids = [new_id() for _ in range(20)]
    nodes.write(*(version(order_id, 1) for order_id in ids))
    target = f"/v1/events?orders={','.join(ids)}"
    fast = Listener(node.url + target).start()
    fast.wait_events(len(ids))
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # takes little, and then nothing
    slow.connect(("127.0.0.1", node.port))
    slow.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n".encode())
    dropped = 'stategate_live_clients_dropped_total{kind="sse"}'
    before = node.metric(dropped)
    padding = {"note": "x" * 5000}  # 5 KB an event: the slow reader's buffers fill after a few thousand
    last = 100
    nodes.write(
        *(
            {**version(order_id, n, "VALIDATED" if n == last else "CREATED"), "validations": padding}
            for n in range(2, last + 1)
            for order_id in ids
        )
    )
    fast.join(timeout=60)
    final = {e.json()["id"]: e.json()["version"] for e in fast.events}
    assert final == dict.fromkeys(ids, last)
    for order_id in ids:
        versions = [e.json()["version"] for e in fast.events if e.json()["id"] == order_id]
        assert versions == sorted(set(versions)), versions  # in order, no duplicate (conflated only if behind)
    wait_for(lambda: node.metric(dropped) == before + 1, 20, "the slow reader to be dropped")
    slow.settimeout(10)
    with pytest.raises((ConnectionResetError, TimeoutError)):
        while slow.recv(1 << 20):  # what the node had sent, then the cut: a reset, never a clean end
            pass
        raise ConnectionResetError("the stream ended without a reset")
    slow.close()


def test_a_thousand_streams_on_one_node_each_get_the_change(nodes: TwoNodes) -> None:
    node = nodes.nodes[1]
    order_id = new_id()
    nodes.write(version(order_id, 1))

    async def listen(client: httpx.AsyncClient, opened: asyncio.Queue[None]) -> list[int]:
        versions = []
        async with client.stream("GET", f"{node.url}/v1/orders/{order_id}/events") as response:
            assert response.status_code == 200
            async for line in response.aiter_lines():
                if line.startswith("data: "):
                    versions.append(int(orjson.loads(line[6:])["version"]))
                    if len(versions) == 1:
                        opened.put_nowait(None)
        return versions

    open_streams = 'stategate_live_streams{kind="sse"}'
    before = node.metric(open_streams)  # streams of earlier tests may still be closing

    async def run() -> list[list[int]]:
        limits = httpx.Limits(max_connections=1100)
        async with httpx.AsyncClient(limits=limits, timeout=60) as client:
            opened: asyncio.Queue[None] = asyncio.Queue()
            listeners = [asyncio.create_task(listen(client, opened)) for _ in range(1000)]
            deadline = time.monotonic() + 60
            while opened.qsize() < 1000:  # every stream has its snapshot; a listener that failed fails the test
                failed = next((t for t in listeners if t.done() and t.exception() is not None), None)
                if failed is not None:
                    raise AssertionError("a stream failed") from failed.exception()
                assert time.monotonic() < deadline, f"{opened.qsize()} of 1000 streams opened in 60 s"
                await asyncio.sleep(0.05)
            assert node.metric(open_streams) >= 1000
            await asyncio.to_thread(nodes.write, version(order_id, 2, "VALIDATED"))
            return await asyncio.gather(*listeners)

    results = asyncio.run(run())
    assert all(versions == [1, 2] for versions in results)
    wait_for(lambda: node.metric(open_streams) <= before, 10, "every stream to close")


def test_an_id_ahead_of_kafka_gives_a_fresh_snapshot_not_an_error(nodes: TwoNodes) -> None:
    order_id = new_id()
    nodes.write(version(order_id, 1), version(order_id, 2, "VALIDATED"))
    wait_for(lambda: _state(nodes, order_id) == "VALIDATED", 10, "the order to be validated")
    partition = partition_for(order_id.encode(), PARTITIONS)
    response = httpx.get(
        f"{nodes.nodes[1].url}/v1/orders/{order_id}/events",
        headers={"Last-Event-ID": f"{partition}:999999999"},
        timeout=15,
    )
    assert response.status_code == 200
    assert response.text.count("event: order") == 1 and '"version":2' in response.text


def test_a_node_joining_while_streams_are_open_loses_no_event(nodes: TwoNodes) -> None:
    ids = [new_id() for _ in range(24)]
    nodes.write(*(version(order_id, 1) for order_id in ids))
    listeners = [Listener(f"{node.url}/v1/events?orders={','.join(ids)}").start() for node in nodes.nodes]
    for listener in listeners:
        listener.wait_events(len(ids))
    third = Node(nodes.root / "node-3", nodes.env, node_id="node-3")
    third.start()
    try:
        n = 1
        while not third.is_ready() or n < 10:  # versions keep coming while the group rebalances
            n += 1
            nodes.write(*(version(order_id, n) for order_id in ids))
            assert n < 200, "node-3 did not become ready"
        nodes.write(*(version(order_id, n + 1, "VALIDATED") for order_id in ids))
        for listener in listeners:
            listener.join(timeout=30)
            for order_id in ids:
                versions = [e.json()["version"] for e in listener.events if e.json()["id"] == order_id]
                assert versions == list(range(1, n + 2)), (order_id, versions)
    finally:
        third.stop()
