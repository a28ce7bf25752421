"""Talking to the other gateway nodes over HTTP, and knowing which of them answer.

A killed node stays a member of the Faust group until its session times out
(6 s by default), so table metadata may still name it as an owner. The node
probes every other member's /healthz each second; one that does not answer
is treated as down, so that no redirect, forward or hand-over is sent to it
until it answers again or the group has moved its partitions elsewhere.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from urllib.parse import quote

import httpx

from stategate.streams.records import Order, RecordError

from .errors import OrderErased
from .order_streams import Snapshot

log = logging.getLogger("stategate.peers")

PROBE_INTERVAL_SECONDS = 1.0


class Peers:
    """The other live nodes, as this node learns about them: their ids and whether they answer."""

    def __init__(self, self_url: str, self_id: str, timeout: float = 1.0, peer_urls: str = "") -> None:
        self.self_url = self_url.rstrip("/")
        self.self_id = self_id
        self.timeout = timeout
        self.internal_urls = parse_peer_urls(peer_urls)
        self._ids: dict[str, str] = {}
        self._down: set[str] = set()
        self._answered: set[str] = set()  # members that answered at least once
        self._client: httpx.AsyncClient | None = None

    async def node_id(self, url: str) -> str | None:
        """The node id behind an advertised URL, from its /healthz (remembered); None if it does not answer."""
        if url.rstrip("/") == self.self_url:
            return self.self_id
        if url not in self._ids:
            try:
                response = await self.client.get(f"{url}/healthz")
                self._ids[url] = str(response.json()["node"])
            except (httpx.HTTPError, ValueError, KeyError):
                return None
        return self._ids[url]

    async def order(self, url: str, order_id: str) -> Order | None:
        """The order as the node at `url` holds it; None when it does not (or cannot say).

        Raises OrderErased when that node says the order was erased.
        """
        try:
            response = await self.client.get(f"{url}/v1/orders/{quote(order_id, safe='')}")
            if response.status_code == 404 and response.json().get("erased") is True:
                raise OrderErased(f"Order {order_id!r} was erased; its id cannot be used again.")
            if response.status_code != 200:
                return None
            return Order.from_dict(response.json())
        except (httpx.HTTPError, ValueError, RecordError):
            return None

    async def snapshot(self, url: str, order_id: str, timeout: float) -> Snapshot | None:
        """The order as its owner at `url` holds it, with the offset that is as of; None when it cannot say."""
        try:
            response = await self.client.get(f"{url}{snapshot_path(order_id)}", timeout=timeout)
            if response.status_code != 200:
                return None
            body = response.json()
            order = None if body["order"] is None else Order.from_dict(body["order"])
            return Snapshot(order_id, order, int(body["partition"]), int(body["offset"]))
        except (httpx.HTTPError, ValueError, KeyError, TypeError, RecordError):
            return None

    def is_down(self, url: str) -> bool:
        """The member at `url` did not answer its last probe."""
        return url.rstrip("/") in self._down

    async def probe(self, members: Callable[[], Iterable[str]], interval: float = PROBE_INTERVAL_SECONDS) -> None:
        """Probe every other member's /healthz every `interval` seconds, for ever."""
        while True:
            try:
                others = [url.rstrip("/") for url in members() if url.rstrip("/") != self.self_url]
            except Exception:  # no table metadata yet (before the first assignment)
                others = []
            answers = await asyncio.gather(*(self._answers(url) for url in others))
            for url, answered in zip(others, answers, strict=True):
                # A member that never answered yet is still starting: no news worth a line.
                known = url in self._answered
                if answered and url in self._down:
                    self._down.discard(url)
                    if known:
                        log.info("peer answers again", extra={"peer": url})
                elif not answered and url not in self._down:
                    self._down.add(url)
                    if known:
                        log.warning("peer does not answer", extra={"peer": url})
                if answered:
                    self._answered.add(url)
            self._down &= set(others)
            await asyncio.sleep(interval)

    async def _answers(self, url: str) -> bool:
        try:
            response = await self.client.get(f"{url}/healthz", timeout=self.timeout)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    @property
    def client(self) -> httpx.AsyncClient:
        """The HTTP client for requests to other nodes."""
        if self._client is None:
            # Every connection is kept alive (no keep-alive limit): httpcore 1.0.9 counts busy
            # connections against that limit too, so with one a burst of forwards reconnects.
            limits = httpx.Limits(max_connections=1000, max_keepalive_connections=None)
            transport = PeerTransport(httpx.AsyncHTTPTransport(limits=limits), self.internal_urls)
            self._client = httpx.AsyncClient(timeout=self.timeout, transport=transport)
        return self._client

    async def close(self) -> None:
        """Close the HTTP client."""
        if self._client is not None:
            await self._client.aclose()


def snapshot_path(order_id: str) -> str:
    """Where a node answers with an order it owns and the offset that is as of (views/snapshots.py)."""
    return f"/internal/orders/{quote(order_id, safe='')}/snapshot"


Origin = tuple[str, str, int]  # scheme, host, port


def parse_peer_urls(text: str) -> dict[Origin, httpx.URL]:
    """`advertised=internal,...` as a map from an advertised origin to the internal URL.

    Raises ValueError on anything but pairs of absolute http(s) URLs.
    """
    mapping: dict[Origin, httpx.URL] = {}
    for pair in filter(None, (part.strip() for part in text.split(","))):
        advertised, sep, internal = pair.partition("=")
        if not sep:
            raise ValueError(f"peer URL {pair!r} is not advertised=internal")
        try:
            urls = [httpx.URL(advertised.strip()), httpx.URL(internal.strip())]
        except httpx.InvalidURL as exc:
            raise ValueError(f"peer URL in {pair!r}: {exc}") from None
        for url in urls:
            if url.scheme not in ("http", "https") or not url.host:
                raise ValueError(f"peer URL {str(url)!r} is not an absolute http(s) URL")
        mapping[_origin(urls[0])] = urls[1]
    return mapping


def _origin(url: httpx.URL) -> Origin:
    default_port = 443 if url.scheme == "https" else 80
    return url.scheme, url.host, url.port or default_port


class PeerTransport(httpx.AsyncBaseTransport):
    """Sends a request for a member's advertised origin to its internal URL instead."""

    def __init__(self, transport: httpx.AsyncBaseTransport, internal_urls: dict[Origin, httpx.URL]) -> None:
        self.transport = transport
        self.internal_urls = internal_urls

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        internal = self.internal_urls.get(_origin(request.url))
        if internal is not None:
            request.url = request.url.copy_with(scheme=internal.scheme, host=internal.host, port=internal.port)
        return await self.transport.handle_async_request(request)

    async def aclose(self) -> None:
        await self.transport.aclose()
