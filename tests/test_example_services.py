"""The service SDK and the example services: handler logic, then the topic contract on a real broker.

The integration tests play the gateway with plain aiokafka: they write
request records with the documented headers and read the reply records from
a reply topic of their own.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from stategate.app.config import Settings
from stategate.sdk import Reply, Service, ServiceError, ServiceRequest, UnanswerableRequest
from stategate.streams.admin import TopicSpec, ensure_topics
from stategate.streams.example_services import EXAMPLE_SERVICES, basket, customers, echo, stream_length

from .conftest import new_namespace
from .processes import Stategate, system_env, wait_for

PARTITIONS = 12  # the Settings default, which the services process uses
REPLY_TIMEOUT = 60.0  # the first request also waits for the services' consumer group to form


def request(method: str, target: str, body: bytes = b"", **headers: bytes) -> ServiceRequest:
    record_headers = {":method": method.encode(), ":path": target.encode(), "correlation-id": b"c1", "reply-to": b"r"}
    record_headers.update({name.replace("_", "-"): value for name, value in headers.items()})
    return ServiceRequest.from_record(record_headers, body, b"k")


async def collect(chunks: Any) -> list[Any]:
    return [chunk async for chunk in chunks]


# --- handler logic, no Kafka ---


def test_request_record_is_read_into_path_query_and_headers() -> None:
    req = request("post", "/42/items?x=1&y=a%20b", b"{}", content_type=b"application/json")

    assert (req.method, req.target, req.path) == ("POST", "/42/items?x=1&y=a%20b", "/42/items")
    assert req.query == {"x": "1", "y": "a b"}
    assert req.segments == ("42", "items")
    assert req.headers == {"content-type": "application/json", "correlation-id": "c1", "reply-to": "r"}
    assert (req.body, req.correlation_id, req.reply_to, req.key) == (b"{}", "c1", "r", b"k")
    assert request("GET", "").path == "/"
    assert request("GET", "/").segments == ()


def test_request_without_reply_to_cannot_be_answered() -> None:
    with pytest.raises(UnanswerableRequest):
        ServiceRequest.from_record({":method": b"GET", "correlation-id": b"c1"}, b"", None)


def test_malformed_json_body_is_a_422() -> None:
    with pytest.raises(ServiceError) as raised:
        request("PUT", "/1", b"{nope").json()
    assert raised.value.status == 422
    assert raised.value.reply().content_type == "application/problem+json"


async def test_echo_replies_method_path_and_body_as_text() -> None:
    reply = await echo(request("PATCH", "/a/b?q=1", b"hi \xff"))

    assert isinstance(reply, Reply)
    assert (reply.status, orjson.loads(reply.body_bytes())) == (
        200,
        {"method": "PATCH", "path": "/a/b?q=1", "body": "hi \ufffd"},
    )


async def test_echo_stream_counts_to_n() -> None:
    chunks = await echo(request("GET", "/stream?n=3"))
    assert await collect(chunks) == [{"i": 0}, {"i": 1}, {"i": 2}]


@pytest.mark.parametrize("n", [None, "", "-1", "x", "1.5", "1001"])
def test_stream_length_out_of_bounds_is_a_422(n: str | None) -> None:
    with pytest.raises(ServiceError) as raised:
        stream_length(n)
    assert raised.value.status == 422


async def test_customers_put_get_and_errors() -> None:
    rows: dict[bytes, bytes] = {}
    put = await customers(request("PUT", "/7", b'{"name": "Ada"}'), rows)
    assert (put.status, orjson.loads(put.body_bytes())) == (200, {"name": "Ada"})
    assert rows == {b"7": b'{"name": "Ada"}'}
    got = await customers(request("GET", "/7"), rows)
    assert orjson.loads(got.body_bytes()) == {"name": "Ada"}

    for method, target, body, status in [
        ("GET", "/8", b"", 404),
        ("PUT", "/7", b"[1]", 422),
        ("PUT", "/7", b"nope", 422),
        ("DELETE", "/7", b"", 405),
        ("GET", "/7/x", b"", 404),
    ]:
        with pytest.raises(ServiceError) as raised:
            await customers(request(method, target, body), rows)
        assert raised.value.status == status, (method, target)
    assert rows == {b"7": b'{"name": "Ada"}'}


async def test_basket_adds_up_a_product_and_empties() -> None:
    rows: dict[bytes, bytes] = {}

    async def call(method: str, target: str, body: object = None) -> Any:
        reply = await basket(request(method, target, b"" if body is None else orjson.dumps(body)), rows)
        assert reply.status == 200
        return orjson.loads(reply.body_bytes())

    assert await call("GET", "/u1") == {"items": []}
    await call("POST", "/u1/items", {"product": "tea", "quantity": 1})
    await call("POST", "/u1/items", {"product": "jam", "quantity": 2})
    both = await call("POST", "/u1/items", {"product": "tea", "quantity": 3})
    assert both == {"items": [{"product": "tea", "quantity": 4}, {"product": "jam", "quantity": 2}]}
    assert await call("GET", "/u1") == both
    assert await call("DELETE", "/u1") == {"items": []}
    assert await call("GET", "/u1") == {"items": []}


@pytest.mark.parametrize(
    "body",
    [b"[]", b"nope", b'{"product": "", "quantity": 1}', b'{"product": "tea", "quantity": 0}',
     b'{"product": "tea", "quantity": true}', b'{"product": "tea", "quantity": 1.5}', b'{"product": "tea"}'],
)  # fmt: skip
async def test_basket_rejects_a_bad_item(body: bytes) -> None:
    with pytest.raises(ServiceError) as raised:
        await basket(request("POST", "/u1/items", body), {})
    assert raised.value.status == 422


class RecordingProducer:
    """Stands in for the Faust app's producer: keeps what would be sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes, int | None, dict[str, bytes]]] = []

    async def send(
        self, topic: str, key: bytes, value: bytes, partition: int | None, timestamp: Any, headers: Any
    ) -> asyncio.Future[None]:
        self.sent.append((topic, key, value, partition, dict(headers)))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def recording_service() -> tuple[Service, RecordingProducer]:
    producer = RecordingProducer()
    app = type("FakeApp", (), {"producer": producer})()
    return Service(app, "test", topic=object()), producer  # type: ignore[arg-type]


