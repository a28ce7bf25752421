"""Parked requests across a node joining and a node leaving: redirected, never left to time out.

No services run here, so orders stay CREATED and a wait for VALIDATED
lasts until something ends it: only a rebalance can end these waits early.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import httpx
import orjson
from aiokafka import AIOKafkaProducer

from .conftest import new_namespace
from .processes import Node, Stategate, system_env, wait_for

WAIT = {"wait_for": "VALIDATED", "timeout": "40"}
ORDER = {"customer_id": "c1", "product": "JUMPERS", "quantity": 1, "price": 1.0}


def cluster_size(node: Node, answering: bool = True) -> int:
    """How many members `node` sees (only those whose HTTP API answers it, unless told otherwise)."""
    try:
        members = httpx.get(f"{node.url}/v1/cluster", timeout=5).json()["nodes"]
    except httpx.HTTPError:
        return 0
    return sum(1 for n in members if n["answers"] or not answering)


def place_created(node: Node, count: int) -> list[str]:
    """Place `count` orders on `node` and wait until its table holds them all."""
    order_ids = [httpx.post(f"{node.url}/v1/orders", json=ORDER, timeout=10).json()["id"] for _ in range(count)]
    wait_for(
        lambda: all(httpx.get(f"{node.url}/v1/orders/{i}", timeout=5).status_code == 200 for i in order_ids),
        20,
        "orders in the table",
    )
    return order_ids


async def park(node: Node, order_ids: list[str]) -> list[asyncio.Task[httpx.Response]]:
    client = httpx.AsyncClient(base_url=node.url, timeout=60)
    tasks = [asyncio.create_task(client.get(f"/v1/orders/{order_id}", params=WAIT)) for order_id in order_ids]
    deadline = time.monotonic() + 10
    while node.metric("stategate_parked_requests") < len(order_ids):
        assert time.monotonic() < deadline, "requests were not parked"
        await asyncio.sleep(0.05)
    return tasks


def test_a_joining_node_takes_its_waiters_with_a_307(kafka: str, tmp_path: Path) -> None:
    env = system_env(kafka, new_namespace("join"))
    first = Node(tmp_path / "node-1", env, node_id="node-1").start_and_wait()
    second = Node(tmp_path / "node-2", env, node_id="node-2")
    try:
        order_ids = place_created(first, 40)

        async def scenario() -> list[httpx.Response]:
            tasks = await park(first, order_ids)
            second.start()
            done, pending = await asyncio.wait(tasks, timeout=15)  # the waits themselves last 40 s
            for task in pending:
                task.cancel()
            return [task.result() for task in done]

        answered = asyncio.run(scenario())
        wait_for(lambda: cluster_size(first) == 2, 30, "two members")
        moved = {i for i in order_ids if httpx.get(f"{first.url}/v1/orders/{i}", timeout=5).status_code == 307}
        assert moved, "the joining node took no partition"
        redirected = set()
        for response in answered:
            assert response.status_code == 307, response.text
            location = response.headers["location"]
            assert location.startswith(f"{second.url}/v1/orders/")
            assert location.endswith("?wait_for=VALIDATED&timeout=40")
            redirected.add(location.split("/v1/orders/")[1].split("?")[0])
        # Every waiter whose order moved was redirected, and only those.
        assert redirected == moved
        for order_id in moved:  # the new owner serves them, with no further redirect
            assert httpx.get(f"{second.url}/v1/orders/{order_id}", timeout=10).status_code == 200
    finally:
        second.stop()
        first.stop()


def test_sigterm_sends_parked_requests_to_a_live_node(kafka: str, tmp_path: Path) -> None:
    env = system_env(kafka, new_namespace("leave"))
    first = Node(tmp_path / "node-1", env, node_id="node-1").start_and_wait()
    second = Node(tmp_path / "node-2", env, node_id="node-2").start_and_wait()
    try:
        wait_for(lambda: cluster_size(first) == cluster_size(second) == 2, 30, "two members")
        order_ids = place_created(second, 10)

        async def scenario() -> list[httpx.Response]:
            tasks = await park(second, order_ids)
            assert second.process is not None
            second.process.terminate()
            return list(await asyncio.gather(*tasks))

        responses = asyncio.run(scenario())
        assert [r.status_code for r in responses] == [307] * len(order_ids)
        assert all(r.headers["location"].startswith(f"{first.url}/v1/orders/") for r in responses)
        assert second.stop() == 0

        # Following the redirect, the survivor answers once it has taken the partitions over.
        def all_served() -> bool:
            return all(httpx.get(f"{first.url}/v1/orders/{i}", timeout=10).status_code == 200 for i in order_ids)

        wait_for(all_served, 30, "the survivor to serve every order", interval=0.2)
    finally:
        second.stop()
        first.stop()


def test_after_sigkill_the_survivor_serves_every_earlier_order(kafka: str, tmp_path: Path) -> None:
    env = system_env(kafka, new_namespace("failover"))
    services = Stategate("services", tmp_path / "services", env).start()
    first = Node(tmp_path / "node-1", env, node_id="node-1").start_and_wait()
    second = Node(tmp_path / "node-2", env, node_id="node-2").start_and_wait()
    try:
        wait_for(lambda: cluster_size(first) == cluster_size(second) == 2, 30, "two members")
        first.wait_ready()
        second.wait_ready()
        httpx.put(f"{first.url}/v1/inventory/JUMPERS", json={"stock": 1000}, timeout=10)
        placed = [
            httpx.post(
                f"{node.url}/v1/orders",
                params={"wait_for": "VALIDATED"},
                json={**ORDER, "customer_id": f"c{i}"},
                timeout=30,
            ).json()
            for i in range(20)
            for node in (first, second)
        ]
        assert [order["state"] for order in placed] == ["VALIDATED"] * len(placed)

        second.kill()
        killed_at = time.monotonic()
        its_own = placed[1::2]  # server-made ids of the second node: owned by it until it died
        redirected_to_the_dead: list[float] = []

        def served() -> bool:
            for order in its_own:
                answer = httpx.get(f"{first.url}/v1/orders/{order['id']}", timeout=5)
                if answer.status_code == 307 and answer.headers["location"].startswith(second.url):
                    redirected_to_the_dead.append(time.monotonic() - killed_at)
            try:
                return all(
                    httpx.get(f"{first.url}/v1/orders/{order['id']}", timeout=5).json() == order for order in placed
                )
            except (httpx.HTTPError, ValueError):
                return False

        wait_for(served, 60, "the survivor to serve every order", interval=0.2)
        assert cluster_size(first, answering=False) == 1
        # Within the session timeout the dead node is still a member, but the survivor's
        # probes (every second) stop it from sending clients there: 503 + Retry-After instead.
        assert all(after < 2.5 for after in redirected_to_the_dead), redirected_to_the_dead
    finally:
        second.stop()
        first.stop()
        services.stop()


def test_waiters_parked_on_a_survivor_outlive_a_sigkill_and_get_their_answer(kafka: str, tmp_path: Path) -> None:
    namespace = new_namespace("parked-kill")
    env = system_env(kafka, namespace)
    first = Node(tmp_path / "node-1", env, node_id="node-1").start_and_wait()
    second = Node(tmp_path / "node-2", env, node_id="node-2").start_and_wait()
    try:
        wait_for(lambda: cluster_size(first) == cluster_size(second) == 2, 30, "two members")
        kept = place_created(first, 10)  # server-made ids: owned by the node that made them
        lost = place_created(second, 10)
        orders = {i: httpx.get(f"{first.url}/v1/orders/{i}", timeout=5).json() for i in kept}
        orders |= {i: httpx.get(f"{second.url}/v1/orders/{i}", timeout=5).json() for i in lost}

        async def scenario() -> tuple[list[httpx.Response], list[BaseException | httpx.Response]]:
            on_first = await park(first, kept)
            on_second = await park(second, lost)
            second.kill()
            # The killed node's clients lose their connection: nothing on the server can answer them.
            dropped = await asyncio.gather(*on_second, return_exceptions=True)
            await asyncio.to_thread(
                wait_for, lambda: cluster_size(first, answering=False) == 1, 30, "the survivor alone in the group"
            )
            # The orders change once the survivor has taken the partitions over (readyz: tables
            # recovered, rebalance done); its parked waits are still there to hear it. Versions
            # written while it was still recovering were, twice in CI, never applied (see README).
            await asyncio.to_thread(first.wait_ready)
            producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all")
            await producer.start()
            try:
                for order_id, order in orders.items():
                    validated = {**order, "state": "VALIDATED", "version": order["version"] + 1}
                    await producer.send_and_wait(
                        f"{namespace}.orders", key=order_id.encode(), value=orjson.dumps(validated)
                    )
            finally:
                await producer.stop()
            answered = await asyncio.wait_for(asyncio.gather(*on_first), 30)  # the waits would last 40 s
            return list(answered), dropped

        answered, dropped = asyncio.run(scenario())
        assert all(isinstance(result, httpx.TransportError) for result in dropped), dropped
        assert [(r.status_code, r.json()["state"]) for r in answered] == [(200, "VALIDATED")] * len(kept)

        # The killed node's clients, asking again (after Retry-After while the survivor
        # takes the partitions over), are answered by the survivor.
        last: dict[str, tuple[int, str]] = {}

        def validated_on_the_survivor(order_id: str) -> bool:
            params = {"wait_for": "VALIDATED", "timeout": "5"}
            again = httpx.get(f"{first.url}/v1/orders/{order_id}", params=params, timeout=15)
            last[order_id] = (again.status_code, again.text[:160])
            return again.status_code == 200 and again.json()["state"] == "VALIDATED"

        try:
            wait_for(lambda: all(validated_on_the_survivor(i) for i in lost), 60, "the survivor to serve them", 0.5)
        except AssertionError:
            print("the survivor's last answers:", last)  # shown by pytest with the failure
            raise
    finally:
        second.stop()
        first.stop()


def recovery_log(node: Node) -> str:
    """The rebalance and table-recovery lines of a node's log (its Faust logs must be at INFO)."""
    needles = ("faust.tables.recovery", "Revoking", "newly assigned", "faust.transport.consumer", "WARNING", "ERROR")
    return "\n".join(line[:300] for line in node.log().splitlines() if any(n in line for n in needles))


