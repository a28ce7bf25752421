"""The Kafka consumer and producer under every stategate Faust app: Faust's aiokafka driver, mended.

Written for faust-streaming 0.15.3, mode-streaming 0.7.1 and aiokafka 0.14
(pinned in pyproject.toml). Each deviation from Faust is small, named here,
and tested in tests/test_faust_transport.py; each could be offered upstream.

1. **No consumer thread.** Faust runs aiokafka in a thread of its own and
   passes every fetch and every rebalance callback across a queue between
   two event loops; here aiokafka runs in the app's loop, and fetched
   records go straight to the streams.
2. **No fetched record is dropped without rewinding.** Faust's `getmany`
   drops the records of a batch it stops delivering (flow stopped, partition
   paused, new generation) and counts on a later seek to the committed
   offset. Here a partition whose records were not delivered is sought back
   to the first of them, in the same generation; after a rebalance the
   committed offset is the place to resume, and a partition that has none is
   read from its beginning (aiokafka's `seek_to_committed` leaves such a
   partition where the dropped records had left it).
3. **An empty set of active partitions means none.** aiokafka reads an empty
   partition filter as "all partitions".
4. **Pausing pauses.** Faust's `pause_partitions` only keeps records from
   reaching streams; here aiokafka stops fetching the partition too, so no
   records are fetched just to be thrown away (and changelog records are
   not left unread in aiokafka's buffer, which held back every fetch).
5. **No ack for an event of an earlier generation.** Streams skip such
   events and ack them, and an ack lets the commit pass the offset, although
   the event was never processed.
6. **The commit never passes an offset that was not acked.** Faust's check of
   a gap at the head of the acked offsets is off by one, and skipped when
   the committed offset is 0.
7. **A commit waits for every buffered send.** Faust's producer flush gives
   up after 0.1 s, so an offset commit could overtake a table's changelog
   write.
8. **`fetch_max_wait_ms` is a setting** (Faust hard-codes 1,500 ms).
9. **A rebalance commits first.** Faust drops the acked offsets of revoked
   partitions before it waits for the agents and commits, so that commit
   is empty and the next owner processes again all since the last periodic
   commit; here the agents finish, their offsets are committed, and only then
   are the partitions given up. That last commit (and the one at shutdown)
   is made even while a periodic commit is in flight, which Faust skips.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, cast

import aiokafka
from aiokafka.errors import CommitFailedError, ConsumerStoppedError, IllegalStateError, KafkaError
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.structs import OffsetAndMetadata
from faust.exceptions import ConsumerNotStarted
from faust.transport.consumer import Consumer as FaustConsumer
from faust.transport.consumer import ensure_TP, ensure_TPset
from faust.transport.drivers import aiokafka as driver
from faust.types import TP, Message
from faust.types.transports import ConsumerT, ProducerT
from faust.types.tuples import ConsumerMessage
from mode import Service, ServiceT
from mode.utils.times import Seconds, want_seconds

from .erasable_keys import business_key
from .kafka_settings import durability_configs

log = logging.getLogger("stategate.streams.faust_transport")

RecordMap = Mapping[TP, list[Any]]


class InLoopConsumer(FaustConsumer):
    """Faust's consumer over an aiokafka consumer running in the app's own event loop."""

    consumer_stopped_errors: ClassVar[tuple[type[BaseException], ...]] = (ConsumerStoppedError,)

    _consumer: aiokafka.AIOKafkaConsumer | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The next offset each partition is read from: set by every seek and
        # after every delivered record, so a record is delivered once per seek.
        self._next_offset: dict[TP, int] = {}

    # -- the aiokafka consumer --------------------------------------------------------------------

    async def on_start(self) -> None:
        self._consumer = self._create_consumer()
        await self._consumer.start()

    async def on_stop(self) -> None:
        await super().on_stop()
        if self._consumer is not None:
            await self._consumer.stop()
        cast(driver.Transport, self.transport)._topic_waiters.clear()

    def _create_consumer(self) -> aiokafka.AIOKafkaConsumer:
        conf = self.app.conf
        transport = cast(driver.Transport, self.transport)
        auth = driver.credentials_to_aiokafka_auth(conf.broker_credentials, conf.ssl_context)
        servers = driver.server_list(transport.url, transport.default_port)
        if self.app.client_only:
            return aiokafka.AIOKafkaConsumer(
                client_id=conf.broker_client_id,
                bootstrap_servers=servers,
                enable_auto_commit=True,
                auto_offset_reset=conf.consumer_auto_offset_reset,
                fetch_max_wait_ms=self._fetch_max_wait_ms,
                **auth,
            )
        return aiokafka.AIOKafkaConsumer(
            client_id=conf.broker_client_id,
            group_id=conf.id,
            group_instance_id=conf.consumer_group_instance_id,
            bootstrap_servers=servers,
            partition_assignment_strategy=[self.app.assignor],
            enable_auto_commit=False,
            auto_offset_reset=conf.consumer_auto_offset_reset,
            max_poll_records=conf.broker_max_poll_records,
            max_poll_interval_ms=int((conf.broker_max_poll_interval or 0) * 1000.0),
            max_partition_fetch_bytes=conf.consumer_max_fetch_size,
            fetch_max_wait_ms=self._fetch_max_wait_ms,
            request_timeout_ms=int(conf.broker_request_timeout * 1000.0),
            check_crcs=conf.broker_check_crcs,
            session_timeout_ms=int(conf.broker_session_timeout * 1000.0),
            rebalance_timeout_ms=int(conf.broker_rebalance_timeout * 1000.0),
            heartbeat_interval_ms=int(conf.broker_heartbeat_interval * 1000.0),
            isolation_level="read_committed" if self.in_transaction else "read_uncommitted",
            metadata_max_age_ms=conf.consumer_metadata_max_age_ms,
            connections_max_idle_ms=conf.consumer_connections_max_idle_ms,
            **auth,
        )

    @property
    def _fetch_max_wait_ms(self) -> int:
        return int(getattr(self.app, "fetch_max_wait_ms", 100))

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        """Commit what the agents finished before giving the partitions up (deviation 9).

        Faust forgets the acked offsets of revoked partitions first and waits
        for the agents afterwards, so its commit at revocation commits nothing,
        and whoever gets a partition next processes again everything since the
        last periodic commit.
        """
        if revoked and self._consumer is not None and self._consumer.assignment():
            self.stop_flow()
            self.app.flow_control.suspend()
            self.app.flow_control.clear()  # events no agent has taken yet: read again after the rebalance
            try:
                await asyncio.wait_for(self.wait_empty(), timeout=self.app.conf.broker_session_timeout / 2)
            except TimeoutError:
                log.warning("agents still busy at revocation: committing what they finished")
                await self.commit_and_end_transactions()
            log.debug("committed before the rebalance", extra={"revoked": len(revoked)})
        for tp in revoked:
            self._next_offset.pop(tp, None)
        await super().on_partitions_revoked(revoked)

    def _ensure_consumer(self) -> aiokafka.AIOKafkaConsumer:
        if self._consumer is None:
            raise ConsumerNotStarted("Consumer not yet started")
        return self._consumer

    # -- fetching and delivering (deviations 1, 2, 3) ---------------------------------------------

    async def _getmany(self, active_partitions: set[TP] | None, timeout: float) -> RecordMap:
        consumer = self._ensure_consumer()
        if not self.flow_active:
            return {}
        if active_partitions is not None and not active_partitions:
            return {}  # aiokafka would read an empty filter as every partition
        fetcher = consumer._fetcher
        if consumer._closed or fetcher._closed:
            raise ConsumerStoppedError()
        wanted = set(active_partitions) if active_partitions is not None else set()
        with fetcher._subscriptions.fetch_context():
            records: RecordMap = await fetcher.fetched_records(
                wanted, timeout=timeout, max_records=consumer._max_poll_records
            )
            return records

    async def _drain_messages(self, fetcher: ServiceT) -> None:
        """Fetch and hand every record to the streams, until the consumer or the fetcher stops."""
        consumer_stopped = cast(Service, self)._stopped.is_set
        fetcher_stopped = cast(Service, fetcher)._stopped.is_set
        try:
            while not (consumer_stopped() or fetcher_stopped()):
                records, active = await self._wait_next_records(1.0)
                if records and not self.should_stop:
                    await self._deliver(records, active)
                else:
                    await asyncio.sleep(0)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise

    async def _deliver(self, records: RecordMap, active: set[TP] | None) -> None:
        """Hand records to the streams in the scheduler's order; rewind partitions left undelivered."""
        generation = self.app.consumer_generation_id
        undelivered: dict[TP, int] = {}
        callback = self.callback
        expected = self._next_offset
        acks_enabled_for = self.app.topics.acks_enabled_for
        commit_every = self._commit_every
        since_yield = 0
        for tp, record in self.scheduler.iterate(records):
            if tp in undelivered:
                continue
            if (
                not self.flow_active
                or self.app.consumer_generation_id != generation
                or (active is not None and tp not in active and tp not in self._buffered_partitions)
            ):
                undelivered[tp] = record.offset
                continue
            offset = record.offset
            next_offset = expected.get(tp)
            if next_offset is not None:
                if offset < next_offset:
                    continue  # delivered before a seek back
                if offset > next_offset and acks_enabled_for(record.topic):
                    await self._add_gap(tp, next_offset, offset - 1)  # not in the log (compaction)
            if commit_every is not None and self._n_acked >= commit_every:
                self._n_acked = 0
                await self.commit()
            self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
            await callback(self._to_message(tp, record))
            expected[tp] = offset + 1
            self._read_offset[tp] = offset
            since_yield += 1
            if since_yield >= 100:
                since_yield = 0
                await asyncio.sleep(0)  # let HTTP, heartbeats and the agents run
        if undelivered and self.app.consumer_generation_id == generation:
            await self._rewind(undelivered)

    async def _rewind(self, undelivered: Mapping[TP, int]) -> None:
        """Seek partitions back to their first undelivered record, so it is fetched again."""
        assignment = self.assignment()
        for tp, offset in undelivered.items():
            if tp in assignment:
                await self.seek(tp, offset)

    async def _add_gap(self, tp: TP, offset_from: int, offset_to: int) -> None:
        # Faust starts gaps after the committed offset; the committed offset is
        # the next one to read, so a gap may begin right there (deviation 6).
        committed = self._committed_offset[tp]
        if committed is not None:
            offset_from = max(offset_from, committed)
        if offset_from <= offset_to:
            gaps = self._gap[tp]
            gaps.addi(offset_from, offset_to + 1)
            gaps.merge_overlaps()

    def _to_message(self, tp: TP, record: Any) -> ConsumerMessage:
        timestamp: float = record.timestamp / 1000.0 if record.timestamp is not None else cast(float, None)
        return ConsumerMessage(
            record.topic,
            record.partition,
            record.offset,
            timestamp,
            record.timestamp_type,
            record.headers,
            business_key(record.key) if record.key is not None else None,  # readers see business keys
            record.value,
            record.checksum,
            record.serialized_key_size,
            record.serialized_value_size,
            tp,
            generation_id=self.app.consumer_generation_id,
        )

    # -- positions (deviation 2: no committed offset → the beginning) -----------------------------

    async def seek_to_committed(self) -> Mapping[TP, int]:
        consumer = self._ensure_consumer()
        if not consumer.assignment():
            return {}
        committed = cast(Mapping[TP, int], await consumer.seek_to_committed())
        never = [
            tp
            for tp, offset in committed.items()
            if (offset is None or offset <= 0) and not self._is_changelog_tp(tp)  # recovery places changelogs
        ]
        if never:
            await consumer.seek_to_beginning(*map(_kafka_tp, never))
            beginnings = await consumer.beginning_offsets([_kafka_tp(tp) for tp in never])
            committed = {**committed, **{tp: beginnings[tp] for tp in never}}
            for tp in never:
                self._read_offset[tp] = None
        self._next_offset.update(committed)
        return committed

    async def _seek(self, partition: TP, offset: int) -> None:
        self._ensure_consumer().seek(_kafka_tp(partition), offset)
        self._next_offset[partition] = offset

    async def seek_wait(self, partitions: Mapping[TP, int]) -> None:
        consumer = self._ensure_consumer()
        for tp, offset in partitions.items():
            consumer.seek(_kafka_tp(tp), offset)
            self._next_offset[tp] = offset
            if offset > 0:
                self._read_offset[tp] = offset
            else:
                self._read_offset.pop(tp, None)
        await asyncio.wait_for(
            asyncio.gather(*[consumer.position(_kafka_tp(tp)) for tp in partitions]),
            timeout=self.app.conf.broker_request_timeout,
        )

    async def position(self, tp: TP) -> int | None:
        position: int | None = await self._ensure_consumer().position(_kafka_tp(tp))
        return position

    # -- pausing (deviation 4) --------------------------------------------------------------------

    def pause_partitions(self, tps: Iterable[TP]) -> None:
        tps = set(tps)
        super().pause_partitions(tps)
        if self._consumer is not None:
            self._consumer.pause(*self._assigned(tps))

    def resume_partitions(self, tps: Iterable[TP]) -> None:
        tps = set(tps)
        super().resume_partitions(tps)
        if self._consumer is not None:
            self._consumer.resume(*self._assigned(tps))

    def _assigned(self, tps: Iterable[TP]) -> list[aiokafka.TopicPartition]:
        """Those of `tps` that aiokafka has assigned, as aiokafka's own type."""
        assigned = self._ensure_consumer().assignment()
        return [_kafka_tp(tp) for tp in tps if tp in assigned]

    # -- acks and commits (deviations 5, 6) -------------------------------------------------------

    def ack(self, message: Message) -> bool:
        if message.generation_id != self.app.consumer_generation_id:
            message.acked = True  # it will be read again from the committed offset, and acked then
            self._unacked_messages.discard(message)
            return False
        return bool(super().ack(message))

    def _new_offset(self, tp: TP) -> int | None:
        acked = self._acked[tp]
        committed = self._committed_offset[tp]
        if acked and committed is not None and min(acked) > committed:
            # A record at `committed` (the next offset to read) is not acked yet,
            # unless a gap in the log covers it.
            gaps = self._gap[tp]
            if not gaps or not gaps.overlaps(committed):
                return None
        return super()._new_offset(tp)

    async def commit_and_end_transactions(self) -> None:
        """Commit every acked offset now, even when a periodic commit is in flight (deviation 9).

        Faust's `commit()` returns early when another commit is under way, and
        that one covers only the offsets acked before it began; at a rebalance or
        a shutdown the rest would be processed again by the next owner. The
        periodic commit can take a while, since it first waits for the producer's
        buffer to be sent.
        """
        await self.maybe_wait_for_commit_to_finish()
        await self.force_commit(start_new_transaction=False)

    async def _commit(self, offsets: Mapping[TP, int]) -> bool:
        consumer = self._ensure_consumer()
        assignment = self.assignment()
        committable = {
            driver.ensure_aiokafka_TP(tp): OffsetAndMetadata(offset, "")
            for tp, offset in offsets.items()
            if tp in assignment
        }
        log.debug(
            "committing offsets",
            extra={"offsets": {f"{tp.topic}:{tp.partition}": o.offset for tp, o in committable.items()}},
        )
        try:
            await consumer.commit(committable)
        except CommitFailedError as exc:
            if "already rebalanced" in str(exc):
                log.warning("offsets not committed: the group rebalanced first", extra={"offsets": len(committable)})
                return False
            log.exception("committing offsets failed")
            await self.crash(exc)
            return False
        except (IllegalStateError, KafkaError) as exc:
            log.exception("committing offsets failed", extra={"assignment": str(assignment)})
            await self.crash(exc)
            return False
        return True

    # -- the rest of Faust's consumer interface ---------------------------------------------------

    async def subscribe(self, topics: Iterable[str]) -> None:
        self._ensure_consumer().subscribe(topics=set(topics), listener=_RebalanceListener(self))

    def assignment(self) -> set[TP]:
        return ensure_TPset(self._ensure_consumer().assignment())

    def highwater(self, tp: TP) -> int:
        consumer = self._ensure_consumer()
        if self.in_transaction:
            return cast(int, consumer.last_stable_offset(_kafka_tp(tp)))
        return cast(int, consumer.highwater(_kafka_tp(tp)))

    def topic_partitions(self, topic: str) -> int | None:
        if self._consumer is None:
            return None
        return cast(int | None, self._consumer._coordinator._metadata_snapshot.get(topic))

    async def earliest_offsets(self, *partitions: TP) -> Mapping[TP, int]:
        offsets = await self._ensure_consumer().beginning_offsets([_kafka_tp(tp) for tp in partitions])
        return {ensure_TP(tp): offset for tp, offset in offsets.items()}

    async def highwaters(self, *partitions: TP) -> Mapping[TP, int]:
        consumer = self._ensure_consumer()
        if self.in_transaction:
            return {tp: consumer.last_stable_offset(_kafka_tp(tp)) for tp in partitions}
        offsets = await consumer.end_offsets([_kafka_tp(tp) for tp in partitions])
        return {ensure_TP(tp): offset for tp, offset in offsets.items()}

    def _new_topicpartition(self, topic: str, partition: int) -> TP:
        return cast(TP, aiokafka.TopicPartition(topic, partition))

    async def create_topic(
        self,
        topic: str,
        partitions: int,
        replication: int,
        *,
        config: Mapping[str, Any] | None = None,
        timeout: Seconds = 30.0,
        retention: Seconds | None = None,
        compacting: bool | None = None,
        deleting: bool | None = None,
        ensure_created: bool = False,
    ) -> None:
        if not self.app.conf.topic_allow_declare:
            log.warning("topic creation disabled: cannot create %s", topic)
            return
        transport = cast(driver.Transport, self.transport)
        await transport._create_topic(
            self,
            self._ensure_consumer()._client,
            topic,
            partitions,
            replication,
            config=durability_configs(replication) | dict(config or {}),
            timeout=int(want_seconds(timeout) * 1000.0),
            retention=int(want_seconds(retention) * 1000.0) if retention else None,
            compacting=compacting,
            deleting=deleting,
            ensure_created=ensure_created,
        )

    def key_partition(self, topic: str, key: bytes | None, partition: int | None = None) -> int | None:
        metadata = self._ensure_consumer()._client.cluster
        partitions = metadata.partitions_for_topic(topic)
        if partitions is None:
            return None
        if partition is not None:
            return partition
        partitioner: Any = cast(Any, self.app.conf).producer_partitioner or DefaultPartitioner()
        available = list(metadata.available_partitions_for_topic(topic))
        return int(partitioner(key, list(partitions), available))

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer._closed = True

    def verify_event_path(self, now: float, tp: TP) -> None:
        """Faust's slow-processing diagnostics read its consumer thread's timings; there is no thread."""

    def verify_recovery_event_path(self, now: float, tp: TP) -> None:
        """As `verify_event_path`."""


