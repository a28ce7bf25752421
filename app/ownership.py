"""Which node owns an order: the order view's group map, read the way the producer writes.

The view's group assignor shares, at every rebalance, each live member's
advertised URL and the partitions of `orders` it owns. An order id hashes
to its partition exactly as the producer hashes it (Kafka's default
partitioner over the raw UTF-8 key). Those URLs are the only redirect
targets there are: nothing is ever taken from request headers.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

from stategate.streams.order_view import OrderView


@dataclass(frozen=True)
class Owner:
    """The owner of a key: this node, another live node (its URL), or nobody right now."""

    url: str | None
    is_self: bool

    @property
    def unknown(self) -> bool:
        """No node owns the key at the moment (a rebalance is under way)."""
        return self.url is None


class Ownership:
    """Answers "who owns this order id?" and makes ids this node owns."""

    def __init__(self, view: OrderView, self_url: str, is_down: Callable[[str], bool] = lambda url: False) -> None:
        self.view = view
        self.self_url = self_url.rstrip("/")
        self.is_down = is_down

    def owner(self, order_id: str, during_rebalance: bool = False) -> Owner:
        """The node that holds `order_id` in its order view.

        Nobody, while a rebalance is under way, unless `during_rebalance`: the
        new assignment is already known when partitions are assigned, before
        this node has read them to their end. Nobody, too, when the owner is a
        member that stopped answering (it crashed, and the group has not
        noticed yet).
        """
        if self.view.rebalancing and not during_rebalance:
            return Owner(None, False)
        url = self.view.owner_url(order_id)
        if url is None or (url != self.self_url and self.is_down(url)):
            return Owner(None, False)
        return Owner(url, url == self.self_url)

    def own_partitions(self) -> frozenset[int]:
        """The partitions of `orders` this node owns."""
        return self.view.active

    def partition_of(self, order_id: str) -> int:
        """The partition of `orders` an order id hashes to (the producer's partitioner)."""
        return self.view.partition_of(order_id)

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

    def new_home(self, order_id: str) -> str | None:
        """Where a request parked here goes once its order moved: the new owner, else another live node."""
        owner = self.owner(order_id, during_rebalance=True)
        if owner.url is not None and not owner.is_self:
            return owner.url
        return self.another_member()

    def another_member(self) -> str | None:
        """The advertised URL of some other live node, or None when this node is alone."""
        others = sorted(url for url in self.members() if url != self.self_url and not self.is_down(url))
        return others[0] if others else None

    def members(self) -> dict[str, list[int]]:
        """Every live member's advertised URL and the partitions of `orders` it owns."""
        return self.view.members()
