"""Brokers die under load: a three-broker cluster, two gateway nodes and the services, 64 clients placing orders.

Topics are replicated three times with `min.insync.replicas=2`, so a 2xx
means a majority of the replicas has the order. Whatever happens to the
brokers, a client gets a 2xx or a 503 with Retry-After, within its timeout;
every order that got a 2xx is in Kafka and reaches VALIDATED.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from stategate.app.kafka_cluster import LocalKafkaCluster
from stategate.streams.erasable_keys import business_key
from stategate.streams.order_view import VIEW_GROUP

from .processes import wait_for
from .test_cluster import Cluster, order_body, stock_jumpers

pytestmark = pytest.mark.timeout(300)  # three brokers stopped and started again one by one, under load

CLIENTS = 64
WAIT_SECONDS = 5.0
"""The `timeout` each POST asks for; a client gives up (a hang) after it plus `SLACK_SECONDS`."""
SLACK_SECONDS = 15.0
"""By design a POST with `wait_for` answers within 12 s here: asking the owner for a client-named order 1 s,
the write `STATEGATE_PRODUCE_TIMEOUT_SECONDS` 5 s, the wait 5 s after the redirect, and reading the order's
partition to its end 1 s. The rest is for two cores shared with three brokers whose JVMs restart meanwhile."""


@pytest.fixture(scope="module")
def replicated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalKafkaCluster, Cluster]]:
    root = tmp_path_factory.mktemp("broker-failures")
    brokers = LocalKafkaCluster(root / "kafka", brokers=3)
    brokers.start()
    try:
        system = Cluster(root, brokers.bootstrap, 2, STATEGATE_REPLICATION_FACTOR="3").start()
        try:
            stock_jumpers(system.nodes[0].url)
            yield brokers, system
        finally:
            system.stop()
    finally:
        brokers.stop()


class Answer(NamedTuple):
    """What one client's POST got."""

    order_id: str
    status: int
    """The HTTP status, or 0 for no answer (then `error` says why)."""
    retry_after: str | None
    seconds: float
    error: str | None = None
    hops: int = 0
    """How many redirects the client followed."""


@dataclass
class Load:
    """64 clients placing orders (POST, wait_for=VALIDATED) on both nodes until told to stop."""

    urls: list[str]
    answers: list[Answer] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        asyncio.run(self._clients())

    def acknowledged(self) -> int:
        """How many requests got a 2xx so far."""
        return sum(1 for answer in list(self.answers) if 200 <= answer.status < 300)

    def wait_for_more(self, count: int, timeout: float, what: str) -> None:
        """Wait until `count` more requests than now got a 2xx."""
        target = self.acknowledged() + count
        wait_for(lambda: self.acknowledged() >= target, timeout, what)

    async def _clients(self) -> None:
        await asyncio.gather(*(self._client(self.urls[i % len(self.urls)]) for i in range(CLIENTS)))

    async def _client(self, url: str) -> None:
        # A connection pool of its own, as separate users have: httpcore 1.0.9's shared pool can close a
        # connection it has just handed to a queued request, under that request (encode/httpcore#1110).
        async with httpx.AsyncClient(timeout=WAIT_SECONDS + SLACK_SECONDS) as http:
            await self._place_orders(http, url)

    async def _place_orders(self, http: httpx.AsyncClient, url: str) -> None:
        while not self.stopping.is_set():
            order_id = f"load-{uuid.uuid4().hex}"
            body = order_body(id=order_id)
            started = time.monotonic()
            try:
                response = await http.post(
                    f"{url}/v1/orders",
                    params={"wait_for": "VALIDATED", "timeout": WAIT_SECONDS},
                    json=body,
                    follow_redirects=True,
                )
                retry_after, hops = response.headers.get("retry-after"), len(response.history)
                answer = Answer(order_id, response.status_code, retry_after, time.monotonic() - started, hops=hops)
            except httpx.HTTPError as error:
                where = error.request.url if isinstance(error, httpx.RequestError) else url
                cause = error.__cause__ or error.__context__
                answer = Answer(order_id, 0, None, time.monotonic() - started, f"{error!r} ({cause!r}) on {where}")
            self.answers.append(answer)
            if answer.status == 503:
                await asyncio.sleep(float(answer.retry_after or 1))  # as a well-behaved client does


def under_load(urls: list[str], during: Callable[[Load], None]) -> Load:
    """Run the load, calling `during` from this thread meanwhile, and once it returns until 100 more 2xx."""
    load = Load(urls)
    clients = threading.Thread(target=load.run, name="load")
    clients.start()
    try:
        load.wait_for_more(100, 30, "the load to run")
        during(load)
        load.wait_for_more(100, 60, "the load to go on after the brokers came back")
    finally:
        load.stopping.set()
        clients.join(timeout=WAIT_SECONDS + SLACK_SECONDS + 10)
    assert not clients.is_alive(), "the clients did not finish"
    return load