def test_order_versions_written_across_a_sigkill_all_reach_the_survivors_table(kafka: str, tmp_path: Path) -> None:
    """Versions written steadily before, during and after the survivor takes a dead node's partitions over.

    The table is what the gateway answers from, so a record that Kafka holds
    but the survivor skipped while it rebalanced would be an order answered
    wrongly forever. Records go straight to `orders`, about one every 5 ms,
    until the survivor has been ready for two seconds: new orders, and next
    versions of orders written two seconds before.
    """
    namespace = new_namespace("failover-writes")
    env = system_env(kafka, namespace, STATEGATE_KAFKA_LOG_LEVEL="INFO")
    first = Node(tmp_path / "node-1", env, node_id="node-1").start_and_wait()
    second = Node(tmp_path / "node-2", env, node_id="node-2").start_and_wait()
    try:
        wait_for(lambda: cluster_size(first) == cluster_size(second) == 2, 30, "two members")
        first.wait_ready()
        template = httpx.post(f"{first.url}/v1/orders", json=ORDER, timeout=10).json()
        # id -> its last version: (version, seconds after the kill, partition, offset)
        written: dict[str, tuple[int, float, int, int]] = {}

        async def write_across_the_failover() -> None:
            producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all", enable_idempotence=True)
            await producer.start()
            try:
                started = time.monotonic()
                killed_at = started + 1.0
                ready_since: float | None = None
                sent = []
                count = 0
                while ready_since is None or time.monotonic() < ready_since + 2.0:
                    assert time.monotonic() < started + 60, "the survivor never became ready alone"
                    now = time.monotonic()
                    if second.running and now >= killed_at:
                        second.kill()
                    if count % 2 == 0 or count < 400:
                        order_id, version, state = f"w-{count:05d}", 1, "CREATED"
                    else:  # the next version of an order written 399 records (≈ 2 s) before
                        order_id, version, state = f"w-{count - 399:05d}", 2, "VALIDATED"
                    value = orjson.dumps({**template, "id": order_id, "version": version, "state": state})
                    future = await producer.send(f"{namespace}.orders", key=order_id.encode(), value=value)
                    sent.append((order_id, version, now - killed_at, future))
                    count += 1
                    if count % 40 == 0 and ready_since is None and not second.running:
                        alone = await asyncio.to_thread(cluster_size, first, False)
                        if alone == 1 and await asyncio.to_thread(first.is_ready):
                            ready_since = time.monotonic()
                    await asyncio.sleep(max(0.0, started + count * 0.005 - time.monotonic()))
                for order_id, version, at, future in sent:
                    metadata = await future
                    written[order_id] = (version, round(at, 3), metadata.partition, metadata.offset)
            finally:
                await producer.stop()

        asyncio.run(write_across_the_failover())
        missing = list(written)

        def all_in_the_table() -> bool:
            nonlocal missing
            with httpx.Client(base_url=first.url, timeout=5) as http:
                missing = [i for i in missing if not holds(http.get(f"/v1/orders/{i}"), written[i][0])]
            return not missing

        def holds(answer: httpx.Response, version: int) -> bool:
            return answer.status_code == 200 and answer.json()["version"] == version

        try:
            wait_for(all_in_the_table, 30, "every written version in the survivor's table", interval=0.5)
        except AssertionError:
            print(f"{len(missing)} of {len(written)} not as written:", [(i, written[i]) for i in missing[:40]])
            print("the survivor's rebalance log:\n" + recovery_log(first))
            raise
    finally:
        second.stop()
        first.stop()


