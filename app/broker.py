"""A real single-node Apache Kafka broker (KRaft) on 127.0.0.1, without Docker.

The broker's jars come from Maven Central: `kafka/pom.xml` names them and
Maven copies them into a cache outside the work tree (`~/.cache/stategate`,
or `$STATEGATE_CACHE_DIR`). An existing Kafka distribution is used instead when
`KAFKA_HOME` is set. `stategate kafka` and the test suite both start the
broker through `LocalKafka`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from aiokafka import AIOKafkaProducer

from stategate.streams.kafka_settings import durability_configs

from .processes import terminate

KAFKA_VERSION = "4.1.1"
REPO_ROOT = Path(__file__).resolve().parent.parent
POM = REPO_ROOT / "kafka" / "pom.xml"
READY_TIMEOUT_SECONDS = 90.0
STOP_TIMEOUT_SECONDS = 30.0

log = logging.getLogger("stategate.kafka")


class BrokerError(RuntimeError):
    """The broker could not be installed or started."""


def cache_dir() -> Path:
    """Where resolved broker jars are kept between runs."""
    base = os.environ.get("STATEGATE_CACHE_DIR") or Path.home() / ".cache" / "stategate"
    return Path(base)


def broker_classpath() -> str:
    """The broker's classpath: `$KAFKA_HOME/libs`, or jars resolved with Maven."""
    kafka_home = os.environ.get("KAFKA_HOME")
    if kafka_home:
        libs = Path(kafka_home) / "libs"
        if not libs.is_dir():
            raise BrokerError(f"KAFKA_HOME={kafka_home} has no libs/ directory")
        return f"{libs}/*"
    return f"{resolve_jars()}/*"