def orders_in_kafka(bootstrap: str, topic: str) -> set[str]:
    """The business keys of every record on `topic`, read from the beginning."""

    async def read() -> set[str]:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
            if not partitions:
                await consumer._client.force_metadata_update()  # noqa: SLF001 - the topic exists; metadata is cold
                partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            ends = await consumer.end_offsets(partitions)
            keys: set[str] = set()

            async def behind() -> bool:
                return any([await consumer.position(tp) < ends[tp] for tp in partitions])

            while await behind():
                for records in (await consumer.getmany(timeout_ms=1000)).values():
                    keys.update(business_key(r.key).decode() for r in records if r.key is not None)
            return keys
        finally:
            await consumer.stop()

    return asyncio.run(read())


def check(load: Load, system: Cluster, bootstrap: str) -> None:
    """2xx or 503 + Retry-After, never a hang; every 2xx order in Kafka and VALIDATED."""
    statuses: dict[int, int] = {}
    for answer in load.answers:
        statuses[answer.status] = statuses.get(answer.status, 0) + 1
    acknowledged = [answer.order_id for answer in load.answers if 200 <= answer.status < 300]
    assert len(acknowledged) > 100, statuses
    slowest = max(answer.seconds for answer in load.answers)
    hops: dict[int, int] = {}
    for answer in load.answers:
        hops[answer.hops] = hops.get(answer.hops, 0) + 1
    print(f"answers: {statuses}, slowest {slowest:.2f}s, redirects followed: {hops}")
    odd = [answer for answer in load.answers if not _expected(answer)]
    if odd:
        for node in system.nodes:
            print(f"--- {node.node_id}: errors and warnings")
            print("\n".join(line for line in node.log().splitlines() if " ERROR " in line or " WARNING " in line))
    assert odd == [], f"answers other than 2xx or 503 + Retry-After: {odd[:10]} (all: {statuses})"
    assert slowest < WAIT_SECONDS + SLACK_SECONDS, f"a request took {slowest:.1f}s"

    in_kafka = orders_in_kafka(bootstrap, f"{system.namespace}.orders")
    missing = [order_id for order_id in acknowledged if order_id not in in_kafka]
    assert missing == [], f"{len(missing)} acknowledged orders are not in Kafka: {missing[:5]}"
    with httpx.Client(base_url=system.nodes[0].url, timeout=20, follow_redirects=True) as http:

        def validated(order_id: str) -> bool:
            answer = http.get(f"/v1/orders/{order_id}", params={"wait_for": "VALIDATED", "timeout": 10})
            return answer.status_code == 200 and answer.json()["state"] == "VALIDATED"

        not_validated = [order_id for order_id in acknowledged if not validated(order_id)]
    assert not_validated == [], f"{len(not_validated)} acknowledged orders never validated: {not_validated[:5]}"


def _expected(answer: Answer) -> bool:
    return 200 <= answer.status < 300 or (answer.status == 503 and answer.retry_after is not None)


async def coordinator_of(bootstrap: str, group: str) -> int:
    """The node id of the broker that coordinates `group`."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return int(await admin.find_coordinator(group))
    finally:
        await admin.close()


def test_a_broker_killed_under_load_loses_no_acknowledged_order_and_the_cluster_heals(
    replicated: tuple[LocalKafkaCluster, Cluster],
) -> None:
    brokers, system = replicated
    # The hardest broker to lose: the one coordinating the nodes' group (their heartbeats stop too).
    victim = brokers.broker(asyncio.run(coordinator_of(brokers.bootstrap, f"{system.namespace}.{VIEW_GROUP}")))

    def kill_then_bring_back(load: Load) -> None:
        victim.kill()
        load.wait_for_more(200, 60, "orders to be acknowledged with a broker dead")
        victim.start()

    load = under_load([node.url for node in system.nodes], kill_then_bring_back)
    check(load, system, brokers.bootstrap)
    wait_for(system.settled, 60, "the nodes to settle again")


def test_a_rolling_restart_of_every_broker_under_load_loses_no_acknowledged_order(
    replicated: tuple[LocalKafkaCluster, Cluster],
) -> None:
    brokers, system = replicated

    def restart_each(load: Load) -> None:
        for broker in brokers.brokers:
            broker.stop()  # SIGTERM: a controlled shutdown moves its leaders away first
            load.wait_for_more(50, 60, "orders to be acknowledged with a broker stopped")
            broker.start()

    load = under_load([node.url for node in system.nodes], restart_each)
    check(load, system, brokers.bootstrap)
    wait_for(system.settled, 60, "the nodes to settle again")