def test_a_rolling_restart_under_traffic_loses_no_order(kafka: str, tmp_path: Path) -> None:
    """Clients keep placing orders (retrying as the contract says) while each node is restarted in turn."""
    namespace = new_namespace("rolling")
    env = system_env(kafka, namespace)
    services = Stategate("services", tmp_path / "services", env).start()
    nodes = [Node(tmp_path / f"node-{i}", env, node_id=f"node-{i}") for i in (1, 2)]
    for node in nodes:
        node.start()
    stop = threading.Event()
    outcomes: dict[str, dict[str, object]] = {}
    try:
        for node in nodes:
            node.wait_ready()
        wait_for(lambda: all(cluster_size(node) == 2 for node in nodes), 60, "two members")
        httpx.put(f"{nodes[0].url}/v1/inventory/JUMPERS", json={"stock": 1_000_000}, timeout=10)

        def place_until_validated(http: httpx.Client, key: str) -> dict[str, object]:
            """What a client does: retry with the same key, on another node when one is down."""
            deadline = time.monotonic() + 90
            attempt = 0
            while time.monotonic() < deadline:
                node = nodes[attempt % 2]
                attempt += 1
                try:
                    answer = http.post(
                        f"{node.url}/v1/orders",
                        params={"wait_for": "VALIDATED", "timeout": "10"},
                        json=ORDER,
                        headers={"Idempotency-Key": key},
                    )
                except httpx.TransportError:
                    continue  # that node is restarting: ask the other one
                if answer.status_code in (200, 201) and answer.json()["state"] == "VALIDATED":
                    return dict(answer.json())
                assert answer.status_code in (200, 201, 202, 503), (answer.status_code, answer.text)
                stop.wait(float(answer.headers.get("retry-after", "0.2")))  # as the client is told
            raise AssertionError(f"order {key} not validated within 90 s")

        errors: list[BaseException] = []

        def client(k: int) -> None:
            try:
                with httpx.Client(follow_redirects=True, timeout=30) as http:
                    i = 0
                    while not stop.is_set():
                        key = f"rolling-{k}-{i}"
                        outcomes[key] = place_until_validated(http, key)
                        i += 1
            except BaseException as exc:
                errors.append(exc)

        clients = [threading.Thread(target=client, args=(k,)) for k in range(4)]
        for thread in clients:
            thread.start()
        for node in nodes:  # the rolling restart
            wait_for(lambda: len(outcomes) >= 5, 60, "traffic")
            assert node.stop() == 0
            node.start()
            node.wait_ready()
            wait_for(lambda: all(cluster_size(n) == 2 for n in nodes), 60, "two members again")
        placed_before_the_end = len(outcomes)
        stop.set()
        for thread in clients:
            thread.join(120)
        assert not any(thread.is_alive() for thread in clients)
        assert errors == []
        assert len(outcomes) >= placed_before_the_end > 10
        assert all(order["state"] == "VALIDATED" for order in outcomes.values())
        # After both restarts, once both nodes have settled (a GET meanwhile may get 503 + Retry-After),
        # the cluster still serves every one of them, unchanged.
        for node in nodes:
            node.wait_ready()
        with httpx.Client(follow_redirects=True, timeout=10) as http:
            for order in outcomes.values():
                assert http.get(f"{nodes[0].url}/v1/orders/{order['id']}").json() == order
    finally:
        stop.set()
        for node in nodes:
            node.stop()
        services.stop()
