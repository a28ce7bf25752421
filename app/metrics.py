"""Prometheus metrics of one node, served at /metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    """The node's counters, gauges and histograms, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.http_requests = Counter(
            "stategate_http_requests",
            "HTTP requests answered, by route and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.http_seconds = Histogram(
            "stategate_http_request_seconds",
            "Time to answer an HTTP request, by route.",
            ["method", "route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=self.registry,
        )
        self.parked = Gauge("stategate_parked_requests", "HTTP requests parked on an order.", registry=self.registry)
        self.orders_rejected = Counter(
            "stategate_order_records_rejected",
            "Records on `orders` the order view rejected (no key, key not the id, not an order), by reason.",
            ["reason"],
            registry=self.registry,
        )
        self.commands_failed = Counter(
            "stategate_commands_unacknowledged",
            "Commands Kafka did not acknowledge in time (answered 503).",
            registry=self.registry,
        )

        self.service_requests = Counter(
            "stategate_service_requests",
            "Requests to services behind request topics, by service and status.",
            ["service", "status"],
            registry=self.registry,
        )
        self.service_seconds = Histogram(
            "stategate_service_request_seconds",
            "From writing a service request to its (first) reply, by service.",
            ["service"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=self.registry,
        )
        self.service_timeouts = Counter(
            "stategate_service_timeouts",
            "Service requests answered 504, by service.",
            ["service"],
            registry=self.registry,
        )
        self.service_parked = Gauge(
            "stategate_service_requests_parked", "Service requests waiting for a reply.", registry=self.registry
        )
        self.reply_handovers = Counter(
            "stategate_reply_handovers",
            "Replies handed over between nodes: sent to the waiting node, or received from another.",
            ["direction"],
            registry=self.registry,
        )
        self.replies_dropped = Counter(
            "stategate_replies_dropped",
            "Reply records nobody waits for, by reason.",
            ["reason"],
            registry=self.registry,
        )

        self.live_streams = Gauge(
            "stategate_live_streams",
            "Open live streams (SSE) and WebSockets, by kind.",
            ["kind"],
            registry=self.registry,
        )
        self.live_subscriptions = Gauge(
            "stategate_live_subscriptions",
            "Live streams registered with the order feed (SSE, WebSocket subscriptions), opening ones included.",
            registry=self.registry,
        )
        self.live_events = Counter(
            "stategate_live_events_sent",
            "Order changes sent to live clients, by kind.",
            ["kind"],
            registry=self.registry,
        )
        self.live_conflated = Counter(
            "stategate_live_events_conflated",
            "Order changes a slow live client never got because a newer version replaced them.",
            registry=self.registry,
        )
        self.live_dropped = Counter(
            "stategate_live_clients_dropped",
            "Live clients closed because they read too slowly, by kind.",
            ["kind"],
            registry=self.registry,
        )

        # Erasures: requested here, finished here (nothing of the order left in Kafka), and pending.
        self.erasures_requested = Counter(
            "stategate_erasures_requested",
            "Orders erased through this node (DELETE accepted).",
            registry=self.registry,
        )
        self.erasures_completed = Counter(
            "stategate_erasures_completed",
            "Erasures this node finished: a pass found nothing of the order left in Kafka.",
            registry=self.registry,
        )
        self.erasures_pending = Gauge(
            "stategate_erasures_pending",
            "Erasures of orders on this node's partitions that are not finished yet.",
            registry=self.registry,
        )

        for kind in ("sse", "ws"):  # every series shows from the start, at 0
            self.live_streams.labels(kind)
            self.live_events.labels(kind)
            self.live_dropped.labels(kind)

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one answered HTTP request and its time, by route template."""
        self.http_requests.labels(method, route, str(status)).inc()
        self.http_seconds.labels(method, route).observe(seconds)

    def render(self) -> bytes:
        """The metrics in Prometheus text format."""
        return generate_latest(self.registry)