async def test_reply_record_is_keyed_by_correlation_id_with_status_and_content_type() -> None:
    service, producer = recording_service()

    async def created(req: ServiceRequest) -> Reply:
        return Reply(201, {"ok": True}, headers={"etag": '"1"'})

    await service.answer(request("GET", "/x"), created)

    assert producer.sent == [
        ("r", b"c1", b'{"ok":true}', None, {":status": b"201", "content-type": b"application/json", "etag": b'"1"'})
    ]


async def test_failing_handler_replies_500_problem() -> None:
    service, producer = recording_service()

    async def broken(req: ServiceRequest) -> Reply:
        raise RuntimeError("boom")

    await service.answer(request("GET", "/x"), broken)

    [(_, _, value, _, headers)] = producer.sent
    assert headers == {":status": b"500", "content-type": b"application/problem+json"}
    assert orjson.loads(value) == {"type": "about:blank", "title": "Internal Server Error", "status": 500}


async def test_streaming_reply_is_more_records_then_end() -> None:
    service, producer = recording_service()

    async def two(req: ServiceRequest) -> AsyncIterator[dict[str, int]]:
        yield {"i": 0}
        yield {"i": 1}

    await service.answer(request("GET", "/s"), two)

    assert [(value, headers.get("batch"), headers[":status"]) for _, _, value, _, headers in producer.sent] == [
        (b'{"i":0}', b"more", b"200"),
        (b'{"i":1}', b"more", b"200"),
        (b"", b"end", b"200"),
    ]
    assert {headers["content-type"] for *_, headers in producer.sent} == {b"application/x-ndjson"}