def resolve_jars(version: str = KAFKA_VERSION) -> Path:
    """Copy the broker jars from Maven Central into the cache, once per version and pom.xml."""
    pom_digest = hashlib.sha256(POM.read_bytes()).hexdigest()[:8]
    libs = cache_dir() / f"kafka-{version}-{pom_digest}" / "libs"
    if (libs / ".complete").exists():
        return libs
    if shutil.which("mvn") is None:
        raise BrokerError("Maven (mvn) is needed to fetch the Kafka broker jars")
    libs.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="libs-", dir=libs.parent))
    log.info("resolving Kafka %s jars with Maven into %s", version, libs)
    command = [
        "mvn", "-q", "-B", "-f", str(POM),
        f"-Dkafka.version={version}",
        "dependency:copy-dependencies",
        f"-DoutputDirectory={staging}",
        "-DincludeScope=runtime",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise BrokerError(f"mvn failed:\n{result.stdout}\n{result.stderr}")
    (staging / ".complete").touch()
    if libs.exists():
        shutil.rmtree(libs)
    staging.rename(libs)
    return libs


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing uses right now, below the ephemeral range.

    A port the OS hands out for outgoing connections may be taken by one (a
    Kafka client's, or a probe's self-connect) between choosing it and
    binding it; a port below that range cannot be.
    """
    first_ephemeral = _first_ephemeral_port()
    for _ in range(200):
        port = random.randrange(10_000, first_ephemeral)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _first_ephemeral_port() -> int:
    try:
        return max(int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0]), 10_001)
    except (OSError, ValueError, IndexError):
        return 32_768


def new_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64 without padding.

    It may begin with "-", so pass it as `--cluster-id=ID`, never as a separate argument.
    """
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


SERVER_PROPERTIES = """\
process.roles=broker,controller
node.id={node_id}
{quorum}
listeners=PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller_port}
advertised.listeners=PLAINTEXT://{host}:{port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={log_dir}
num.partitions={partitions}
auto.create.topics.enable=true
default.replication.factor={replication}
offsets.topic.replication.factor={replication}
offsets.topic.num.partitions=8
transaction.state.log.replication.factor={replication}
transaction.state.log.min.isr={min_isr}
share.coordinator.state.topic.replication.factor={replication}
share.coordinator.state.topic.min.isr={min_isr}
group.initial.rebalance.delay.ms=0
log.cleaner.backoff.ms=1000
log.retention.check.interval.ms=1000
log.segment.bytes=16777216
"""

LOG4J2_PROPERTIES = """\
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = {level}
rootLogger.appenderRef.stdout.ref = STDOUT
logger.started.name = kafka.server.KafkaRaftServer
logger.started.level = info
"""


@dataclass(frozen=True)
class Quorum:
    """The controller quorum a broker belongs to, when it is one of several (app/kafka_cluster.py)."""

    voters: str
    """`controller.quorum.voters`: `id@127.0.0.1:port` for every member."""
    cluster_id: str
    replication: int


class LocalKafka:
    """One KRaft broker process on 127.0.0.1 (or `host`), with its data under `data_dir`.

    Alone, it is its own controller quorum; with a `quorum` it is one member
    of a cluster. `command_prefix` runs it through another command, e.g.
    `ip netns exec NS` for a broker on a host of its own in tests. Use as a
    context manager, or call `start()` and `stop()`. Restarting on the same
    `data_dir` keeps every topic and message.
    """

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        partitions: int = 4,
        heap: str = "768m",
        log_level: str = "warn",
        node_id: int = 1,
        controller_port: int | None = None,
        quorum: Quorum | None = None,
        host: str = "127.0.0.1",
        command_prefix: Sequence[str] = (),
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.host = host
        self.command_prefix = list(command_prefix)
        self.port = port or free_port()
        self.partitions = partitions
        self.heap = heap
        self.log_level = log_level
        self.node_id = node_id
        self.controller_port = controller_port
        self.quorum = quorum
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        """The address clients connect to."""
        return f"{self.host}:{self.port}"

    def start(self) -> None:
        """Format storage if new, start the broker and wait until clients can connect."""
        self.launch()
        try:
            self.wait_until_ready()
        except BaseException:
            self.stop()
            raise

    def launch(self) -> None:
        """Format storage if new and start the broker process, without waiting for it.

        The members of a cluster are launched together: none is ready before
        a majority of the controller quorum runs.
        """
        classpath = broker_classpath()
        config = self._write_config()
        if not (self.data_dir / "logs" / "meta.properties").exists():
            self._run_storage_format(classpath, config)
        log_file = open(self.data_dir / "kafka.log", "ab")
        self.process = subprocess.Popen(
            [*self.command_prefix, *self._java(classpath), "kafka.Kafka", str(config)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log_file.close()

    def stop(self) -> None:
        """Stop the broker cleanly (SIGTERM), killing it if it does not stop in time."""
        process, self.process = self.process, None
        if process is not None:
            terminate(process, STOP_TIMEOUT_SECONDS)

    def kill(self) -> None:
        """Stop the broker at once (SIGKILL), as a crash would."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def wait(self) -> int:
        """Block until the broker process exits; return its exit code."""
        if self.process is None:
            return 0
        return self.process.wait()

    def __enter__(self) -> LocalKafka:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _java(self, classpath: str) -> list[str]:
        java = shutil.which("java")
        if java is None:
            raise BrokerError("Java 17 or newer is needed to run the Kafka broker")
        return [
            java,
            f"-Xmx{self.heap}",
            f"-Xms{self.heap}",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.properties'}",
            "-cp",
            classpath,
        ]

    def _write_config(self) -> Path:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        controller_port = self._controller_port()
        config = self.data_dir / "server.properties"
        if self.quorum is None:
            quorum = f"controller.quorum.bootstrap.servers={self.host}:{controller_port}"
        else:
            quorum = f"controller.quorum.voters={self.quorum.voters}"
        replication = 1 if self.quorum is None else self.quorum.replication
        config.write_text(
            SERVER_PROPERTIES.format(
                node_id=self.node_id,
                host=self.host,
                quorum=quorum,
                port=self.port,
                controller_port=controller_port,
                log_dir=self.data_dir / "logs",
                partitions=self.partitions,
                replication=replication,
                min_isr=durability_configs(replication).get("min.insync.replicas", "1"),
            )
        )
        (self.data_dir / "log4j2.properties").write_text(LOG4J2_PROPERTIES.format(level=self.log_level))
        return config

    def _controller_port(self) -> int:
        # The controller port is stored in the formatted metadata, so a restart
        # on the same data directory must reuse it.
        if self.controller_port is not None:
            return self.controller_port
        saved = self.data_dir / "controller.port"
        if saved.exists():
            return int(saved.read_text())
        port = free_port()
        saved.write_text(str(port))
        return port

    def _run_storage_format(self, classpath: str, config: Path) -> None:
        if self.quorum is None:
            how = ["--standalone", f"--cluster-id={new_cluster_id()}"]
        else:
            how = [f"--cluster-id={self.quorum.cluster_id}"]  # the static voters are in the config
        command = self._java(classpath) + ["kafka.tools.StorageTool", "format", *how, "-c", str(config)]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise BrokerError(f"formatting Kafka storage failed:\n{result.stdout}{result.stderr}")

    def wait_until_ready(self) -> None:
        """Wait until clients can fetch metadata from this broker; BrokerError if it exits or takes too long."""
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                tail = (self.data_dir / "kafka.log").read_text(errors="replace")[-4000:]
                raise BrokerError(f"Kafka exited with {self.process.returncode}:\n{tail}")
            if _port_open(self.host, self.port) and asyncio.run(_accepts_clients(self.bootstrap)):
                return
            time.sleep(0.2)  # polling an external process start-up, not product logic
        raise BrokerError(f"Kafka did not become ready within {READY_TIMEOUT_SECONDS:.0f}s")


def _port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


async def _accepts_clients(bootstrap: str) -> bool:
    """True when a producer can fetch cluster metadata from `bootstrap`."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, request_timeout_ms=2000)
    try:
        await asyncio.wait_for(producer.start(), timeout=3.0)
        return True
    except Exception:
        return False
    finally:
        await producer.stop()
