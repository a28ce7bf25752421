"""Request/response to any service behind a Kafka request topic, matched by correlation id.

    views/service_calls.py ─► ServiceCalls.send ─► CommandProducer ─► the service's request topic
    reply topic ─► streams/replies.ReplyConsumer ─► ServiceCalls.on_reply ─► the parked request
                                                        └─► another node's reply: hand it over

Each request gets a correlation id that (1) begins with this node's tag and
(2) hashes, with Kafka's default partitioner, to a reply-topic partition
this node reads. A service that keys its reply by the correlation id thus
answers this node; when the partition has moved meanwhile, the node that
reads the reply sees whose it is from the tag and hands it over.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Iterable

import httpx
from aiokafka import ConsumerRecord

from stategate.streams.commands import CommandProducer
from stategate.streams.erasable_keys import partition_for
from stategate.streams.example_services import EXAMPLE_SERVICES
from stategate.streams.inventory_reads import INVENTORY_SERVICE as INVENTORY_SERVICE  # for views/inventory.py
from stategate.streams.order_checks import ORDER_FLOW_SERVICES
from stategate.streams.replies import ReplyConsumer

from .config import Settings
from .errors import NodeStopping, TooManyCalls, UnknownService
from .handover import HANDOVER_PATH, SIGNATURE_HEADER, ReplyPart, handover_body, node_tag, passed_on, sign, tag_of
from .http_answers import PROBLEM_JSON
from .metrics import Metrics

log = logging.getLogger("stategate.services")


def service_topics(settings: Settings) -> dict[str, str]:
    """Service name → request topic: the examples (namespaced), then `STATEGATE_SERVICES` (as given)."""
    built_in = {**ORDER_FLOW_SERVICES, **EXAMPLE_SERVICES}
    topics = {name: settings.topic(topic) for name, topic in built_in.items()}
    for entry in filter(None, (part.strip() for part in settings.services.split(","))):
        name, equals, topic = entry.partition("=")
        if not equals or not name.strip() or not topic.strip():
            raise ValueError(f"STATEGATE_SERVICES: expected name=topic, got {entry!r}")
        topics[name.strip()] = topic.strip()
    return topics


class PendingCall:
    """A request written to a service, waiting for its reply records."""

    __slots__ = ("service", "correlation_id", "parts", "started", "stopped")

    def __init__(self, service: str, correlation_id: str) -> None:
        self.service = service
        self.correlation_id = correlation_id
        self.parts: asyncio.Queue[ReplyPart] = asyncio.Queue()
        self.started = time.perf_counter()
        self.stopped = False  # ended by the node shutting down, not by a reply

    async def next_part(self, timeout: float) -> ReplyPart | None:
        """The next reply record, or None when none comes within `timeout` seconds."""
        try:
            async with asyncio.timeout(timeout):  # no extra task, unlike asyncio.wait_for
                return await self.parts.get()
        except TimeoutError:
            return None


class ServiceCalls:
    """Writes service requests, and routes every reply record to the request that waits for it."""

    def __init__(
        self,
        settings: Settings,
        producer: CommandProducer,
        metrics: Metrics,
        members: Callable[[], Iterable[str]],
        client: Callable[[], httpx.AsyncClient],
    ) -> None:
        self.settings = settings
        self.producer = producer
        self.metrics = metrics
        self.topics = service_topics(settings)
        self.members = members
        self.client = client
        self.tag = node_tag(settings.url)
        # Signs hand-overs; `Node.running` agrees on one through Kafka when none is configured.
        self.cluster_secret = settings.cluster_secret
        self.replies = ReplyConsumer(settings, self.on_reply)
        self._pending: dict[str, PendingCall] = {}
        self._closed = False

    def __len__(self) -> int:
        return len(self._pending)

    def topic_of(self, service: str) -> str:
        """The request topic of a service; raises UnknownService."""
        topic = self.topics.get(service)
        if topic is None:
            raise UnknownService(service)
        return topic

    async def send(self, service: str, method: str, path: str, content_type: str, body: bytes) -> PendingCall:
        """Write a request record for `service` and park its reply; raises UnknownService,
        TooManyCalls, NodeStopping or KafkaUnavailable. The caller must `finish()` the call."""
        topic = self.topic_of(service)
        if self._closed:
            raise NodeStopping()
        if len(self._pending) >= self.settings.max_service_requests:
            raise TooManyCalls()
        correlation_id = self.new_correlation_id()
        call = PendingCall(service, correlation_id)
        self._pending[correlation_id] = call
        headers = [
            (":method", method.encode()),
            (":path", path.encode()),
            ("content-type", content_type.encode()),
            ("correlation-id", correlation_id.encode()),
            ("reply-to", self.replies.topic.encode()),
        ]
        key = path.lstrip("/").split("?", 1)[0].split("/", 1)[0] or correlation_id
        try:
            await self.producer.send(topic, key, body, headers)
        except BaseException:
            self.finish(call)
            raise
        return call

    async def ask(self, service: str, path: str, wait: float) -> ReplyPart | None:
        """GET `path` from `service` for the gateway itself: its whole reply, or None after `wait` seconds.

        Raises what `send` raises.
        """
        call = await self.send(service, "GET", path, "application/json", b"")
        try:
            return await call.next_part(wait)
        finally:
            self.finish(call)

    def close(self, grace: float) -> None:
        """Send no more requests; after `grace` seconds, end the calls still waiting.

        Replies that come within the grace period are still answered (the
        reply consumer runs until the HTTP server has stopped).
        """
        self._closed = True
        asyncio.get_running_loop().call_later(grace, self._stop_waiting)

    def _stop_waiting(self) -> None:
        for call in list(self._pending.values()):
            self.finish(call)
            call.stopped = True
            call.parts.put_nowait(ReplyPart(503, PROBLEM_JSON, b""))

    def finish(self, call: PendingCall) -> None:
        """Forget a call (answered, timed out or its client left): later replies are dropped."""
        self._pending.pop(call.correlation_id, None)

    def new_correlation_id(self) -> str:
        """A correlation id with this node's tag, hashing to a reply partition this node reads."""
        mine = self.replies.partitions
        count = self.replies.partition_count
        for _ in range(256):
            candidate = f"{self.tag}-{uuid.uuid4().hex}"
            if not mine or partition_for(candidate.encode(), count) in mine:
                return candidate
        return candidate  # the reply will be handed over

    async def on_reply(self, record: ConsumerRecord[bytes, bytes]) -> None:
        """A reply record from this node's share of the reply topic."""
        if record.value is None:
            return  # a tombstone: an erasure pass rolling the segment (streams/erasure_pass.py)
        if record.key is None:
            self.metrics.replies_dropped.labels("no key").inc()
            return
        correlation_id = record.key.decode("utf-8", "replace")
        part = _reply_part(record)
        if self.deliver(correlation_id, part):
            return
        tag = tag_of(correlation_id)
        if tag and tag != self.tag:
            await self.hand_over(tag, correlation_id, part)
        else:
            self.metrics.replies_dropped.labels("late or duplicate").inc()

    def deliver(self, correlation_id: str, part: ReplyPart) -> bool:
        """Give a reply record to the request waiting here; False if none is."""
        call = self._pending.get(correlation_id)
        if call is None:
            return False
        if part.ends:
            self.finish(call)  # a duplicate of a whole reply finds no one
        call.parts.put_nowait(part)
        return True

    async def hand_over(self, tag: str, correlation_id: str, part: ReplyPart) -> None:
        """Send a reply to the live node whose tag the correlation id bears."""
        target = next((url for url in self.members() if node_tag(url) == tag), None)
        if target is None or not self.cluster_secret:
            reason = "no such node" if target is None else "no cluster secret"
            self.metrics.replies_dropped.labels(reason).inc()
            log.warning("reply dropped", extra={"correlation_id": correlation_id, "reason": reason})
            return
        body = handover_body(correlation_id, part)
        try:
            response = await self.client().post(
                target + HANDOVER_PATH,
                content=body,
                headers={
                    SIGNATURE_HEADER: sign(self.cluster_secret, body),
                    "content-type": "application/json",
                },
            )
        except httpx.HTTPError as exc:
            self.metrics.replies_dropped.labels("hand-over failed").inc()
            log.warning("hand-over failed", extra={"correlation_id": correlation_id, "error": repr(exc)})
            return
        self.metrics.reply_handovers.labels("sent").inc()
        log.debug(
            "reply handed over",
            extra={"correlation_id": correlation_id, "to": target, "status": response.status_code},
        )


def _reply_part(record: ConsumerRecord[bytes, bytes]) -> ReplyPart:
    pairs = [(name.lower(), (value or b"").decode("latin-1")) for name, value in record.headers]
    headers = dict(pairs)
    status = headers.get(":status", "200")
    return ReplyPart(
        status=int(status) if status.isdigit() and 100 <= int(status) <= 599 else 502,
        content_type=headers.get("content-type", "application/json"),
        body=record.value or b"",
        batch=headers.get("batch"),
        headers=passed_on(pairs),
    )