async def test_stream_failing_midway_ends_with_status_500() -> None:
    service, producer = recording_service()

    async def half(req: ServiceRequest) -> AsyncIterator[dict[str, int]]:
        yield {"i": 0}
        raise RuntimeError("boom")

    await service.answer(request("GET", "/s"), half)

    assert [(headers["batch"], headers[":status"]) for *_, headers in producer.sent] == [
        (b"more", b"200"),
        (b"end", b"500"),
    ]


async def test_request_without_method_is_a_400() -> None:
    service, producer = recording_service()
    req = ServiceRequest.from_record({":path": b"/", "correlation-id": b"c1", "reply-to": b"r"}, b"", None)

    await service.answer(req, echo)

    assert producer.sent[0][4][":status"] == b"400"


# --- the topic contract on a real broker ---


@pytest.fixture(scope="module")
def services(kafka: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A `stategate services` process in its own namespace; yields that namespace's settings."""
    namespace = new_namespace("svc")
    process = Stategate("services", tmp_path_factory.mktemp("services"), system_env(kafka, namespace))
    process.start()
    try:

        def started() -> bool:
            if not process.running:
                raise AssertionError(f"services exited:\n{process.log()[-3000:]}")
            return "services started" in process.log()

        wait_for(started, 60, "the services to start", interval=0.1)
        yield Settings(broker=kafka, namespace=namespace, node_id="tests")
    finally:
        process.stop()


class Gateway:
    """Plays the gateway: writes request records, reads replies from its own reply topic."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.reply_topic = settings.topic(f"replies-{uuid.uuid4().hex[:8]}")
        self.producer = AIOKafkaProducer(bootstrap_servers=settings.broker, acks="all")
        self.consumer = AIOKafkaConsumer(bootstrap_servers=settings.broker, auto_offset_reset="earliest")
        self.received: list[ConsumerRecord[bytes, bytes]] = []

    async def start(self) -> None:
        await ensure_topics(self.settings, [TopicSpec(self.reply_topic, PARTITIONS)])
        await self.producer.start()
        self.consumer.assign([TopicPartition(self.reply_topic, p) for p in range(PARTITIONS)])
        await self.consumer.start()

    async def stop(self) -> None:
        await self.producer.stop()
        await self.consumer.stop()

    async def send(self, service: str, method: str, path: str, body: bytes = b"", **headers: bytes) -> str:
        """Write one request record as the gateway does; returns its correlation id."""
        correlation_id = uuid.uuid4().hex
        record_headers = {
            ":method": method.encode(),
            ":path": path.encode(),
            "content-type": b"application/json",
            "correlation-id": correlation_id.encode(),
            "reply-to": self.reply_topic.encode(),
        }
        record_headers.update(headers)
        key = path.lstrip("/").split("?", 1)[0].split("/", 1)[0] or correlation_id
        topic = self.settings.topic(EXAMPLE_SERVICES[service])
        await self.producer.send_and_wait(topic, body, key=key.encode(), headers=list(record_headers.items()))
        return correlation_id

    async def replies(self, correlation_id: str, until: Any) -> list[ConsumerRecord[bytes, bytes]]:
        """The reply records for `correlation_id`, read until `until(records)` holds."""
        deadline = time.monotonic() + REPLY_TIMEOUT
        while True:
            mine = [record for record in self.received if record.key == correlation_id.encode()]
            if mine and until(mine):
                return mine
            if time.monotonic() > deadline:
                raise AssertionError(f"no complete reply for {correlation_id} within {REPLY_TIMEOUT}s: {mine}")
            for records in (await self.consumer.getmany(timeout_ms=200)).values():
                self.received.extend(records)

    async def reply(self, correlation_id: str) -> ConsumerRecord[bytes, bytes]:
        [record] = await self.replies(correlation_id, lambda records: True)
        return record

    async def call(self, service: str, method: str, path: str, body: object = None) -> tuple[int, Any]:
        """Send a request and wait for its single reply: (status, JSON body)."""
        raw = b"" if body is None else orjson.dumps(body)
        record = await self.reply(await self.send(service, method, path, raw))
        return int(headers_of(record)[":status"]), orjson.loads(record.value or b"null")


def headers_of(record: ConsumerRecord[bytes, bytes]) -> dict[str, bytes]:
    return dict(record.headers)


@pytest.fixture()
async def gateway(services: Settings) -> AsyncIterator[Gateway]:
    caller = Gateway(services)
    await caller.start()
    try:
        yield caller
    finally:
        await caller.stop()


async def test_echo_round_trip_on_the_correlation_ids_partition(gateway: Gateway) -> None:
    correlation_id = await gateway.send("echo", "POST", "/hello/world?x=1", b'{"a": 1}')

    record = await gateway.reply(correlation_id)

    assert record.key == correlation_id.encode()
    partitions = list(range(PARTITIONS))
    assert record.partition == DefaultPartitioner()(correlation_id.encode(), partitions, partitions)
    assert headers_of(record) == {":status": b"200", "content-type": b"application/json"}
    assert orjson.loads(record.value or b"") == {"method": "POST", "path": "/hello/world?x=1", "body": '{"a": 1}'}


async def test_echo_stream_sends_five_records_then_end(gateway: Gateway) -> None:
    correlation_id = await gateway.send("echo", "GET", "/stream?n=5")

    records = await gateway.replies(correlation_id, lambda rs: headers_of(rs[-1]).get("batch") == b"end")

    assert [headers_of(r)["batch"] for r in records] == [b"more"] * 5 + [b"end"]
    assert [orjson.loads(r.value or b"") for r in records[:-1]] == [{"i": i} for i in range(5)]
    assert records[-1].value in (b"", None)
    assert {headers_of(r)[":status"] for r in records} == {b"200"}
    assert {headers_of(r)["content-type"] for r in records} == {b"application/x-ndjson"}


async def test_customers_put_then_get(gateway: Gateway) -> None:
    customer = f"c-{uuid.uuid4().hex[:8]}"
    document = {"name": "Ada", "tags": ["vip"]}

    assert await gateway.call("customers", "PUT", f"/{customer}", document) == (200, document)
    assert await gateway.call("customers", "GET", f"/{customer}") == (200, document)
    status, problem = await gateway.call("customers", "GET", f"/unknown-{customer}")
    assert (status, problem["status"], problem["title"]) == (404, 404, "Not Found")
    status, problem = await gateway.call("customers", "PUT", f"/{customer}", [1, 2])
    assert (status, problem["status"]) == (422, 422)


async def test_basket_add_read_empty(gateway: Gateway) -> None:
    user = f"u-{uuid.uuid4().hex[:8]}"

    assert await gateway.call("basket", "POST", f"/{user}/items", {"product": "tea", "quantity": 1}) == (
        200,
        {"items": [{"product": "tea", "quantity": 1}]},
    )
    basket = {"items": [{"product": "tea", "quantity": 1}, {"product": "jam", "quantity": 2}]}
    assert await gateway.call("basket", "POST", f"/{user}/items", {"product": "jam", "quantity": 2}) == (200, basket)
    assert await gateway.call("basket", "GET", f"/{user}") == (200, basket)
    assert await gateway.call("basket", "DELETE", f"/{user}") == (200, {"items": []})
    assert await gateway.call("basket", "GET", f"/{user}") == (200, {"items": []})
    status, _ = await gateway.call("basket", "POST", f"/{user}/items", {"product": "tea", "quantity": 0})
    assert status == 422


async def test_unanswerable_request_is_skipped_and_the_service_goes_on(gateway: Gateway) -> None:
    topic = gateway.settings.topic(EXAMPLE_SERVICES["echo"])
    await gateway.producer.send_and_wait(topic, b"lost", key=b"x", headers=[(":method", b"GET"), (":path", b"/x")])

    assert await gateway.call("echo", "GET", "/after") == (200, {"method": "GET", "path": "/after", "body": ""})
