"""How every stategate Faust app is configured, on the project's own consumer path."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from typing import Any, cast

import faust
from faust.types import TableT, TopicT, TransportT
from mode.utils.objects import cached_property

from .erasable_keys import ErasablePartitioner
from .erasing_table import STANDBY_BUFFER_SIZE, ErasingTable
from .faust_recovery import FlowControl, TableManager
from .faust_transport import Transport
from .kafka_settings import KafkaSettings


def broker_urls(bootstrap: str) -> list[str]:
    """`host:port,host:port` as the `kafka://` URLs Faust expects."""
    return [f"kafka://{server.strip()}" for server in bootstrap.split(",") if server.strip()]


class StategateApp(faust.App):
    """A Faust app whose transport, flow control, table recovery and tables are the project's.

    These are Faust's own extension points: the transport an app is made
    with (faust_transport.py), its flow-control object and the `TableManager`
    setting (faust_recovery.py), and the `Table` setting (erasing_table.py).
    """

    fetch_max_wait_ms: int = 100
    on_readiness: Callable[[bool], None] | None = None
    """Told `ready` whenever it changes: tables recovered and no rebalance under way, or not."""

    @property
    def ready(self) -> bool:
        """Partitions assigned, tables recovered, no rebalance under way."""
        recovered = cast(TableManager, self.tables).recovery.completed.is_set()
        return recovered and not self.rebalancing

    def on_rebalance_start(self) -> None:
        super().on_rebalance_start()
        self._tell_readiness()

    def on_rebalance_end(self) -> None:
        super().on_rebalance_end()
        self._tell_readiness()

    def _tell_readiness(self) -> None:
        if self.on_readiness is not None:
            self.on_readiness(self.ready)

    def _new_transport(self) -> TransportT:
        return Transport(self.conf.broker_consumer, self)

    def _new_producer_transport(self) -> TransportT:
        return Transport(self.conf.broker_producer, self)

    @cached_property
    def flow_control(self) -> FlowControl:
        return FlowControl(loop=self.loop)


def create_faust_app(app_id: str, settings: KafkaSettings) -> StategateApp:
    """A Faust app tuned for request latency, with RocksDB tables under `data_dir`.

    The app id (the consumer group, and the prefix of its changelog topics)
    is put in the settings' namespace, like every topic.

    Keys and values are raw bytes everywhere: the records module reads and
    writes the JSON itself, so any producer can take part.
    """
    app_id = settings.topic(app_id)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    # The changelogs are the truth; the local RocksDB is a cache, rebuilt from them at every start.
    # After a SIGKILL it may hold a value whose changelog record was never sent, and a check would
    # then skip that value's order as applied while nothing downstream ever saw it.
    shutil.rmtree(settings.data_dir / app_id, ignore_errors=True)
    app = StategateApp(
        app_id,
        broker=broker_urls(settings.broker),
        store="rocksdb://",
        datadir=str(settings.data_dir / app_id),
        canonical_url=settings.url,
        web_enabled=False,
        autodiscover=False,
        key_serializer="raw",
        value_serializer="raw",
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        producer_partitioner=ErasablePartitioner(),  # erasable keys go where their business keys do
        producer_linger=settings.producer_linger_ms / 1000.0,
        broker_commit_interval=settings.commit_interval_seconds,
        stream_wait_empty=True,  # a rebalance waits for events in flight and commits them: no replays
        table_standby_replicas=settings.standby_replicas,
        broker_session_timeout=settings.session_timeout_seconds,
        broker_heartbeat_interval=settings.heartbeat_interval_seconds,
        broker_rebalance_timeout=settings.rebalance_timeout_seconds,
        TableManager=TableManager,
        Table=ErasingTable,  # every copy of a table compacts erased keys
    )
    app.fetch_max_wait_ms = settings.fetch_max_wait_ms
    return app


def json_table(
    app: faust.App,
    name: str,
    settings: KafkaSettings,
    changelog_topic: TopicT | None = None,
    partitions: int | None = None,
) -> TableT[bytes, bytes]:
    """A RocksDB table of raw UTF-8 keys and JSON values, readable by any consumer of its changelog.

    `changelog_topic` replaces Faust's `<app>-<name>-changelog`: a check's
    table whose changelog is also its output (streams/order_steps.py). The
    table has as many partitions as the topic its agent reads (by default
    the project's count).
    """
    return app.Table(
        name,
        partitions=partitions or settings.partitions,
        key_type=bytes,
        value_type=bytes,
        changelog_topic=changelog_topic,
        standby_buffer_size=STANDBY_BUFFER_SIZE,
        options=table_options(settings),
    )


def table_options(settings: KafkaSettings) -> dict[str, Any]:
    """RocksDB options for one table: rocksdict, with caches sized for a laptop."""
    return {
        "driver": "rocksdict",
        "block_cache_size": settings.rocksdb_block_cache_bytes,
        "write_buffer_size": settings.rocksdb_write_buffer_bytes,
        "max_write_buffer_number": 2,
    }
