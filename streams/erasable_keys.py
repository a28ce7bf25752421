"""Erasable keys: a business key, one NUL byte and a GUID, so that any single message can be deleted.

Erasable topics are compacted. Compaction keeps the newest record of each key,
so a tombstone deletes every message with its key; to delete *one* message,
each message needs a key of its own. The key is therefore the business key
plus a unique suffix. A partitioner that hashes only the business key keeps a
business key's messages on one partition, in order, and readers strip the
suffix. Producers in every language must agree on the bytes, so the format is
fixed here and, identically, in `clients/jvm` (`dev.stategate.erasure.ErasableKeys`):

    erasable key = business key ‖ 0x00 ‖ guid        (len(business key) + 33 bytes)

- business key: UTF-8 bytes that never contain 0x00 (it may be empty);
- 0x00: one NUL byte, the separator;
- guid: exactly 32 lowercase hexadecimal ASCII characters ([0-9a-f]), a random
  UUID4's hex without dashes.

Reading: a key is erasable when it is at least 33 bytes long, its 33rd byte
from the end is 0x00 and its last 32 bytes are lowercase hex; its business key
is then everything before the separator. Any other key is a plain key and is
its own business key, so readers work on topics that mix both.

Partitioning: a keyed record goes to `(murmur2(business key) & 0x7fffffff) % partitions`,
Kafka's default for keyed records applied to the business key only. An
erasable key therefore lands on the partition its plain business key gets
from Kafka's and aiokafka's default partitioners. A record without a key is
left to aiokafka's default (a random available partition).

Pure functions, importable without Faust: only aiokafka's murmur2 is borrowed.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from aiokafka.partitioner import DefaultPartitioner, murmur2

SEPARATOR = b"\x00"
GUID_LENGTH = 32
SUFFIX_LENGTH = len(SEPARATOR) + GUID_LENGTH
"""33: the bytes an erasable key adds to its business key."""

_HEX = frozenset(b"0123456789abcdef")


def new_guid() -> str:
    """A fresh GUID: a random UUID4 as 32 lowercase hex characters."""
    return uuid.uuid4().hex


def _is_guid(candidate: bytes) -> bool:
    return len(candidate) == GUID_LENGTH and _HEX.issuperset(candidate)


def erasable_key(business_key: bytes | str, guid: str | None = None) -> bytes:
    """`business_key` ‖ 0x00 ‖ `guid` (a new one by default).

    Raises ValueError for a business key that contains 0x00 (or a str that is
    not encodable as UTF-8) and for a guid that is not 32 lowercase hex characters.
    """
    key = business_key.encode() if isinstance(business_key, str) else bytes(business_key)
    if SEPARATOR in key:
        raise ValueError(f"a business key never contains the separator byte 0x00: {key!r}")
    suffix = new_guid() if guid is None else guid
    if not (suffix.isascii() and _is_guid(suffix.encode("ascii"))):
        raise ValueError(f"a guid is {GUID_LENGTH} lowercase hex characters: {suffix!r}")
    return key + SEPARATOR + suffix.encode("ascii")


def erasable_or_plain(key: bytes) -> bytes:
    """An erasable key for `key`, or `key` itself when it holds 0x00 and so cannot be a business key.

    For writers of records whose keys come from outside (a dead letter keeps
    the key it came with): such a record can still be erased, by a tombstone
    for its plain key, which erases every record with that key.
    """
    return key if SEPARATOR in key else erasable_key(key)


def _has_suffix(raw: bytes) -> bool:
    return len(raw) >= SUFFIX_LENGTH and raw[-SUFFIX_LENGTH] == SEPARATOR[0] and _is_guid(raw[-GUID_LENGTH:])


def business_key(raw: bytes) -> bytes:
    """The business key of a record key: without its suffix if it has one, else the key unchanged."""
    return raw[:-SUFFIX_LENGTH] if _has_suffix(raw) else raw


def guid_of(raw: bytes) -> str | None:
    """The GUID of an erasable key, or None for a plain key."""
    return raw[-GUID_LENGTH:].decode("ascii") if _has_suffix(raw) else None


def partition_for(key: bytes, partitions: int) -> int:
    """The partition of a keyed record: Kafka's murmur2 partitioning of its business key."""
    if partitions < 1:
        raise ValueError(f"a topic has at least one partition, not {partitions}")
    hashed: int = murmur2(business_key(key))
    return (hashed & 0x7FFFFFFF) % partitions


class ErasablePartitioner:
    """aiokafka's partitioner, fed the business key: `AIOKafkaProducer(partitioner=ErasablePartitioner())`.

    The call signature is aiokafka's (and Faust's `producer_partitioner`):
    `(key_bytes, all_partitions, available_partitions) -> partition`. Keyed
    records go where `partition_for` says (aiokafka's DefaultPartitioner
    indexes `all_partitions`, sorted by id, with the same hash); records
    without a key get the default's random choice.
    """

    def __init__(self) -> None:
        self._default = DefaultPartitioner()

    def __call__(self, key: bytes | None, all_partitions: Sequence[int], available: Sequence[int]) -> int:
        return int(self._default(None if key is None else business_key(key), all_partitions, available))
