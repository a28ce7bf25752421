"""Talking to the other gateway nodes over HTTP."""

from __future__ import annotations

import httpx


class Peers:
    """The other live nodes, as this node learns about them (for now: their ids)."""

    def __init__(self, self_url: str, self_id: str, timeout: float = 1.0) -> None:
        self.self_url = self_url.rstrip("/")
        self.self_id = self_id
        self.timeout = timeout
        self._ids: dict[str, str] = {}
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

    @property
    def client(self) -> httpx.AsyncClient:
        """The HTTP client for requests to other nodes."""
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout, limits=httpx.Limits(max_connections=1000))
        return self._client

    async def close(self) -> None:
        """Close the HTTP client."""
        if self._client is not None:
            await self._client.aclose()