def _kafka_tp(tp: TP) -> aiokafka.TopicPartition:
    """aiokafka checks that it is given its own TopicPartition type; Faust's is another named tuple."""
    return driver.ensure_aiokafka_TP(tp)


class _RebalanceListener(aiokafka.ConsumerRebalanceListener):  # type: ignore[misc]
    """aiokafka's rebalance callbacks, awaited in the app's loop."""

    def __init__(self, consumer: InLoopConsumer) -> None:
        self.consumer = consumer

    async def on_partitions_revoked(self, revoked: Iterable[aiokafka.TopicPartition]) -> None:
        self.consumer.app.on_rebalance_start()
        await self.consumer.on_partitions_revoked(ensure_TPset(revoked))

    async def on_partitions_assigned(self, assigned: Iterable[aiokafka.TopicPartition]) -> None:
        generation = self.consumer._ensure_consumer()._coordinator.generation
        self.consumer.app.consumer_generation_id = generation
        await self.consumer.on_partitions_assigned(ensure_TPset(assigned), generation)


class FlushingProducer(driver.Producer):
    """Faust's aiokafka producer whose flush waits until every buffered send is acknowledged (deviation 7)."""

    async def flush(self) -> None:
        while self.buffer.size:
            await self.buffer.flush()
        await super().flush()


class Transport(driver.Transport):
    """Faust's aiokafka transport with the in-loop consumer and the flushing producer."""

    Consumer: ClassVar[type[ConsumerT]] = InLoopConsumer
    Producer: ClassVar[type[ProducerT]] = FlushingProducer
