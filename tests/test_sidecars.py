"""The sidecar layout: each node reads a reply topic of its own (`STATEGATE_REPLY_TOPIC=own`).

Two nodes and the example services on the session's broker: each node names
its own one-partition topic in `reply-to`, its replies come back there and
nowhere else, and no reply is ever handed over between nodes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from .test_cluster import Cluster
from .test_service_calls import PlainService, create_topics


@pytest.fixture(scope="module")
def sidecars(kafka: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path_factory.mktemp("sidecars"), kafka, 2, STATEGATE_REPLY_TOPIC="own")
    plain = {f"plain-{node.node_id}": f"{cluster.namespace}.plain-{node.node_id}-requests" for node in cluster.nodes}
    for process in (*cluster.nodes, cluster.services):
        process.env = {**cluster.env, "STATEGATE_SERVICES": ",".join(f"{k}={v}" for k, v in plain.items())}
    cluster.env = cluster.nodes[0].env
    asyncio.run(create_topics(kafka, list(plain.values())))
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


async def topics(bootstrap: str) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


def test_each_node_reads_a_reply_topic_of_its_own_and_no_shared_one_exists(kafka: str, sidecars: Cluster) -> None:
    existing = {t for t in asyncio.run(topics(kafka)) if t.startswith(sidecars.namespace + ".gateway-replies")}
    assert existing == {f"{sidecars.namespace}.gateway-replies.{node.node_id}" for node in sidecars.nodes}


async def call_through(kafka: str, url: str, service: str, topic: str) -> tuple[httpx.Response, bytes]:
    """A call to a plain service through the node at `url`: the response, and the request's `reply-to`."""
    async with PlainService(kafka, topic) as plain, httpx.AsyncClient(timeout=30) as client:
        answer = asyncio.create_task(client.get(f"{url}/v1/services/{service}/x"))
        [request] = await plain.requests(1)
        await plain.reply(request, 200, b'{"ok": true}')
        return await answer, dict(request.headers)["reply-to"]


def test_a_request_names_its_node_s_own_topic_and_the_reply_comes_back_there(kafka: str, sidecars: Cluster) -> None:
    for node in sidecars.nodes:  # a service of its own for each node: each sees one request
        service = f"plain-{node.node_id}"
        topic = f"{sidecars.namespace}.{service}-requests"
        response, reply_to = asyncio.run(call_through(kafka, node.url, service, topic))
        assert reply_to == f"{sidecars.namespace}.gateway-replies.{node.node_id}".encode()
        assert (response.status_code, response.json()) == (200, {"ok": True})


def test_calls_through_every_node_are_answered_without_a_hand_over(sidecars: Cluster) -> None:
    for node in sidecars.nodes:
        for i in range(10):
            echoed = httpx.post(f"{node.url}/v1/services/echo/n{i}", content=b"ping", timeout=30)
            assert echoed.status_code == 200, echoed.text
    for node in sidecars.nodes:
        metrics = httpx.get(f"{node.url}/metrics", timeout=5).text.splitlines()
        handed = [line for line in metrics if line.startswith("stategate_reply_handovers_total{")]
        assert all(float(line.split()[1]) == 0 for line in handed), handed
