"""Request/response to services over Kafka, through two real gateway nodes.

The example services run in `stategate services`; the other services here
are written in the test with nothing but aiokafka and the topic contract.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from stategate.streams.erasable_keys import partition_for

from .conftest import new_namespace
from .processes import Node, system_env, wait_for
from .test_cluster import Cluster


def plain_topics(namespace: str) -> dict[str, str]:
    return {name: f"{namespace}.{name}-requests" for name in ("plain", "misrouted", "silent", "held", "feed")}


@pytest.fixture(scope="module")
def services_cluster(kafka: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Two nodes and the example services; plus request topics for services the tests play.

    No STATEGATE_CLUSTER_SECRET: hand-overs must work on a cluster started by hand.
    """
    root = tmp_path_factory.mktemp("services")
    cluster = Cluster(root, kafka)
    topics = plain_topics(cluster.namespace)
    for node in cluster.nodes:
        node.env = cluster.env = {**cluster.env, "STATEGATE_SERVICES": ",".join(f"{k}={v}" for k, v in topics.items())}
    cluster.services.env = cluster.env
    asyncio.run(create_topics(kafka, list(topics.values())))
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


async def create_topics(bootstrap: str, names: list[str], partitions: int = 4) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1) for name in names])
    finally:
        await admin.close()


