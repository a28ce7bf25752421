"""Several gateway nodes: ownership, redirects, server-made ids, /v1/cluster (real broker, real nodes)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from stategate.app.broker import free_port
from stategate.streams.erasable_keys import business_key

from .conftest import new_namespace
from .processes import Node, Stategate, system_env, wait_for

PARTITIONS = 12  # the default


class Cluster:
    """Gateway nodes (two unless told) and the services in one namespace."""

    def __init__(self, root: Path, bootstrap: str, size: int = 2, **env: str) -> None:
        self.namespace = new_namespace("cluster")
        self.env = system_env(bootstrap, self.namespace, **env)
        self.services = Stategate("services", root / "services", self.env)
        self.nodes = [Node(root / f"node-{i}", self.env, node_id=f"node-{i}") for i in range(1, size + 1)]

    def start(self) -> Cluster:
        """Start everything and wait until it has settled; stop it all if it does not."""
        try:
            self.services.start()
            for node in self.nodes:
                node.start()
            for node in self.nodes:
                node.wait_ready()
            wait_for(self.settled, 60, "both nodes to own partitions", interval=0.2)
        except BaseException:
            self.stop()
            raise
        return self

    def settled(self) -> bool:
        """Every node reports the same members, all of them, which share all partitions."""
        return settled(self.nodes)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        self.services.stop()

    def partitions_of(self, node: Node) -> list[int]:
        view = httpx.get(f"{node.url}/v1/cluster", timeout=5).json()
        return next(n["partitions"] for n in view["nodes"] if n["url"] == node.url)


def settled(nodes: list[Node]) -> bool:
    """Every node is ready and reports the same members, all of them answering, which share all partitions."""
    views = []
    for node in nodes:
        try:
            if httpx.get(f"{node.url}/readyz", timeout=5).status_code != 200:
                return False  # still recovering tables or standbys
            views.append(httpx.get(f"{node.url}/v1/cluster", timeout=5).json())
        except httpx.HTTPError:
            return False
    members = [sorted((n["url"], tuple(n["partitions"])) for n in v["nodes"]) for v in views]
    owned = sorted(p for n in views[0]["nodes"] for p in n["partitions"])
    same = all(m == members[0] for m in members)
    answering = all(n["answers"] for v in views for n in v["nodes"])  # each sees the others' HTTP up
    return same and answering and len(members[0]) == len(nodes) and owned == list(range(PARTITIONS))


@pytest.fixture(scope="module")
def cluster(kafka: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    running = Cluster(tmp_path_factory.mktemp("cluster"), kafka).start()
    try:
        stock_jumpers(running.nodes[0].url)
        yield running
    finally:
        running.stop()


def stock_jumpers(url: str) -> None:
    """Plenty of JUMPERS, and wait until the services have the stock (an order validates)."""
    httpx.put(f"{url}/v1/inventory/JUMPERS", json={"stock": 100_000}, timeout=10)

    def validates() -> bool:
        placed = httpx.post(f"{url}/v1/orders", params={"wait_for": "VALIDATED"}, json=order_body(), timeout=15)
        return bool(placed.json()["state"] == "VALIDATED")

    wait_for(validates, 30, "the stock to reach the services", interval=0.2)


def order_body(**extra: object) -> dict[str, object]:
    return {"customer_id": f"c-{uuid.uuid4().hex[:8]}", "product": "JUMPERS", "quantity": 1, "price": 1.0, **extra}


def test_cluster_lists_every_live_node_with_its_partitions(cluster: Cluster) -> None:
    view = httpx.get(f"{cluster.nodes[0].url}/v1/cluster", timeout=5).json()
    assert view["self"] == "node-1"
    assert {(n["id"], n["url"]) for n in view["nodes"]} == {(n.node_id, n.url) for n in cluster.nodes}
    assert sorted(p for n in view["nodes"] for p in n["partitions"]) == list(range(PARTITIONS))


def test_server_made_ids_never_redirect(cluster: Cluster) -> None:
    for node in cluster.nodes:
        for _ in range(10):
            response = httpx.post(
                f"{node.url}/v1/orders",
                params={"wait_for": "VALIDATED", "timeout": "30"},
                json=order_body(),
                timeout=40,
            )
            assert response.status_code == 201, (response.status_code, response.headers, response.text)
            assert response.headers["x-stategate-node"] == node.node_id
            assert response.json()["state"] == "VALIDATED"


def test_get_on_a_non_owner_redirects_to_the_owner_for_every_key(cluster: Cluster) -> None:
    first, second = cluster.nodes
    ids = [
        httpx.post(f"{node.url}/v1/orders", json=order_body(), timeout=10).json()["id"]
        for node in (first, second)
        for _ in range(100)
    ]
    for order_id in ids:
        answers = {}
        for node in cluster.nodes:
            response = httpx.get(f"{node.url}/v1/orders/{order_id}?wait_for=CREATED&timeout=5", timeout=10)
            answers[node.node_id] = response
        owners = [n for n, r in answers.items() if r.status_code == 200]
        redirects = [r for r in answers.values() if r.status_code == 307]
        assert len(owners) == 1 and len(redirects) == 1, {n: r.status_code for n, r in answers.items()}
        owner = next(n for n in cluster.nodes if n.node_id == owners[0])
        assert redirects[0].headers["location"] == f"{owner.url}/v1/orders/{order_id}?wait_for=CREATED&timeout=5"
        assert answers[owner.node_id].json()["id"] == order_id


def test_following_redirects_just_works(cluster: Cluster) -> None:
    ids = [
        httpx.post(f"{cluster.nodes[1].url}/v1/orders", json=order_body(), timeout=10).json()["id"] for _ in range(10)
    ]
    with httpx.Client(follow_redirects=True, timeout=10) as client:
        for order_id in ids:
            response = client.get(f"{cluster.nodes[0].url}/v1/orders/{order_id}", params={"wait_for": "CREATED"})
            assert response.status_code == 200
            assert response.json()["id"] == order_id


def test_a_client_id_owned_elsewhere_gets_303_after_the_write(cluster: Cluster) -> None:
    first, second = cluster.nodes
    foreign = None
    for _ in range(200):
        candidate = f"client-{uuid.uuid4().hex}"
        response = httpx.get(f"{first.url}/v1/orders/{candidate}", timeout=5)
        if response.status_code == 307:
            foreign = candidate
            break
    assert foreign is not None

    response = httpx.post(
        f"{first.url}/v1/orders",
        params={"wait_for": "VALIDATED", "timeout": "7"},
        json=order_body(id=foreign),
        timeout=10,
    )

    assert response.status_code == 303
    assert response.headers["location"] == f"{second.url}/v1/orders/{foreign}?wait_for=VALIDATED&timeout=7"
    followed = httpx.get(response.headers["location"], timeout=10)
    assert followed.status_code == 200
    assert followed.json()["state"] == "VALIDATED"


def test_a_retry_through_a_non_owner_writes_nothing_new(kafka: str, tmp_path: Path) -> None:
    # No standby replicas: the non-owner has no copy of the owner's table, so only
    # asking the owner can tell it that the order exists.
    cluster = Cluster(tmp_path, kafka, STATEGATE_STANDBY_REPLICAS="0").start()
    try:
        first, second = cluster.nodes
        foreign = next(
            candidate
            for candidate in (f"client-{uuid.uuid4().hex}" for _ in range(200))
            if httpx.get(f"{first.url}/v1/orders/{candidate}", timeout=5).status_code == 307
        )
        body = order_body(id=foreign)
        assert httpx.post(f"{second.url}/v1/orders", json=body, timeout=10).status_code == 202  # to the owner
        wait_for(lambda: httpx.get(f"{second.url}/v1/orders/{foreign}", timeout=5).status_code == 200, 20, "it")

        retried = httpx.post(f"{first.url}/v1/orders", json=body, timeout=10)  # the retry, elsewhere

        assert retried.status_code == 202
        assert retried.json()["id"] == foreign
        assert retried.headers["location"] == f"{second.url}/v1/orders/{foreign}"
        assert asyncio.run(records_with_key(kafka, f"{cluster.namespace}.orders", foreign)) == 1
    finally:
        cluster.stop()


async def records_with_key(bootstrap: str, topic: str, key: str) -> int:
    """How many CREATED records of `key` the topic holds (read from the beginning to its end)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(partitions)
        total = sum((await consumer.end_offsets(partitions)).values())
        read = count = 0
        deadline = time.monotonic() + 20
        while read < total:
            assert time.monotonic() < deadline, f"read {read} of {total} records"
            for records in (await consumer.getmany(timeout_ms=500)).values():
                read += len(records)
                for r in records:
                    if r.key and business_key(r.key) == key.encode() and b'"CREATED"' in (r.value or b""):
                        count += 1
        return count
    finally:
        await consumer.stop()


