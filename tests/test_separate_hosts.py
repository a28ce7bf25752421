"""Every process on a host of its own: the broker, two gateway nodes and the services in network namespaces.

Each host has its own address on one bridge (tests/netns.py) and no loopback
in common with any other, so these tests fail wherever something assumes
one: advertised URLs, peer probes, redirects, reply hand-overs. Then the
network breaks: the link between the two nodes, and the link between one
node and Kafka. The test itself is the clients, in the root namespace.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from stategate.app.broker import LocalKafka
from stategate.streams.erasable_keys import partition_for

from . import netns
from .conftest import new_namespace
from .netns import Host, Network
from .processes import Node, Stategate, system_env, wait_for
from .test_cluster import PARTITIONS, order_body, settled, stock_jumpers
from .test_service_calls import PlainService, create_topics

pytestmark = pytest.mark.skipif(not netns.available(), reason="network namespaces need root and iproute2")

SESSION_SECONDS = 6.0  # the default STATEGATE_SESSION_TIMEOUT_SECONDS


@dataclass
class Hosts:
    """The network, the broker, the nodes and the services, each process on a host of its own."""

    network: Network
    kafka_host: Host
    broker: LocalKafka
    node_hosts: list[Host]
    nodes: list[Node]
    services: Stategate
    misrouted_topic: str

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        self.services.stop()
        self.broker.stop()
        self.network.close()


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hosts]:
    root: Path = tmp_path_factory.mktemp("hosts")
    network = Network()
    running: Hosts | None = None
    try:
        kafka_host = network.host("kafka")
        broker = LocalKafka(root / "kafka", port=9092, host=kafka_host.address, command_prefix=kafka_host.prefix)
        broker.start()
        namespace = new_namespace("hosts")
        misrouted = f"{namespace}.misrouted-requests"
        env = system_env(broker.bootstrap, namespace, STATEGATE_SERVICES=f"misrouted={misrouted}")
        asyncio.run(create_topics(broker.bootstrap, [misrouted]))
        node_hosts = [network.host(f"node-{i}") for i in (1, 2)]
        nodes = [
            Node(root / f"node-{i}", env, node_id=f"node-{i}", port=8080, host=host.address, prefix=host.prefix)
            for i, host in enumerate(node_hosts, start=1)
        ]
        services_host = network.host("services")
        services = Stategate("services", root / "services", env, prefix=services_host.prefix)
        running = Hosts(network, kafka_host, broker, node_hosts, nodes, services, misrouted)
        services.start()
        for node in nodes:
            node.start()
        wait_for(lambda: settled(nodes), 90, "the two nodes to settle", interval=0.2)
        stock_jumpers(nodes[0].url)
        yield running
    finally:
        if running is not None:
            running.stop()
        else:
            network.close()


def owned_by(node: Node, other: Node) -> str:
    """An order id that `node` owns, placed (VALIDATED) through `other`."""
    placed = httpx.post(
        f"{node.url}/v1/orders", params={"wait_for": "VALIDATED"}, json=order_body(), timeout=20
    )  # no id: the node makes one it owns
    assert placed.status_code == 201, placed.text
    order_id = str(placed.json()["id"])
    assert httpx.get(f"{other.url}/v1/orders/{order_id}", timeout=10).status_code == 307
    return order_id


def test_nodes_on_hosts_of_their_own_know_redirect_and_hand_over_by_their_advertised_urls(hosts: Hosts) -> None:
    first, second = hosts.nodes
    cluster = httpx.get(f"{first.url}/v1/cluster", timeout=5).json()
    assert {(n["url"], n["answers"]) for n in cluster["nodes"]} == {(first.url, True), (second.url, True)}

    order_id = owned_by(second, first)
    redirected = httpx.get(f"{first.url}/v1/orders/{order_id}", timeout=10)
    assert redirected.status_code == 307
    assert redirected.headers["location"] == f"{second.url}/v1/orders/{order_id}"  # the owner's host, not loopback
    again = httpx.post(
        f"{first.url}/v1/orders",
        params={"wait_for": "VALIDATED"},
        json=order_body(id=f"placed-elsewhere-{uuid.uuid4().hex}"),
        timeout=20,
        follow_redirects=True,
    )
    assert again.status_code in (200, 201) and again.json()["state"] == "VALIDATED", again.text

    # A reply put on the other node's partition reaches the waiting node through a hand-over between hosts.
    other_partitions = httpx.get(f"{second.url}/v1/cluster", timeout=5).json()["reply_partitions"]

    async def misrouted_call() -> httpx.Response:
        async with PlainService(hosts.bootstrap, hosts.misrouted_topic) as service, httpx.AsyncClient() as client:
            call = asyncio.create_task(client.get(f"{first.url}/v1/services/misrouted/x", timeout=30))
            [request] = await service.requests(1)
            correlation_id = dict(request.headers)["correlation-id"]
            assert partition_for(correlation_id, PARTITIONS) not in other_partitions
            await service.reply(request, 200, b'{"via": "the other host"}', partition=other_partitions[0])
            return await call

    answer = asyncio.run(misrouted_call())
    assert (answer.status_code, answer.json()) == (200, {"via": "the other host"})


def test_with_the_link_between_the_nodes_cut_each_serves_its_own_and_the_other_s_orders_are_503_or_307(
    hosts: Hosts,
) -> None:
    first, second = hosts.nodes
    theirs = owned_by(second, first)
    hosts.network.cut(*hosts.node_hosts)
    try:
        # Each node still reads and writes Kafka: orders it owns are placed and validated as before.
        for node in hosts.nodes:
            placed = httpx.post(
                f"{node.url}/v1/orders", params={"wait_for": "VALIDATED"}, json=order_body(), timeout=20
            )
            assert placed.status_code == 201 and placed.json()["state"] == "VALIDATED", placed.text
        # A node that cannot reach the owner of an order says so once its probe notices: 503 + Retry-After.
        # Before that it redirects: the client may reach the owner even though this node cannot.

        def told_to_retry() -> bool:
            answer = httpx.get(f"{first.url}/v1/orders/{theirs}", timeout=10)
            assert answer.status_code in (307, 503), answer.text
            return answer.status_code == 503 and "retry-after" in answer.headers

        wait_for(told_to_retry, 30, "the first node to notice the second does not answer", interval=0.5)
        owner_answer = httpx.get(f"{second.url}/v1/orders/{theirs}", timeout=10)
        assert owner_answer.status_code == 200  # the owner itself still answers its clients
    finally:
        hosts.network.mend(*hosts.node_hosts)
    wait_for(lambda: settled(hosts.nodes), 60, "the nodes to see each other again", interval=0.5)
    assert httpx.get(f"{first.url}/v1/orders/{theirs}", timeout=10).status_code == 307


def test_a_node_cut_from_kafka_gives_its_orders_up_within_the_session_and_never_answers_them_stale(
    hosts: Hosts,
) -> None:
    first, second = hosts.nodes
    mine = owned_by(first, second)
    answers: list[tuple[float, int]] = []
    stop = threading.Event()

    def watch() -> None:  # a client reading the order from the cut-off node all along
        with httpx.Client(timeout=5) as client:
            while not stop.is_set():
                try:
                    status = client.get(f"{first.url}/v1/orders/{mine}").status_code
                except httpx.HTTPError:
                    status = 0
                answers.append((time.monotonic(), status))
                stop.wait(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    cut_at = time.monotonic()
    hosts.network.cut(hosts.node_hosts[0], hosts.kafka_host)
    try:

        def second_owns_everything() -> bool:
            view = httpx.get(f"{second.url}/v1/cluster", timeout=5).json()
            return [n["url"] for n in view["nodes"]] == [second.url] and httpx.get(
                f"{second.url}/v1/orders/{mine}", timeout=5
            ).status_code == 200

        wait_for(second_owns_everything, SESSION_SECONDS + 30, "the second node to own the cut-off node's orders")
        took_over = time.monotonic() - cut_at
        wait_for(lambda: len([a for a in answers if a[0] > cut_at + took_over]) >= 10, 10, "more answers")
        stop.set()
        watcher.join(10)
        after_takeover = {status for at, status in answers if at >= cut_at + took_over}
        assert after_takeover == {503}, f"the cut-off node answered {after_takeover} once the other owned the order"
        fenced = next(at for at, status in answers if at >= cut_at and status == 503) - cut_at
        assert fenced < SESSION_SECONDS, f"the cut-off node answered 200 for {fenced:.1f}s after the cut"
        assert httpx.get(f"{first.url}/readyz", timeout=5).status_code == 503
        print(f"cut → first node 503: {fenced:.1f}s; cut → second node owns everything: {took_over:.1f}s")
    finally:
        stop.set()
        watcher.join(10)
        hosts.network.mend(hosts.node_hosts[0], hosts.kafka_host)
    wait_for(lambda: settled(hosts.nodes), 90, "the first node to rejoin", interval=0.5)
    assert httpx.get(f"{first.url}/v1/orders/{mine}", timeout=10, follow_redirects=True).status_code == 200
