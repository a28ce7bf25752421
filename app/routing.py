"""Which node owns an order: Faust's table metadata, read the way the table writes it.

Faust's partition assignor shares, at every rebalance, each live member's
advertised URL (its `canonical_url`) and the orders-table partitions it
holds. `app.router.key_store` hashes a key exactly as the producer does and
names that member. Those URLs are the only redirect targets there are:
nothing is ever taken from request headers.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import faust
from faust.assignor.partition_assignor import PartitionAssignor
from faust.types import TP

from streams.orders_table import ORDERS_TABLE


@dataclass(frozen=True)
class Owner:
    """The owner of a key: this node, another live node (its URL), or nobody right now."""

    url: str | None
    is_self: bool

    @property
    def unknown(self) -> bool:
        """No node owns the key at the moment (a rebalance is under way)."""
        return self.url is None


class Routing:
    """Answers "who owns this order id?" and makes ids this node owns."""

    def __init__(
        self, app: faust.App, self_url: str, orders_topic: str, is_down: Callable[[str], bool] = lambda url: False
    ) -> None:
        self.app = app
        self.self_url = self_url.rstrip("/")
        self.orders_topic = orders_topic
        self.is_down = is_down

    def owner(self, order_id: str, during_rebalance: bool = False) -> Owner:
        """The node that holds `order_id` in its orders table.

        Nobody, while a rebalance is under way, unless `during_rebalance`: the
        new assignment is already known when partitions are assigned, before
        Faust has recovered the tables and called the rebalance complete.
        Nobody, too, when the owner is a member that stopped answering (it
        crashed, and the group has not noticed yet).
        """
        if self.app.rebalancing and not during_rebalance:
            return Owner(None, False)
        try:
            url = str(self.app.router.key_store(ORDERS_TABLE, order_id)).rstrip("/")
        except (KeyError, AssertionError, TypeError):
            return Owner(None, False)
        if url != self.self_url and self.is_down(url):
            return Owner(None, False)
        return Owner(url, url == self.self_url)

    def own_partitions(self) -> set[int]:
        """The partitions of `orders` this node holds."""
        assignor = cast(PartitionAssignor, self.app.assignor)
        return {tp.partition for tp in assignor.assigned_actives() if tp.topic == self.orders_topic}

    def partition_of(self, order_id: str) -> int:
        """The partition of `orders` an order id hashes to (the producer's partitioner)."""
        tp: TP = self.app.producer.key_partition(self.orders_topic, order_id.encode())
        return tp.partition

    def new_order_id(self, make: Callable[[], str] = lambda: str(uuid.uuid4()), tries: int = 256) -> str:
        """An order id on a partition this node owns, so that waiting for it stays local.

        The same trick as correlation ids: draw ids until one hashes to a
        partition of ours. When this node owns none, any id will do (the
        client is then redirected to its owner).
        """
        mine = self.own_partitions()
        candidate = make()
        if not mine:
            return candidate
        for _ in range(tries):
            if self.partition_of(candidate) in mine:
                return candidate
            candidate = make()
        return candidate

    def another_member(self) -> str | None:
        """The advertised URL of some other live node, or None when this node is alone."""
        others = sorted(url for url in self.members() if url != self.self_url and not self.is_down(url))
        return others[0] if others else None

    def members(self) -> dict[str, list[int]]:
        """Every live member's advertised URL and the orders-table partitions it holds."""
        table_topic = self.app.tables[ORDERS_TABLE].changelog_topic.get_topic_name()
        return {
            url.rstrip("/"): sorted(topics.get(table_topic, ()))
            for url, topics in self.app.router.tables_metadata().items()
        }
