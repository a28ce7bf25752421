"""The project's mended Faust consumer path: each deviation from Faust, with a test that fails without it.

The unit tests build the real consumer of an (unstarted) Faust app and
drive its bookkeeping; the last test runs a Faust app against the real
broker and pauses a partition while records are being delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import cast

import pytest
from aiokafka import AIOKafkaProducer
from faust.contrib.asgi import faust_app_running
from faust.transport.conductor import Conductor
from faust.transport.consumer import Consumer as FaustConsumer
from faust.types import TP, Message
from faust.types.tuples import ConsumerMessage
from mode.utils.queues import FlowControlEvent, FlowControlQueue

from stategate.app.config import Settings
from stategate.streams.admin import TopicSpec, ensure_topics
from stategate.streams.faust_app import StategateApp, create_faust_app
from stategate.streams.faust_recovery import FlowControl
from stategate.streams.faust_transport import FlushingProducer, InLoopConsumer
from stategate.streams.topics import raw_topic


def unstarted_app(tmp_path: Path) -> StategateApp:
    return create_faust_app(f"unit-{uuid.uuid4().hex[:6]}", Settings(broker="127.0.0.1:9", data_dir=tmp_path))


def message(tp: TP, offset: int, generation: int) -> ConsumerMessage:
    return ConsumerMessage(
        tp.topic, tp.partition, offset, 0.0, 0, [], b"k", b"v", None, 1, 1, tp, generation_id=generation
    )


async def test_resuming_flow_that_already_flows_clears_no_buffer() -> None:
    flow = FlowControl(initially_suspended=False)
    queue: FlowControlQueue[int] = FlowControlQueue(maxsize=10, flow_control=flow, clear_on_resume=True)
    await queue.put(1)
    flow.resume()  # recovery calls this again and again while records flow
    assert queue.qsize() == 1
    flow.suspend()
    flow.resume()  # the resume that ends a suspension clears what was queued before it
    assert queue.qsize() == 0
    # Faust's own flow control drops the queued event on every resume:
    stock = FlowControlEvent(initially_suspended=False)
    stock_queue: FlowControlQueue[int] = FlowControlQueue(maxsize=10, flow_control=stock, clear_on_resume=True)
    await stock_queue.put(1)
    stock.resume()
    assert stock_queue.qsize() == 0


async def test_the_commit_never_passes_an_offset_that_was_not_acked(tmp_path: Path) -> None:
    consumer = unstarted_app(tmp_path).consumer
    assert isinstance(consumer, InLoopConsumer)
    tp = TP("t", 0)
    consumer._committed_offset[tp] = 10  # the next offset to read is 10
    consumer._acked[tp] = [11, 12]  # 10 is still being processed
    assert consumer._new_offset(tp) is None
    assert FaustConsumer._new_offset(consumer, tp) == 13  # Faust would commit past 10

    other = TP("t", 1)
    consumer._committed_offset[other] = 0
    consumer._acked[other] = [2, 3]
    assert consumer._new_offset(other) is None  # Faust skips its check when the committed offset is 0

    compacted = TP("t", 2)
    consumer._committed_offset[compacted] = 5
    await consumer._add_gap(compacted, 5, 5)  # offset 5 is not in the log
    consumer._acked[compacted] = [6, 7]
    assert consumer._new_offset(compacted) == 8


async def test_an_event_of_an_earlier_generation_is_not_acked(tmp_path: Path) -> None:
    app = unstarted_app(tmp_path)
    consumer = cast(InLoopConsumer, app.consumer)
    cast(Conductor, app.topics)._acking_topics.add("t")
    app.consumer_generation_id = 2
    tp = TP("t", 0)
    assert consumer.ack(message(tp, 5, generation=1)) is False
    assert consumer._acked[tp] == []
    assert consumer.ack(message(tp, 6, generation=2)) is True
    assert consumer._acked[tp] == [6]
    assert FaustConsumer.ack(consumer, message(tp, 7, generation=1)) is True  # Faust acks it


async def test_a_flush_waits_for_every_buffered_send(tmp_path: Path) -> None:
    class SlowBuffer:
        """Sends one buffered record every 0.15 s (Faust's flush gives up after 0.1 s without one)."""

        size = 3

        async def flush(self) -> None:
            await asyncio.sleep(0.15)
            self.size = max(0, self.size - 1)

    producer = unstarted_app(tmp_path).producer
    assert isinstance(producer, FlushingProducer)
    producer.buffer = SlowBuffer()  # type: ignore[assignment]
    await producer.flush()
    assert producer.buffer.size == 0


async def test_the_last_commit_is_made_even_while_a_periodic_one_is_in_flight(tmp_path: Path) -> None:
    """At a rebalance or a shutdown every acked offset is committed; Faust skips it when a commit is under way."""
    app = unstarted_app(tmp_path)
    consumer = cast(InLoopConsumer, app.consumer)
    tp = TP("t", 0)
    committed: list[dict[TP, int]] = []

    async def commit_to_kafka(offsets: Mapping[TP, int]) -> bool:
        committed.append(dict(offsets))
        return True

    consumer._commit = commit_to_kafka  # type: ignore[method-assign]  # the broker's part is not under test here
    consumer.assignment = lambda: {tp}  # type: ignore[method-assign]
    in_flight: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    consumer._commit_fut = in_flight  # a periodic commit, begun before these offsets were acked
    asyncio.get_running_loop().call_later(0.05, in_flight.set_result, None)

    consumer._acked[tp] = [0, 1, 2]
    await FaustConsumer.commit_and_end_transactions(consumer)
    assert committed == []  # Faust waited for the other commit and committed nothing

    await consumer.commit_and_end_transactions()
    assert committed == [{tp: 3}]


@pytest.mark.timeout(120)
async def test_records_fetched_while_a_partition_is_paused_are_delivered_after_resume(
    kafka: str, tmp_path: Path
) -> None:
    """A partition is paused in the middle of a fetched batch, then resumed.

    Faust drops the rest of the batch and carries on after it (nothing seeks
    back without a rebalance); the mended consumer rewinds to the first
    record it did not deliver.
    """
    settings = Settings(broker=kafka, namespace=f"t-pause-{uuid.uuid4().hex[:6]}", data_dir=tmp_path, partitions=1)
    app = create_faust_app("pause", settings)
    app.conf.stream_buffer_maxsize = 100_000  # no back-pressure: only the pause holds the partition
    topic = raw_topic(app, "numbers", settings)
    name = settings.topic("numbers")
    tp = TP(name, 0)
    seen: list[int] = []
    total = 3000
    all_seen = asyncio.Event()

    @app.agent(topic, name="count")
    async def count(stream):  # type: ignore[no-untyped-def]
        async for value in stream:
            seen.append(int(value))
            if len(seen) >= total:
                all_seen.set()

    consumer = cast(InLoopConsumer, app.consumer)
    deliver = consumer.callback

    async def pause_at_some_records(message: Message) -> None:
        await deliver(message)
        if message.offset in (100, 1500):  # while the rest of its batch waits to be delivered
            app.consumer.pause_partitions({tp})
            asyncio.get_running_loop().call_later(0.3, app.consumer.resume_partitions, {tp})

    consumer.callback = pause_at_some_records

    await ensure_topics(settings, [TopicSpec(name, 1)])
    producer = AIOKafkaProducer(bootstrap_servers=kafka, linger_ms=5)
    await producer.start()
    try:
        for number in range(total):
            await producer.send(name, str(number).encode())
        await producer.flush()
    finally:
        await producer.stop()

    async with faust_app_running(app, stop_timeout=10):
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_seen.wait(), timeout=30)
        await asyncio.sleep(0.5)  # anything delivered twice would show now
    assert sorted(set(range(total)) - set(seen))[:20] == []
    assert seen == sorted(seen)
