"""The erasable key format (streams/erasable_keys.py): bytes, round trips, refusals and partitions.

No broker: tests/test_jvm_keys.py checks the same format against Kafka's own
console tools and the JVM classes in clients/jvm.
"""

from __future__ import annotations

import uuid

import pytest
from aiokafka.partitioner import DefaultPartitioner, murmur2
from hypothesis import given, settings
from hypothesis import strategies as st

from stategate.streams.erasable_keys import (
    GUID_LENGTH,
    SEPARATOR,
    ErasablePartitioner,
    business_key,
    erasable_key,
    guid_of,
    new_guid,
    partition_for,
)

GUID = "0123456789abcdef0123456789abcdef"

# Apache Kafka's UtilsTest.testMurmur2 (clients/src/test/java/org/apache/kafka/common/utils/UtilsTest.java,
# apache/kafka commit f55581dc73953c3509a4702433aeeeddc2970779): Utils.murmur2 of each input, a signed Java int.
KAFKA_MURMUR2 = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}

# The same business keys and partitions are asserted by clients/jvm's ErasableKeysTest, so the two
# languages cannot drift apart: (business key, {partition count: partition}).
SHARED_PARTITIONS = [
    ("order-1", {6: 4, 7: 4, 100: 26}),
    ("customer-42", {6: 3, 7: 1, 100: 53}),
    ("ünïcødé", {6: 2, 7: 6, 100: 26}),
    ("", {6: 3, 7: 2, 100: 81}),
]

business_keys = st.binary(max_size=64).filter(lambda key: SEPARATOR not in key)


def java_int(unsigned: int) -> int:
    return unsigned - (1 << 32) if unsigned >= 1 << 31 else unsigned


@pytest.mark.parametrize(("data", "expected"), KAFKA_MURMUR2.items())
def test_murmur2_is_kafkas(data: bytes, expected: int) -> None:
    assert java_int(murmur2(data)) == expected


@pytest.mark.parametrize(("data", "expected"), KAFKA_MURMUR2.items())
def test_a_plain_key_goes_where_kafkas_default_partitioner_sends_it(data: bytes, expected: int) -> None:
    # Utils.toPositive(Utils.murmur2(keyBytes)) % numPartitions
    for partitions in (1, 6, 7, 100):
        assert partition_for(data, partitions) == (expected & 0x7FFFFFFF) % partitions
        assert partition_for(erasable_key(data), partitions) == (expected & 0x7FFFFFFF) % partitions


@pytest.mark.parametrize(("key", "expected"), SHARED_PARTITIONS)
def test_the_partitions_the_jvm_tests_expect(key: str, expected: dict[int, int]) -> None:
    for partitions, partition in expected.items():
        assert partition_for(key.encode(), partitions) == partition
        assert partition_for(erasable_key(key, GUID), partitions) == partition


def test_the_format_byte_for_byte() -> None:
    key = erasable_key("order-1", GUID)
    assert key == b"order-1\x000123456789abcdef0123456789abcdef"
    assert len(key) == len(b"order-1") + 33
    assert erasable_key(b"order-1", GUID) == key
    assert erasable_key("ü", GUID) == b"\xc3\xbc\x00" + GUID.encode()


def test_new_guids_are_random_uuid4_hex() -> None:
    guids = {new_guid() for _ in range(100)}
    assert len(guids) == 100
    for guid in guids:
        assert len(guid) == GUID_LENGTH and guid == guid.lower()
        assert uuid.UUID(hex=guid).version == 4


def test_each_erasable_key_is_unique_and_keeps_its_business_key() -> None:
    keys = [erasable_key("order-1") for _ in range(100)]
    assert len(set(keys)) == 100
    assert {business_key(key) for key in keys} == {b"order-1"}


@given(business_keys, st.uuids())
@settings(database=None)
def test_round_trip(key: bytes, guid: uuid.UUID) -> None:
    raw = erasable_key(key, guid.hex)
    assert business_key(raw) == key
    assert guid_of(raw) == guid.hex
    assert erasable_key(business_key(raw), guid_of(raw)) == raw


@given(business_keys, st.integers(min_value=1, max_value=10_000))
@settings(database=None)
def test_an_erasable_key_lands_on_its_business_keys_partition(key: bytes, partitions: int) -> None:
    assert partition_for(erasable_key(key), partitions) == partition_for(key, partitions)


@given(st.binary(max_size=80))
@settings(database=None)
def test_any_key_without_a_suffix_is_its_own_business_key(raw: bytes) -> None:
    if guid_of(raw) is None:
        assert business_key(raw) == raw
    else:
        assert raw == erasable_key(business_key(raw), guid_of(raw))


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"order-1",
        b"x" * 33,  # as long as a suffix, no separator
        b"a-little-bit-longer-string-than-thirty-three-bytes",
        b"order-1\x000123456789ABCDEF0123456789ABCDEF",  # uppercase hex
        b"order-1\x000123456789abcdef0123456789abcde",  # 31 hex digits
        b"order-1\x000123456789abcdef0123456789abcdeg",  # not hex
        b"order-1-0123456789abcdef0123456789abcdef",  # another separator
        b"order-1\x00" + str(uuid.UUID(GUID)).encode()[:32],  # dashes
    ],
)
def test_plain_keys_pass_through(raw: bytes) -> None:
    assert business_key(raw) == raw
    assert guid_of(raw) is None
    assert partition_for(raw, 6) == (murmur2(raw) & 0x7FFFFFFF) % 6


def test_an_empty_business_key_is_a_key() -> None:
    raw = erasable_key(b"", GUID)
    assert raw == b"\x00" + GUID.encode()
    assert business_key(raw) == b"" and guid_of(raw) == GUID


@pytest.mark.parametrize("key", [b"\x00", b"a\x00b", "a\x00b", b"order-1\x00" + GUID.encode(), "\ud800"])
def test_a_business_key_with_a_nul_byte_is_refused(key: bytes | str) -> None:
    with pytest.raises(ValueError):
        erasable_key(key, GUID)


@pytest.mark.parametrize(
    "guid",
    ["", GUID[:-1], GUID + "0", GUID.upper(), str(uuid.UUID(GUID)), "g" * 32, "０" * 32, "-" + GUID[1:]],
)
def test_a_bad_guid_is_refused(guid: str) -> None:
    with pytest.raises(ValueError):
        erasable_key("order-1", guid)


def test_a_topic_has_partitions() -> None:
    with pytest.raises(ValueError):
        partition_for(b"order-1", 0)


@given(business_keys, st.integers(min_value=1, max_value=64))
@settings(database=None)
def test_the_partitioner_agrees_with_aiokafkas_default_on_the_business_key(key: bytes, count: int) -> None:
    partitions = list(range(count))
    available = partitions[: max(1, count // 2)]
    chosen = ErasablePartitioner()(erasable_key(key), partitions, available)
    assert chosen == DefaultPartitioner()(key, partitions, available) == partition_for(key, count)


def test_the_partitioner_leaves_records_without_a_key_to_the_default() -> None:
    partitioner = ErasablePartitioner()
    chosen = {partitioner(None, [0, 1, 2, 3, 4, 5], [1, 4]) for _ in range(50)}
    assert chosen == {1, 4}  # a random available partition, as aiokafka's DefaultPartitioner picks
    assert {partitioner(None, [0, 1, 2], []) for _ in range(50)} <= {0, 1, 2}