class PlainService:
    """A service written with aiokafka and the topic contract only (no SDK)."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=bootstrap, group_id=f"plain-{uuid.uuid4().hex}", auto_offset_reset="earliest"
        )
        self.producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")

    async def __aenter__(self) -> PlainService:
        await self.consumer.start()
        await self.producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop()
        await self.producer.stop()

    async def requests(self, count: int, timeout: float = 30) -> list[ConsumerRecord[bytes, bytes]]:
        received: list[ConsumerRecord[bytes, bytes]] = []
        deadline = time.monotonic() + timeout
        while len(received) < count:
            assert time.monotonic() < deadline, f"got {len(received)} of {count} requests"
            for records in (await self.consumer.getmany(timeout_ms=200)).values():
                received.extend(records)
        return received

    async def reply(
        self,
        request: ConsumerRecord[bytes, bytes],
        status: int,
        body: bytes,
        content_type: str = "application/json",
        partition: int | None = None,
        batch: str | None = None,
        extra: tuple[tuple[str, str], ...] = (),
    ) -> None:
        headers = dict(request.headers)
        reply_headers = [(":status", str(status).encode()), ("content-type", content_type.encode())]
        reply_headers += [(name, value.encode()) for name, value in extra]
        if batch is not None:
            reply_headers.append(("batch", batch.encode()))
        await self.producer.send_and_wait(
            headers["reply-to"].decode(),
            body,
            key=headers["correlation-id"],
            partition=partition,
            headers=reply_headers,
        )


def test_echo_answers_from_both_nodes(services_cluster: Cluster) -> None:
    for node in services_cluster.nodes:
        response = httpx.post(f"{node.url}/v1/services/echo/hello?x=1", content=b"ping", timeout=30)
        assert response.status_code == 200, response.text
        assert response.json() == {"method": "POST", "path": "/hello?x=1", "body": "ping"}
        assert response.headers["x-stategate-node"] == node.node_id


def test_any_method_reaches_the_service(services_cluster: Cluster) -> None:
    node = services_cluster.nodes[0]
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"):
        response = httpx.request(method, f"{node.url}/v1/services/echo/m", timeout=30)
        assert (response.status_code, response.json()["method"]) == (200, method)
    head = httpx.head(f"{node.url}/v1/services/echo/m", timeout=30)
    assert (head.status_code, head.content) == (200, b"")


def test_customers_and_basket_work_from_any_node(services_cluster: Cluster) -> None:
    first, second = services_cluster.nodes
    customer = f"cust-{uuid.uuid4().hex[:8]}"
    stored = httpx.put(f"{first.url}/v1/services/customers/{customer}", json={"name": "Ada"}, timeout=30)
    assert stored.status_code == 200, stored.text
    read = httpx.get(f"{second.url}/v1/services/customers/{customer}", timeout=30)
    assert (read.status_code, read.json()) == (200, {"name": "Ada"})
    missing = httpx.get(f"{second.url}/v1/services/customers/nobody-{customer}", timeout=30)
    assert missing.status_code == 404  # the service's own 404, passed through

    user = f"user-{uuid.uuid4().hex[:8]}"
    basket = f"/v1/services/basket/{user}"
    added = httpx.post(f"{first.url}{basket}/items", json={"product": "JUMPERS", "quantity": 2}, timeout=30)
    assert added.status_code == 200, added.text
    seen = httpx.get(f"{second.url}{basket}", timeout=30).json()
    assert [(item["product"], item["quantity"]) for item in seen["items"]] == [("JUMPERS", 2)]
    assert httpx.delete(f"{second.url}{basket}", timeout=30).status_code == 200
    assert httpx.get(f"{first.url}{basket}", timeout=30).json() == {"items": []}


def test_a_streaming_reply_arrives_as_ndjson_in_order(services_cluster: Cluster) -> None:
    node = services_cluster.nodes[0]
    with httpx.stream("GET", f"{node.url}/v1/services/echo/stream?n=5", timeout=30) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/x-ndjson")
        lines = [orjson.loads(line) for line in response.iter_lines() if line]
    assert lines == [{"i": k} for k in range(5)]


def test_a_plain_aiokafka_service_answers_with_its_own_status_and_type(kafka: str, services_cluster: Cluster) -> None:
    node = services_cluster.nodes[1]
    topic = plain_topics(services_cluster.namespace)["plain"]

    async def scenario() -> httpx.Response:
        async with PlainService(kafka, topic) as service, httpx.AsyncClient(timeout=30) as client:
            call = asyncio.create_task(
                client.put(
                    f"{node.url}/v1/services/plain/teapots/7?brew=1",
                    content=b"{}",
                    headers={"content-type": "application/json"},
                )
            )
            [request] = await service.requests(1)
            headers = {name: value.decode() for name, value in request.headers}
            assert headers[":method"] == "PUT"
            assert headers[":path"] == "/teapots/7?brew=1"
            assert headers["content-type"] == "application/json"
            assert request.key == b"teapots" and request.value == b"{}"
            extra = (("allow", "GET, PUT"), ("x-teapot", "yes"), ("transfer-encoding", "chunked"), (":odd", "1"))
            await service.reply(request, 418, b"short and stout", content_type="text/plain", extra=extra)
            return await call

    response = asyncio.run(scenario())
    assert (response.status_code, response.text) == (418, "short and stout")
    assert response.headers["content-type"].startswith("text/plain")
    # The service's own headers are passed on; framing and pseudo-headers are not.
    assert (response.headers["allow"], response.headers["x-teapot"]) == ("GET, PUT", "yes")
    assert "transfer-encoding" not in response.headers and ":odd" not in response.headers


def test_a_reply_on_another_nodes_partition_is_handed_over(kafka: str, services_cluster: Cluster) -> None:
    waiting, other = services_cluster.nodes
    topic = plain_topics(services_cluster.namespace)["misrouted"]
    other_partitions = httpx.get(f"{other.url}/v1/cluster", timeout=5).json()["reply_partitions"]
    assert other_partitions

    async def scenario() -> httpx.Response:
        async with PlainService(kafka, topic) as service, httpx.AsyncClient(timeout=30) as client:
            call = asyncio.create_task(client.get(f"{waiting.url}/v1/services/misrouted/x"))
            [request] = await service.requests(1)
            correlation_id = dict(request.headers)["correlation-id"]
            assert partition_for(correlation_id, 12) not in other_partitions  # made for the waiting node
            await service.reply(request, 200, b'{"via": "the other node"}', partition=other_partitions[0])
            return await call

    response = asyncio.run(scenario())
    assert (response.status_code, response.json()) == (200, {"via": "the other node"})
    sent = [
        line
        for line in httpx.get(f"{other.url}/metrics").text.splitlines()
        if line.startswith('stategate_reply_handovers_total{direction="sent"}')
    ]
    assert sent and float(sent[0].split()[1]) >= 1


def test_no_reply_is_a_504_at_the_deadline(services_cluster: Cluster) -> None:
    node = services_cluster.nodes[0]
    started = time.monotonic()
    response = httpx.get(f"{node.url}/v1/services/silent/anything?timeout=1", timeout=30)
    waited = time.monotonic() - started
    assert response.status_code == 504
    assert response.headers["content-type"] == "application/problem+json"
    assert 1 <= waited < 5, waited


def test_unknown_service_and_oversized_body(services_cluster: Cluster) -> None:
    node = services_cluster.nodes[0]
    unknown = httpx.get(f"{node.url}/v1/services/nope/x", timeout=10)
    assert unknown.status_code == 404 and unknown.headers["content-type"] == "application/problem+json"
    too_big = httpx.post(f"{node.url}/v1/services/echo/x", content=b"x" * (64 * 1024 + 1), timeout=10)
    assert too_big.status_code == 413


def test_300_concurrent_requests_across_two_nodes_each_get_their_own_reply(services_cluster: Cluster) -> None:
    async def scenario() -> list[tuple[int, httpx.Response]]:
        async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=300)) as client:
            nodes = services_cluster.nodes
            calls = [
                client.post(f"{nodes[i % 2].url}/v1/services/echo/r{i}", content=f"body-{i}".encode())
                for i in range(300)
            ]
            return list(enumerate(await asyncio.gather(*calls)))

    for i, response in asyncio.run(scenario()):
        assert response.status_code == 200, response.text
        assert response.json() == {"method": "POST", "path": f"/r{i}", "body": f"body-{i}"}


def test_a_node_joining_while_requests_wait_loses_none(kafka: str, services_cluster: Cluster, tmp_path: Path) -> None:
    first = services_cluster.nodes[0]
    topic = plain_topics(services_cluster.namespace)["held"]
    joining = Node(tmp_path / "node-3", services_cluster.env, node_id="node-3")

    async def scenario() -> list[httpx.Response]:
        async with PlainService(kafka, topic) as service, httpx.AsyncClient(timeout=60) as client:
            calls = [
                asyncio.create_task(client.get(f"{first.url}/v1/services/held/k{i}?timeout=50")) for i in range(20)
            ]
            requests = await service.requests(20)
            joining.start()
            await asyncio.to_thread(joining.wait_ready)
            await asyncio.to_thread(
                wait_for, lambda: bool(cluster_replies(joining)), 60, "the new node to read replies"
            )
            for request in requests:  # keyed by correlation id: some now land on the new node
                await service.reply(request, 200, orjson.dumps({"key": request.key.decode() if request.key else None}))
            return list(await asyncio.gather(*calls))

    try:
        responses = asyncio.run(scenario())
    finally:
        joining.stop()
    assert [(r.status_code, r.json()["key"]) for r in responses] == [(200, f"k{i}") for i in range(20)]


def cluster_replies(node: Node) -> list[int]:
    try:
        partitions: list[int] = httpx.get(f"{node.url}/v1/cluster", timeout=5).json()["reply_partitions"]
        return partitions
    except httpx.HTTPError:
        return []


def test_a_stream_whose_next_record_never_comes_is_cut_short(kafka: str, services_cluster: Cluster) -> None:
    node = services_cluster.nodes[0]
    topic = plain_topics(services_cluster.namespace)["feed"]

    async def scenario() -> tuple[list[bytes], BaseException | None]:
        async with PlainService(kafka, topic) as service, httpx.AsyncClient(timeout=30) as client:
            lines: list[bytes] = []

            async def read() -> BaseException | None:
                async with client.stream("GET", f"{node.url}/v1/services/feed/items?timeout=1") as response:
                    assert response.status_code == 200
                    try:
                        async for line in response.aiter_lines():
                            lines.append(line.encode())
                    except httpx.TransportError as exc:
                        return exc
                return None

            reading = asyncio.create_task(read())
            [request] = await service.requests(1)
            await service.reply(request, 200, b'{"first": true}', batch="more")  # and then nothing
            return lines, await reading

    lines, error = asyncio.run(scenario())
    assert lines == [b'{"first": true}']
    assert isinstance(error, httpx.TransportError)  # not a whole reply: the connection ends without the last chunk


def test_a_client_that_leaves_frees_its_waiting_request(services_cluster: Cluster) -> None:
    node = services_cluster.nodes[0]
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(f"{node.url}/v1/services/silent/gone?timeout=30", timeout=1)
    wait_for(lambda: node.metric("stategate_service_requests_parked") == 0, 10, "the request to be forgotten")


def test_sigterm_answers_a_waiting_service_request_with_503(kafka: str, tmp_path: Path) -> None:
    namespace = new_namespace("svc-stop")
    topic = f"{namespace}.silent-requests"
    asyncio.run(create_topics(kafka, [topic]))
    node = Node(tmp_path / "node-1", system_env(kafka, namespace, STATEGATE_SERVICES=f"silent={topic}"))
    node.start_and_wait()
    try:

        async def scenario() -> httpx.Response:
            async with httpx.AsyncClient(timeout=30) as client:
                call = asyncio.create_task(client.get(f"{node.url}/v1/services/silent/x?timeout=30"))
                await asyncio.to_thread(
                    wait_for, lambda: node.metric("stategate_service_requests_parked") == 1, 10, "the request parked"
                )
                assert node.process is not None
                node.process.terminate()
                return await call

        response = asyncio.run(scenario())
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "1"
        assert node.stop() == 0
    finally:
        node.stop()


def test_the_gateway_keeps_its_own_timeout_parameter_and_refuses_a_zero_wait(services_cluster: Cluster) -> None:
    node = services_cluster.nodes[0]
    echoed = httpx.get(f"{node.url}/v1/services/echo/x?a=1&timeout=5&b=%20c", timeout=30)
    assert echoed.status_code == 200, echoed.text
    assert echoed.json()["path"] == "/x?a=1&b=%20c"  # the rest of the query exactly as sent
    zero = httpx.get(f"{node.url}/v1/services/echo/x?timeout=0", timeout=30)
    assert zero.status_code == 422
    assert zero.headers["content-type"] == "application/problem+json"
