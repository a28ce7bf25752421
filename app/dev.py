"""`stategate dev`: everything on one machine for a first look.

Starts a local Kafka broker (or a cluster of them), the order services and
two gateway nodes as child processes, puts demo stock into the warehouse and
prints the URLs. Ctrl-C stops them all.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from pathlib import Path

from .broker import LocalKafka
from .kafka_cluster import LocalKafkaCluster
from .processes import (
    START_TIMEOUT_SECONDS,
    start_stategate,
    terminate,
    wait_until_ready,
    wait_until_services_ready,
)

DEMO_STOCK = {"JUMPERS": 1000, "UNDERPANTS": 1000, "STOCKINGS": 1000}


def wait_until_settled(urls: list[str], timeout: float = START_TIMEOUT_SECONDS) -> None:
    """Wait until every node sees all the others answer and is ready (the last join's rebalance is over)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            views = [json.load(urllib.request.urlopen(f"{u}/v1/cluster", timeout=2)) for u in urls]
            members = [sum(1 for n in view["nodes"] if n["answers"]) for view in views]
            ready = all(urllib.request.urlopen(f"{u}/readyz", timeout=2).status == 200 for u in urls)
        except OSError:
            members, ready = [], False
        if ready and members == [len(urls)] * len(urls):
            return
        time.sleep(0.2)  # polling child processes' start-up
    raise RuntimeError(f"the nodes did not settle within {timeout:.0f}s")


def put_stock(url: str, product: str, stock: int) -> None:
    """PUT a product's stock level through the gateway."""
    request = urllib.request.Request(
        f"{url}/v1/inventory/{product}",
        data=json.dumps({"stock": stock}).encode(),
        method="PUT",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10):
        pass


def run_dev(
    port: int | None = None,
    kafka_port: int | None = None,
    data_dir: Path | None = None,
    nodes_count: int = 2,
    brokers: int = 1,
) -> None:
    """Run the whole system in the foreground until Ctrl-C or SIGTERM; nodes listen on PORT, PORT+1, …

    With several `brokers`, topics are replicated on three of them (or all, when fewer).
    """
    data_dir = (data_dir or Path("data/dev")).resolve()
    port = port or 8080
    kafka: LocalKafka | LocalKafkaCluster
    if brokers == 1:
        kafka = LocalKafka(data_dir / "kafka", port=kafka_port or 9092)
    else:
        kafka = LocalKafkaCluster(data_dir / "kafka", brokers, first_port=kafka_port or 9092)
    children: list[subprocess.Popen[bytes]] = []
    try:
        print(f"starting Kafka on {kafka.bootstrap} ...", flush=True)
        kafka.start()
        # The nodes agree on the secret that signs reply hand-overs through Kafka (streams/cluster_secret.py).
        env = {**os.environ, "STATEGATE_BROKER": kafka.bootstrap, "STATEGATE_REPLICATION_FACTOR": str(min(brokers, 3))}
        services = start_stategate("services", "--data-dir", str(data_dir / "services"), env=env)
        children.append(services)
        nodes: dict[str, subprocess.Popen[bytes]] = {}
        for i in range(1, nodes_count + 1):
            node_port = str(port + i - 1)
            node_dir = str(data_dir / f"node-{i}")
            nodes[f"http://127.0.0.1:{node_port}"] = start_stategate(
                "node", "--port", node_port, "--node-id", f"node-{i}", "--data-dir", node_dir, env=env
            )
        children.extend(nodes.values())
        for node_url, node in nodes.items():
            wait_until_ready(node_url, node)
        wait_until_settled(list(nodes))
        wait_until_services_ready(data_dir / "services", services)
        url = next(iter(nodes))
        for product, stock in DEMO_STOCK.items():
            put_stock(url, product, stock)
        gateways = "".join(f"  gateway    {u}   (node-{i})\n" for i, u in enumerate(nodes, start=1))
        print(
            "\nstategate dev is ready\n"
            f"  Kafka      {kafka.bootstrap}\n"
            f"{gateways}"
            f"  live page  {url}/\n"
            f"  cluster    {url}/v1/cluster\n"
            f"  API docs   {url}/docs\n"
            f"  demo stock {', '.join(f'{p}={n}' for p, n in DEMO_STOCK.items())}\n\n"
            f"  curl -X POST '{url}/v1/orders?wait_for=VALIDATED' "
            """-d '{"customer_id":"c1","product":"JUMPERS","quantity":2,"price":9.5}'\n\n"""
            "Ctrl-C stops everything.",
            flush=True,
        )
        while all(child.poll() is None for child in children):
            time.sleep(0.5)  # supervising children; nothing else to do
        print("a process exited; stopping", flush=True)
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        for child in children:  # all at once, then wait for each
            if child.poll() is None:
                child.terminate()
        for child in children:
            terminate(child, 20)
        kafka.stop()
