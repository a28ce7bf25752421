"""Who holds which partition of the order view: a Kafka group assignor that tells every member.

Each gateway node joins one consumer group on `orders`. When it joins it says
where clients reach it (its advertised URL) and which partitions it held
before, as active owner or standby copy. The group leader runs `plan()` and
sends every member its own partitions plus the whole map, so that every node
can answer "who owns this order?" without asking anyone: the same job Faust's
table metadata (`app.router.key_store`) did, in one small module.

The plan is sticky (a partition stays where its data is), balanced (each
member owns ⌊P/n⌋ or ⌈P/n⌉ partitions) and prefers a standby copy when an
owner leaves, so a survivor takes over from data it already has.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import orjson
from aiokafka.cluster import ClusterMetadata
from aiokafka.coordinator.assignors.abstract import AbstractPartitionAssignor
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment, ConsumerProtocolMemberMetadata

PROTOCOL = "stategate-view"

log = logging.getLogger("stategate.streams.view_assignor")


@dataclass(frozen=True)
class Claim:
    """What a member says when it joins: its URL, when its process started, and the partitions it held.

    Two members with one URL are a process that was killed and its restart,
    before the group noticed the first one's death: only the newer one is
    alive, so only it gets partitions.
    """

    url: str
    active: frozenset[int] = frozenset()
    standby: frozenset[int] = frozenset()
    started: float = 0.0

    def encode(self) -> bytes:
        return orjson.dumps(
            {"url": self.url, "active": sorted(self.active), "standby": sorted(self.standby), "started": self.started}
        )

    @classmethod
    def decode(cls, data: bytes) -> Claim:
        value = orjson.loads(data)
        return cls(
            str(value["url"]),
            frozenset(value.get("active", ())),
            frozenset(value.get("standby", ())),
            float(value.get("started", 0.0)),
        )


@dataclass(frozen=True)
class Share:
    """One member's part of a plan."""

    active: tuple[int, ...] = ()
    standby: tuple[int, ...] = ()


@dataclass(frozen=True)
class ClusterMap:
    """Every member's URL and partitions, as the leader planned them for one generation."""

    partitions: int = 0
    active: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    standby: Mapping[str, tuple[int, ...]] = field(default_factory=dict)

    def owner(self, partition: int) -> str | None:
        """The URL of the member that owns `partition`, or None."""
        for url, partitions in self.active.items():
            if partition in partitions:
                return url
        return None

    def encode(self, mine_standby: Iterable[int]) -> bytes:
        return orjson.dumps(
            {
                "partitions": self.partitions,
                "active": {url: list(p) for url, p in self.active.items()},
                "standby": {url: list(p) for url, p in self.standby.items()},
                "mine_standby": sorted(mine_standby),
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> tuple[ClusterMap, frozenset[int]]:
        """The map and this member's own standby partitions."""
        value = orjson.loads(data)
        cluster = cls(
            int(value["partitions"]),
            {url: tuple(p) for url, p in value["active"].items()},
            {url: tuple(p) for url, p in value["standby"].items()},
        )
        return cluster, frozenset(value["mine_standby"])


def plan(claims: Mapping[str, Claim], partitions: int, standby_replicas: int) -> dict[str, Share]:
    """Share `partitions` among the members (member id → claim), sticky, balanced, standby-aware."""
    newest: dict[str, str] = {}
    for member in sorted(claims):
        known = newest.get(claims[member].url)
        if known is None or claims[member].started > claims[known].started:
            newest[claims[member].url] = member
    members = sorted(newest.values())
    shares = {member: Share() for member in claims}
    if not members or partitions <= 0:
        return shares
    base, extra = divmod(partitions, len(members))
    # Members that held the most keep the larger shares, so fewer partitions move.
    by_holding = sorted(members, key=lambda m: (-len(claims[m].active & set(range(partitions))), m))
    target = {m: base + (1 if i < extra else 0) for i, m in enumerate(by_holding)}
    active: dict[str, list[int]] = {m: [] for m in members}
    owner: dict[int, str] = {}

    def give(p: int, candidates: Iterable[str]) -> None:
        for m in candidates:
            if len(active[m]) < target[m]:
                active[m].append(p)
                owner[p] = m
                return

    for p in range(partitions):
        give(p, (m for m in members if p in claims[m].active))
    for p in range(partitions):
        if p not in owner:
            give(p, (m for m in members if p in claims[m].standby))
    for p in range(partitions):
        if p not in owner:
            give(p, sorted(members, key=lambda m: (len(active[m]) - target[m], m)))

    standby: dict[str, list[int]] = {m: [] for m in members}
    copies = min(standby_replicas, len(members) - 1)
    for p in range(partitions):
        for _ in range(copies):
            free = [m for m in members if m != owner[p] and p not in standby[m]]
            held = [m for m in free if p in claims[m].standby or p in claims[m].active]
            pool = held or free
            chosen = min(pool, key=lambda m: (len(standby[m]), m))
            standby[chosen].append(p)
    shares.update({m: Share(tuple(active[m]), tuple(standby[m])) for m in members})
    return shares


class ViewAssignor(AbstractPartitionAssignor):  # type: ignore[misc]
    """The group assignor of the order view; `on_assignment` hands the new map to the view.

    aiokafka calls these methods on the object it is given, so one instance
    per node carries that node's claim.
    """

    name = PROTOCOL
    version = 0

    def __init__(
        self,
        topic: str,
        claim: Callable[[], Claim],
        standby_replicas: int,
        on_map: Callable[[ClusterMap, frozenset[int]], None],
    ) -> None:
        self.topic = topic
        self.claim = claim
        self.standby_replicas = standby_replicas
        self.on_map = on_map

    def metadata(self, topics: Iterable[str]) -> ConsumerProtocolMemberMetadata:
        return ConsumerProtocolMemberMetadata(self.version, sorted(topics), self.claim().encode())

    def assign(
        self, cluster: ClusterMetadata, members: Mapping[str, ConsumerProtocolMemberMetadata]
    ) -> dict[str, ConsumerProtocolMemberAssignment]:
        claims = {member_id: Claim.decode(meta.user_data) for member_id, meta in members.items()}
        partitions = len(cluster.partitions_for_topic(self.topic) or ())
        shares = plan(claims, partitions, self.standby_replicas)
        nodes = len({claim.url for claim in claims.values()})
        if nodes > partitions:
            log.warning(
                "more nodes than partitions: some nodes own no orders (raise STATEGATE_PARTITIONS)",
                extra={"nodes": nodes, "partitions": partitions},
            )
        cluster_map = ClusterMap(
            partitions,
            _by_url(claims, {m: s.active for m, s in shares.items()}),
            _by_url(claims, {m: s.standby for m, s in shares.items()}),
        )
        return {
            member_id: ConsumerProtocolMemberAssignment(
                self.version, [(self.topic, list(share.active))], cluster_map.encode(share.standby)
            )
            for member_id, share in shares.items()
        }

    def on_assignment(self, assignment: ConsumerProtocolMemberAssignment) -> None:
        self.on_map(*ClusterMap.decode(assignment.user_data))


def _by_url(claims: Mapping[str, Claim], parts: Mapping[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
    merged: dict[str, list[int]] = {}
    for member_id, partitions in parts.items():
        merged.setdefault(claims[member_id].url, []).extend(partitions)
    return {url: tuple(sorted(p)) for url, p in sorted(merged.items())}
