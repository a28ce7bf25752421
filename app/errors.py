"""The failures a use-case reports, each of which a view answers with one status code.

KafkaUnavailable  503 + Retry-After   the broker did not acknowledge in time
TooManyWaiters    503 + Retry-After   the cap on parked requests is reached
TooManyCalls      503 + Retry-After   the cap on parked service requests is reached
ShuttingDown      503 + Retry-After   the node parks nothing more
NodeStopping      503 + Retry-After   the node sends no more service requests
OrderMoved        307 (or 503)        the order's partition moved to another node
TwoOrderIds       422                 an order named by both its id and an Idempotency-Key
UnknownService    404                 no service of that name is configured
NoAnswer          504                 a service the gateway asked itself did not answer in time
TooManyStreams    503 + Retry-After   the cap on live streams is reached
NoOwner           503 + Retry-After   no node can be asked for an order right now (a rebalance)
"""

from __future__ import annotations

from stategate.streams.commands import KafkaUnavailable

__all__ = [
    "KafkaUnavailable",
    "NoAnswer",
    "NoOwner",
    "NodeStopping",
    "OrderMoved",
    "ShuttingDown",
    "TooManyCalls",
    "TooManyStreams",
    "TooManyWaiters",
    "TwoOrderIds",
    "UnknownService",
]


class TooManyWaiters(Exception):
    """The cap on parked requests is reached."""


class ShuttingDown(Exception):
    """The node is stopping and parks no more requests."""


class OrderMoved(Exception):
    """The order's partition now belongs to another node (a rebalance, or this node stopping)."""


class OrderErased(Exception):
    """The order was erased: its id can never be used again (410)."""


class TwoOrderIds(ValueError):
    """An order named by both its `id` and an Idempotency-Key: which one decides would be a guess."""


class NoAnswer(Exception):
    """A service the gateway asked for its own answer (not a client's call) did not answer in time."""


class UnknownService(Exception):
    """No service of that name is configured."""


class TooManyCalls(Exception):
    """The cap on parked service requests is reached."""


class NodeStopping(Exception):
    """This node is shutting down and sends no more service requests."""


class TooManyStreams(Exception):
    """The cap on live streams (SSE and WebSocket subscriptions) is reached."""


class NoOwner(Exception):
    """No node can be asked for an order right now: a rebalance, or the owner stopped answering."""
