"""The reply hand-over: its format and signature (no Kafka), and the secret nodes agree on (real broker)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from stategate.app.handover import ReplyPart, handover_body, node_tag, read_handover, sign, tag_of, verify
from stategate.streams.cluster_secret import agreed_secret
from stategate.streams.kafka_settings import KafkaSettings


def test_a_reply_part_survives_the_hand_over_body() -> None:
    part = ReplyPart(201, "text/plain", b"\x00binary\xff", "more", (("allow", "GET"),))
    assert read_handover(handover_body("abcd1234-ff", part)) == ("abcd1234-ff", part)


def test_headers_the_gateway_owns_are_not_taken_from_a_hand_over() -> None:
    body = handover_body("id", ReplyPart(200, "a/b", b"", None, (("connection", "close"), ("x-ok", "1"))))
    assert read_handover(body)[1].headers == (("x-ok", "1"),)


def test_only_the_cluster_secret_signs_a_hand_over() -> None:
    body = handover_body("id", ReplyPart(200, "a/b", b"x"))
    assert verify("s3cret", body, sign("s3cret", body))
    assert not verify("s3cret", body, sign("other", body))
    assert not verify("s3cret", body + b" ", sign("s3cret", body))
    assert not verify("", body, sign("", body))  # no secret, no hand-over
    assert not verify("s3cret", body, None)


def test_correlation_ids_name_their_node_by_tag() -> None:
    tag = node_tag("http://127.0.0.1:8080/")
    assert tag == node_tag("http://127.0.0.1:8080") and len(tag) == 8
    assert tag_of(f"{tag}-0123456789abcdef") == tag
    assert tag_of("no-tag-here") == "" and tag_of("plain") == ""


def test_a_malformed_hand_over_is_refused() -> None:
    with pytest.raises(ValueError):
        read_handover(b'{"correlation_id": "x"}')


async def test_nodes_without_a_configured_secret_agree_on_one_through_kafka(kafka: str) -> None:
    settings = KafkaSettings(broker=kafka, namespace=f"t-secret-{uuid.uuid4().hex[:8]}")

    first_three = await asyncio.gather(*(agreed_secret(settings) for _ in range(3)))  # racing on an empty topic
    later = await agreed_secret(settings)

    assert len(set(first_three)) == 1
    assert later == first_three[0]
    assert len(later) == 64
