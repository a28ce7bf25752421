"""A WebSocket that reconnects to another node loses no reply (real broker, two nodes, a service the test drives).

The service `held` is a plain aiokafka loop in the test that answers only
when told to, so that the reply is written while the client's socket is
closed and after the client has reconnected elsewhere.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from websockets.sync.client import connect

from .conftest import new_namespace
from .processes import Node, start_nodes, system_env, wait_for
from .test_live_socket import receive, until, ws_url


class HeldService:
    """Reads requests from its topic; answers each with a three-part streaming reply when released."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.requests: list[dict[str, str]] = []
        self.release = threading.Event()
        self.stopped = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def start(self) -> HeldService:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopped.set()
        self.release.set()
        self._thread.join(10)

    async def _run(self) -> None:
        consumer = AIOKafkaConsumer(self.topic, bootstrap_servers=self.bootstrap, auto_offset_reset="earliest")
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all")
        await consumer.start()
        await producer.start()
        try:
            while not self.stopped.is_set():
                batches = await consumer.getmany(timeout_ms=200)
                for records in batches.values():
                    for record in records:
                        headers = {name: (value or b"").decode() for name, value in record.headers}
                        self.requests.append(headers)
                        await asyncio.to_thread(self.release.wait)
                        if self.stopped.is_set():
                            return
                        await self._reply(producer, headers)
        finally:
            await consumer.stop()
            await producer.stop()

    async def _reply(self, producer: AIOKafkaProducer, request: dict[str, str]) -> None:
        key = request["correlation-id"].encode()
        for i, batch in ((0, b"more"), (1, b"more"), (2, b"end")):
            headers = [(":status", b"200"), ("content-type", b"application/x-ndjson"), ("batch", batch)]
            value = b"" if batch == b"end" else orjson.dumps({"part": i})
            await producer.send_and_wait(request["reply-to"], value, key=key, headers=headers)


class TwoNodesAndAService:
    def __init__(self, root: Path, bootstrap: str) -> None:
        self.namespace = new_namespace("sessions")
        topic = f"{self.namespace}.held-requests"
        env = system_env(bootstrap, self.namespace, STATEGATE_SERVICES=f"held={topic}")
        self.nodes = [Node(root / f"node-{i}", env, node_id=f"node-{i}") for i in (1, 2)]
        self.service = HeldService(bootstrap, topic)

    def start(self) -> TwoNodesAndAService:
        try:
            start_nodes(self.nodes)
            self.service.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        self.service.stop()
        for node in self.nodes:
            node.stop()


@pytest.fixture()
def held(kafka: str, tmp_path: Path) -> Iterator[TwoNodesAndAService]:
    running = TwoNodesAndAService(tmp_path, kafka).start()
    try:
        yield running
    finally:
        running.stop()


def test_a_reply_that_arrives_while_the_client_moves_to_another_node_reaches_it_there(
    held: TwoNodesAndAService,
) -> None:
    first, second = held.nodes
    with connect(ws_url(first.url)) as socket:
        hello = receive(socket)
        session = hello["session"]
        socket.send(orjson.dumps({"op": "call", "ref": "slow", "service": "held", "path": "/x"}).decode())
        wait_for(lambda: len(held.service.requests) == 1, 15, "the service to get the request")
    # The socket is closed; the client comes back on the other node, having seen nothing of the call.
    with connect(ws_url(second.url, f"session={session}&seen=0")) as socket:
        hello = receive(socket)
        assert hello == {"type": "hello", "node": "node-2", "session": session, "resumed": True}
        held.service.release.set()  # the reply is written now: to node-1's reply partition
        parts = until(socket, lambda m: m.get("more") is False)
    assert [p["ref"] for p in parts] == ["slow"] * 3
    assert [p["body"] for p in parts] == [{"part": 0}, {"part": 1}, ""]
    assert [p["seq"] for p in parts] == [1, 2, 3]
    assert first.metric("stategate_live_subscriptions") == 0


def test_a_client_that_comes_back_to_the_same_node_gets_what_it_missed_once(held: TwoNodesAndAService) -> None:
    node = held.nodes[0]
    held.service.release.set()
    with connect(ws_url(node.url)) as socket:
        session = receive(socket)["session"]
        socket.send(orjson.dumps({"op": "call", "ref": "a", "service": "held", "path": "/a"}).decode())
        first_part = receive(socket)
        assert first_part["seq"] == 1
    with connect(ws_url(node.url, f"session={session}&seen=1")) as socket:
        hello = receive(socket)
        assert hello["resumed"] is True
        rest: list[dict[str, Any]] = until(socket, lambda m: m.get("more") is False)
    assert [p["seq"] for p in rest] == [2, 3]


def test_an_unknown_session_starts_afresh(held: TwoNodesAndAService) -> None:
    for node in held.nodes:
        with connect(ws_url(node.url, "session=nobody-0000&seen=3")) as socket:
            hello = receive(socket)
            assert hello["resumed"] is False and hello["session"] != "nobody-0000"