def test_redirects_ignore_host_and_forwarded_headers(cluster: Cluster) -> None:
    order_id = httpx.post(f"{cluster.nodes[1].url}/v1/orders", json=order_body(), timeout=10).json()["id"]
    evil = {
        "Host": "evil.example",
        "X-Forwarded-Host": "evil.example",
        "X-Forwarded-Proto": "https",
        "Forwarded": "host=evil.example",
    }
    for node in cluster.nodes:
        response = httpx.get(f"{node.url}/v1/orders/{order_id}", headers=evil, timeout=10)
        if response.status_code == 307:
            assert "evil" not in response.headers["location"]
            assert response.headers["location"].startswith(tuple(n.url for n in cluster.nodes))


@pytest.fixture(scope="module")
def proxy_cluster(kafka: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    running = Cluster(tmp_path_factory.mktemp("proxy"), kafka, STATEGATE_ROUTING="proxy").start()
    try:
        yield running
    finally:
        running.stop()


def test_proxy_mode_forwards_a_post_with_its_body_to_the_owner(proxy_cluster: Cluster) -> None:
    first, second = proxy_cluster.nodes
    httpx.put(f"{first.url}/v1/inventory/STOCKINGS", json={"stock": 1000}, timeout=10)
    forwarded = []
    for _ in range(40):  # client ids land on both nodes' partitions; keep those the second node owns
        order_id = f"client-{uuid.uuid4().hex}"
        body = {
            "id": order_id,
            "customer_id": f"c-{order_id[-6:]}",
            "product": "STOCKINGS",
            "quantity": 3,
            "price": 4.5,
        }
        response = httpx.post(
            f"{first.url}/v1/orders", params={"wait_for": "VALIDATED", "timeout": "20"}, json=body, timeout=40
        )
        assert response.status_code == 201, (response.status_code, response.text)  # never 303 in proxy mode
        assert {k: response.json()[k] for k in body} == body  # the body reached the owner intact
        assert response.json()["state"] == "VALIDATED"
        if response.headers.get("x-stategate-forwarded-to") == second.url:
            forwarded.append(order_id)
        if len(forwarded) == 3:
            break
    assert len(forwarded) == 3, "no POST was forwarded to the owner"
    for order_id in forwarded:  # reads through either node answer 200, never 307
        for node in proxy_cluster.nodes:
            read = httpx.get(f"{node.url}/v1/orders/{order_id}", timeout=10)
            assert read.status_code == 200
            assert read.json()["id"] == order_id


def test_proxy_mode_long_polls_through_the_non_owner(proxy_cluster: Cluster) -> None:
    first, second = proxy_cluster.nodes
    ids = [httpx.post(f"{second.url}/v1/orders", json=order_body(), timeout=10).json()["id"] for _ in range(10)]
    for order_id in ids:
        response = httpx.get(
            f"{first.url}/v1/orders/{order_id}", params={"wait_for": "CREATED", "timeout": "5"}, timeout=15
        )
        assert response.status_code == 200
        assert response.json()["id"] == order_id


def test_three_nodes_agree_on_the_owner_of_every_key(kafka: str, tmp_path: Path) -> None:
    three = Cluster(tmp_path, kafka, size=3).start()
    try:
        ids = [f"key-{uuid.uuid4().hex}" for _ in range(200)]
        for order_id in ids:
            answers = [httpx.get(f"{node.url}/v1/orders/{order_id}", timeout=10) for node in three.nodes]
            # The owner answers itself (404: no such order yet); every other node redirects to it.
            owners = [node for node, r in zip(three.nodes, answers, strict=True) if r.status_code == 404]
            assert len(owners) == 1, [r.status_code for r in answers]
            for response in answers:
                if response.status_code == 307:
                    assert response.headers["location"] == f"{owners[0].url}/v1/orders/{order_id}"
    finally:
        three.stop()


def test_nodes_call_each_other_at_their_peer_urls_and_send_clients_to_advertised_ones(
    kafka: str, tmp_path: Path
) -> None:
    """As in docker-compose: each node advertises a host port that the other nodes cannot reach."""
    ports = [free_port(), free_port()]
    advertised = [f"http://127.0.0.1:{free_port()}" for _ in ports]  # nothing listens there
    peer_urls = ",".join(f"{a}=http://127.0.0.1:{p}" for a, p in zip(advertised, ports, strict=True))
    env = system_env(kafka, new_namespace("peer-urls"), STATEGATE_PEER_URLS=peer_urls)
    nodes = [
        Node(tmp_path / f"node-{i}", {**env, "STATEGATE_ADVERTISED_URL": advertised[i - 1]}, f"node-{i}", ports[i - 1])
        for i in (1, 2)
    ]
    try:
        for node in nodes:
            node.start()
        for node in nodes:
            node.wait_ready()

        expected = sorted([(advertised[0], "node-1", True), (advertised[1], "node-2", True)])
        seen: list[object] = []

        def both_answer() -> bool:
            views = [httpx.get(f"{node.url}/v1/cluster", timeout=5).json() for node in nodes]
            seen[:] = [sorted((n["url"], n["id"], n["answers"]) for n in view["nodes"]) for view in views]
            return all(members == expected for members in seen)

        try:
            wait_for(both_answer, 60, "each node to reach the other at its peer URL", interval=0.2)
        except AssertionError:
            print("expected", expected, "each node saw", seen)
            raise
        first, second = nodes
        order_id = httpx.post(f"{second.url}/v1/orders", json=order_body(), timeout=10).json()["id"]
        wait_for(lambda: httpx.get(f"{second.url}/v1/orders/{order_id}", timeout=5).status_code == 200, 20, "order")
        answer = httpx.get(f"{first.url}/v1/orders/{order_id}", params={"wait_for": "CREATED"}, timeout=10)
        assert answer.status_code == 307, answer.text
        assert answer.headers["location"] == f"{advertised[1]}/v1/orders/{order_id}?wait_for=CREATED"
    finally:
        for node in nodes:
            node.stop()


def test_three_nodes_each_own_an_equal_share_by_default(kafka: str, tmp_path: Path) -> None:
    """The default partition count (12) lets 1, 2, 3, 4 or 6 nodes share the orders equally."""
    three = Cluster(tmp_path, kafka, size=3).start()
    try:
        view = httpx.get(f"{three.nodes[2].url}/v1/cluster", timeout=5).json()
        shares = sorted(len(n["partitions"]) for n in view["nodes"])
        assert shares == [PARTITIONS // 3] * 3
    finally:
        three.stop()


def test_a_customers_orders_are_listed_from_any_node_whichever_owns_them(cluster: Cluster) -> None:
    customer = f"c-{uuid.uuid4().hex[:8]}"
    placed = []
    for node in (*cluster.nodes, *cluster.nodes):  # server-made ids stay on the node that made them
        answer = httpx.post(
            f"{node.url}/v1/orders?wait_for=VALIDATED&timeout=30", json=order_body(customer_id=customer), timeout=40
        )
        assert answer.status_code == 201, answer.text
        placed.append(answer.json()["id"])
    owners = {cluster.nodes[0].url: 0, cluster.nodes[1].url: 0}
    for order_id in placed:
        where = httpx.get(f"{cluster.nodes[0].url}/v1/orders/{order_id}", timeout=10)
        owners[cluster.nodes[1].url if where.status_code == 307 else cluster.nodes[0].url] += 1
    assert all(owners.values()), owners  # both nodes own some of them

    for node in cluster.nodes:

        def listed(url: str = node.url) -> list[str]:
            answer = httpx.get(f"{url}/v1/orders", params={"customer_id": customer}, timeout=15)
            return [order["id"] for order in answer.json()["orders"]]

        wait_for(lambda: listed() == placed[::-1], 30, f"{node.node_id} to list all four, newest first")
