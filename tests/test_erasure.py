"""DELETE /v1/orders/{id}: two nodes, the services, a real broker and its log cleaner.

The erasure bound is scaled down (segments of half a second, a changelog lag
of a second, a pass a second): `stategate audit` must print nothing about the
order within a minute, while everything about the other orders stays.
"""

from __future__ import annotations

import concurrent.futures
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from websockets.sync.client import connect

from .conftest import System
from .processes import Node, Stategate, wait_for
from .sse import Reader
from .test_cluster import PARTITIONS, Cluster, order_body, stock_jumpers

FAST_ERASURE = {
    "STATEGATE_ERASURE_SEGMENT_SECONDS": "0.5",
    "STATEGATE_ERASURE_COMPACTION_LAG_SECONDS": "0.5",
    "STATEGATE_ERASURE_TOMBSTONE_SECONDS": "0.5",
    "STATEGATE_CHANGELOG_MIN_LAG_SECONDS": "1",
    "STATEGATE_ERASURE_CHECK_SECONDS": "1",
    "STATEGATE_REPLY_RETENTION_SECONDS": "2",
}
BOUND_SECONDS = 90.0


@pytest.fixture(scope="module")
def erasing(kafka: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    running = Cluster(tmp_path_factory.mktemp("erasure"), kafka, 2, **FAST_ERASURE).start()
    try:
        stock_jumpers(running.nodes[0].url)
        yield running
    finally:
        running.stop()


def place(url: str, **extra: object) -> dict[str, object]:
    placed = httpx.post(
        f"{url}/v1/orders",
        params={"wait_for": "VALIDATED"},
        json=order_body(**extra),
        timeout=20,
        follow_redirects=True,
    )
    assert placed.status_code in (200, 201), placed.text  # 200: after the 303 to the owner
    body = placed.json()
    assert isinstance(body, dict)
    return body


def audit(cluster: Cluster, order_id: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-m", "stategate", "audit", order_id],
        capture_output=True,
        text=True,
        timeout=60,
        env=cluster.env,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def until_audit_is_empty(cluster: Cluster, order_id: str) -> None:
    """Wait for `stategate audit` to find nothing of the order; fail with what it still found."""
    deadline = time.monotonic() + BOUND_SECONDS
    while (found := audit(cluster, order_id)) != []:
        assert time.monotonic() < deadline, f"after {BOUND_SECONDS:g}s, audit still finds: {found}"
        time.sleep(1)


def files_holding(process: Stategate, needle: str) -> list[str]:
    """The process's files that hold `needle`: RocksDB's (write-ahead logs included), not the process's own log."""
    root = Path(process.data_dir)
    files = [p for p in root.rglob("*") if p.is_file() and p != process.log_path]
    return [str(p.relative_to(root)) for p in files if needle.encode() in p.read_bytes()]


def erase(url: str, order_id: str) -> httpx.Response:
    return httpx.delete(f"{url}/v1/orders/{order_id}", timeout=20, follow_redirects=True)


def test_an_erased_order_is_gone_everywhere_and_never_comes_back_while_its_neighbours_stay(erasing: Cluster) -> None:
    first, second = erasing.nodes
    order_id = f"erase-me-{uuid.uuid4().hex}"
    customer = f"c-{uuid.uuid4().hex[:8]}"
    place(first.url, id=order_id, customer_id=customer)
    neighbour = place(first.url, customer_id=customer)  # same customer, same product
    assert audit(erasing, order_id), "the order is in Kafka before the erasure"

    erased = erase(second.url, order_id)  # either node: the other redirects to the owner
    assert erased.status_code == 202, erased.text
    assert erased.json()["erasure"] == "pending" and erased.json()["within_seconds"] > 0
    for node in erasing.nodes:
        gone = httpx.get(f"{node.url}/v1/orders/{order_id}", timeout=10, follow_redirects=True)
        assert gone.status_code == 404 and gone.json()["erased"] is True, gone.text
        again = httpx.post(f"{node.url}/v1/orders", json=order_body(id=order_id), timeout=10, follow_redirects=True)
        assert again.status_code == 410, again.text
    listed = httpx.get(f"{first.url}/v1/orders", params={"customer_id": customer}, timeout=10).json()["orders"]
    assert order_id not in [o["id"] for o in listed]

    until_audit_is_empty(erasing, order_id)
    wait_for(lambda: erase(first.url, order_id).status_code == 204, 30, "DELETE to say the erasure is complete")
    assert audit(erasing, str(neighbour["id"])), "the neighbour's records stay"
    assert httpx.get(f"{first.url}/v1/orders/{neighbour['id']}", timeout=10, follow_redirects=True).status_code == 200
    for node in erasing.nodes:
        assert files_holding(node, order_id) == [], f"{node.node_id}'s RocksDB files still hold the order"
    assert files_holding(erasing.services, order_id) == [], "the services' tables still hold the order"
    completed = sum(node.metric("stategate_erasures_completed_total") for node in erasing.nodes)
    assert completed >= 1


def test_erasing_an_unknown_order_is_404_and_a_malformed_id_or_one_with_the_separator_is_422(erasing: Cluster) -> None:
    url = erasing.nodes[0].url
    assert erase(url, f"never-{uuid.uuid4().hex}").status_code == 404
    for bad in ("bad%20id", "with%00separator", "x" * 65):
        malformed = httpx.delete(f"{url}/v1/orders/{bad}", timeout=10)
        assert malformed.status_code == 422, bad
        assert malformed.headers["content-type"] == "application/problem+json"


def test_erasing_twice_is_accepted_twice_and_an_erasure_racing_the_checks_still_ends_with_nothing(
    erasing: Cluster,
) -> None:
    url = erasing.nodes[0].url
    order_id = f"race-{uuid.uuid4().hex}"
    placed = httpx.post(f"{url}/v1/orders", json=order_body(id=order_id), timeout=10, follow_redirects=True)
    assert placed.status_code == 202  # written; the checks are under way

    def accepted() -> bool:
        return erase(url, order_id).status_code == 202  # 404 until the owner's view has the order

    wait_for(accepted, 10, "the DELETE to be accepted")
    assert erase(url, order_id).status_code in (202, 204)
    until_audit_is_empty(erasing, order_id)
    gone = httpx.get(f"{url}/v1/orders/{order_id}", timeout=10, follow_redirects=True)
    assert gone.status_code == 404


def test_a_customers_stream_is_told_of_an_erasure_goes_on_and_never_replays_the_erased_order(
    erasing: Cluster,
) -> None:
    first, second = erasing.nodes
    customer = f"c-{uuid.uuid4().hex[:8]}"
    erased_id, kept_id, later_id = (f"{name}-{uuid.uuid4().hex}" for name in ("erased", "kept", "later"))
    for order_id in (erased_id, kept_id):
        place(first.url, id=order_id, customer_id=customer)
    url = f"{second.url}/v1/events"
    with httpx.stream("GET", url, params={"customer_id": customer}, timeout=30) as response:
        events = iter(Reader(response))
        seen = {next(events).json()["id"], next(events).json()["id"]}  # the customer's orders as they stand
        assert seen == {erased_id, kept_id}
        assert erase(first.url, erased_id).status_code == 202
        told = next(events)
        assert (told.event, told.json()) == ("erased", {"order": erased_id, "reason": "order erased"})
        assert told.id is not None
        place(first.url, id=later_id, customer_id=customer)  # the stream goes on
        later = next(events)
        assert (later.event, later.json()["id"]) == ("order", later_id)
    # Back with an id from before the customer's first order: the erasure again, never the erased order's
    # versions. The node's memory holds every record since it started (it has not restarted: this test runs
    # before the restart test); after a restart, or once the request itself is compacted away, no notice.
    from_the_start = ",".join(f"{partition}:-1" for partition in range(PARTITIONS))
    headers = {"Last-Event-ID": from_the_start}
    with httpx.stream("GET", url, params={"customer_id": customer}, headers=headers, timeout=30) as response:
        resumed = []
        for event in Reader(response):
            resumed.append((event.event, event.json().get("order", event.json().get("id"))))
            if event.id is not None:
                break  # the batch owed since that id ends with the only event id in it
    assert ("erased", erased_id) in resumed
    assert ("order", erased_id) not in resumed
    assert ("order", kept_id) in resumed and ("order", later_id) in resumed


def test_an_erasure_survives_restarts_and_a_rebalance(erasing: Cluster) -> None:
    first, second = erasing.nodes
    order_id = f"restart-{uuid.uuid4().hex}"
    place(first.url, id=order_id)
    assert erase(first.url, order_id).status_code == 202
    second.stop()  # the first node now owns every partition
    try:
        wait_for(lambda: _owns_all(first) and first.is_ready(), 30, "the first node to own every partition")
        gone = httpx.get(f"{first.url}/v1/orders/{order_id}", timeout=10)
        assert gone.status_code == 404 and gone.json()["erased"] is True, gone.text
        first.stop()
        first.start_and_wait()
        assert httpx.get(f"{first.url}/v1/orders/{order_id}", timeout=10).status_code == 404
        assert httpx.post(f"{first.url}/v1/orders", json=order_body(id=order_id), timeout=10).status_code == 410
    finally:
        if not second.running:
            second.start_and_wait()
        wait_for(erasing.settled, 60, "both nodes to own partitions again", interval=0.2)
    assert httpx.get(f"{second.url}/v1/orders/{order_id}", timeout=10, follow_redirects=True).status_code == 404


def _owns_all(node: Node) -> bool:
    cluster = httpx.get(f"{node.url}/v1/cluster", timeout=5).json()
    return len(cluster["nodes"]) == 1


def test_parked_requests_live_streams_and_sockets_on_an_erased_order_are_told_and_end(node_only: System) -> None:
    url = node_only.url  # no services: the order stays CREATED, so its streams stay open
    order_id = f"watched-{uuid.uuid4().hex}"
    placed = httpx.post(f"{url}/v1/orders", json=order_body(id=order_id), timeout=10)
    assert placed.status_code == 202, placed.text
    pool = concurrent.futures.ThreadPoolExecutor(1)
    parked = pool.submit(
        httpx.get, f"{url}/v1/orders/{order_id}", params={"wait_for": "VALIDATED", "timeout": 30}, timeout=40
    )
    with (
        httpx.stream("GET", f"{url}/v1/orders/{order_id}/events", timeout=30) as response,
        connect(url.replace("http://", "ws://") + "/v1/ws") as socket,
    ):
        events = iter(Reader(response))
        assert next(events).event == "order"  # the order as it stands, then live
        assert orjson.loads(socket.recv(timeout=10))["type"] == "hello"
        socket.send(orjson.dumps({"op": "subscribe", "orders": [order_id]}).decode())
        assert orjson.loads(socket.recv(timeout=10))["order"]["id"] == order_id
        assert erase(url, order_id).status_code == 202
        assert next(events).event == "erased"
        assert list(events) == []  # and the stream ends
        assert orjson.loads(socket.recv(timeout=10)) == {"type": "erased", "order": order_id}
    answer = parked.result(timeout=10)  # the long-poll ends at once, not after its 30 s
    pool.shutdown()
    assert answer.status_code == 404 and answer.json()["erased"] is True, answer.text


def test_a_standby_copy_of_the_services_tables_forgets_the_erased_order_too(erasing: Cluster, tmp_path: Path) -> None:
    first = erasing.services
    second = Stategate("services", tmp_path / "services-2", erasing.env).start()
    try:

        def one_group() -> bool:
            generations = {first.services_generation(), second.services_generation()}
            return len(generations) == 1 and None not in generations

        second.wait_while_running(one_group, 60, "both services processes to share the partitions")
        order_id = f"standby-{uuid.uuid4().hex}"
        place(erasing.nodes[0].url, id=order_id, customer_id=f"c-{uuid.uuid4().hex[:8]}")

        def both_copies_hold_it() -> bool:  # the active copy of the customer's partition, and its standby
            return bool(files_holding(first, order_id)) and bool(files_holding(second, order_id))

        wait_for(both_copies_hold_it, 30, "the active and the standby table copies to hold the order")
        assert erase(erasing.nodes[0].url, order_id).status_code == 202
        until_audit_is_empty(erasing, order_id)
        for process in (first, second):
            assert files_holding(process, order_id) == [], f"{process.data_dir.name}'s tables still hold the order"
    finally:
        shared = first.services_generation() or 0
        second.stop()
    first.wait_while_running(
        lambda: (first.services_generation() or 0) > shared, 60, "the first services process to own every partition"
    )
