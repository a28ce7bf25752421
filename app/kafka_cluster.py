"""A real Apache Kafka cluster of several KRaft brokers on 127.0.0.1, without Docker.

Every member is a broker and a controller (`process.roles=broker,controller`);
the members are the static controller quorum (`controller.quorum.voters`), so
a majority must run for the cluster to elect leaders. Each member has its own
ports and data directory under `data_dir/broker-N`; the ports and the cluster
id are kept in `data_dir/cluster.json`, so a cluster restarted on the same
directory, or one member restarted alone, comes back as it was.

Internal topics get the cluster's replication factor, and a majority of it as
their minimum in-sync replicas (streams/kafka_settings.py `durability_configs`).
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import os
import subprocess
from pathlib import Path
from types import TracebackType

from .broker import LocalKafka, Quorum, free_port, new_cluster_id

CLUSTER_FILE = "cluster.json"


class LocalKafkaCluster:
    """`brokers` KRaft brokers on 127.0.0.1, each its own process; members are numbered from 1."""

    def __init__(
        self,
        data_dir: Path,
        brokers: int = 3,
        first_port: int | None = None,
        partitions: int = 4,
        heap: str = "512m",
        log_level: str = "warn",
    ) -> None:
        """`first_port`: members listen on it and the ports after it (by default, free ports)."""
        if brokers < 1:
            raise ValueError("a cluster has at least one broker")
        self.data_dir = Path(data_dir).resolve()
        layout = self._layout(brokers, first_port)
        voters = ",".join(f"{i}@127.0.0.1:{member['controller_port']}" for i, member in enumerate(layout, start=1))
        quorum = Quorum(voters, layout_cluster_id(self.data_dir), replication=min(brokers, 3))
        self.brokers = [
            LocalKafka(
                self.data_dir / f"broker-{i}",
                port=member["port"],
                partitions=partitions,
                heap=heap,
                log_level=log_level,
                node_id=i,
                controller_port=member["controller_port"],
                quorum=quorum,
            )
            for i, member in enumerate(layout, start=1)
        ]

    @property
    def bootstrap(self) -> str:
        """Every member's address, comma-separated: what clients are given."""
        return ",".join(broker.bootstrap for broker in self.brokers)

    def broker(self, node_id: int) -> LocalKafka:
        """The member with this node id (1, 2, …)."""
        return self.brokers[node_id - 1]

    def start(self) -> None:
        """Launch every member together, then wait until each serves clients; stop them all if one fails."""
        try:
            for broker in self.brokers:
                broker.launch()
            with concurrent.futures.ThreadPoolExecutor(len(self.brokers)) as pool:
                for waited in [pool.submit(broker.wait_until_ready) for broker in self.brokers]:
                    waited.result()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop every member (SIGTERM, then SIGKILL after a while), all at once."""
        with concurrent.futures.ThreadPoolExecutor(len(self.brokers)) as pool:
            list(pool.map(lambda broker: broker.stop(), self.brokers))

    def wait(self) -> int:
        """Block until any member exits; return its exit code."""
        while True:
            for broker in self.brokers:
                process = broker.process
                if process is None:
                    return 0
                try:
                    return process.wait(timeout=1.0)
                except subprocess.TimeoutExpired:
                    continue

    def __enter__(self) -> LocalKafkaCluster:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _layout(self, brokers: int, first_port: int | None) -> list[dict[str, int]]:
        """Each member's ports: chosen once, then read back, because the quorum's addresses are in its metadata."""
        saved = self.data_dir / CLUSTER_FILE
        if saved.exists():
            layout: list[dict[str, int]] = json.loads(saved.read_text())["brokers"]
            if len(layout) != brokers:
                raise ValueError(f"{self.data_dir} holds a cluster of {len(layout)} brokers, not {brokers}")
            return layout
        self.data_dir.mkdir(parents=True, exist_ok=True)
        ports: set[int] = set() if first_port is None else set(range(first_port, first_port + brokers))
        controller_ports: set[int] = set()
        while len(ports) < brokers or len(controller_ports) < brokers:
            port = free_port()
            if port not in ports:
                (ports if len(ports) < brokers else controller_ports).add(port)
        layout = [
            {"port": port, "controller_port": controller}
            for port, controller in zip(sorted(ports), sorted(controller_ports), strict=True)
        ]
        saved.write_text(json.dumps({"cluster_id": new_cluster_id(), "brokers": layout}))
        return layout


def layout_cluster_id(data_dir: Path) -> str:
    """The cluster id kept in `data_dir/cluster.json`."""
    return str(json.loads((data_dir / CLUSTER_FILE).read_text())["cluster_id"])


def run_kafka(port: int | None = None, data_dir: Path | None = None, brokers: int = 1) -> None:
    """`stategate kafka [--brokers N]`: run one broker, or a cluster, in the foreground until SIGTERM or Ctrl-C.

    Prints one line when every broker serves clients: `stategate kafka ready:
    bootstrap servers HOST:PORT[,HOST:PORT…]`.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    port = port or int(os.environ.get("STATEGATE_PORT", "9092"))
    data_dir = data_dir or Path(os.environ.get("STATEGATE_DATA_DIR", "data/kafka"))
    kafka: LocalKafka | LocalKafkaCluster
    if brokers == 1:
        kafka = LocalKafka(data_dir, port=port)
    else:
        kafka = LocalKafkaCluster(data_dir, brokers, first_port=port)
    try:
        kafka.start()
        print(f"stategate kafka ready: bootstrap servers {kafka.bootstrap} (logs under {data_dir})", flush=True)
        kafka.wait()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        kafka.stop()
        print("stategate kafka stopped", flush=True)
