"""The client a node calls its peers with (app/peers.py), against a plain local HTTP server."""

from __future__ import annotations

import asyncio

from stategate.app.peers import Peers

CONCURRENT = 100


class CountingServer:
    """Answers every request with 200 once `CONCURRENT` requests are open at once; counts the connections."""

    def __init__(self) -> None:
        self.connections = 0
        self.waiting = 0
        self.all_in = asyncio.Event()
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    def next_round(self) -> None:
        self.waiting, self.all_in = 0, asyncio.Event()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                self.waiting += 1
                if self.waiting == CONCURRENT:
                    self.all_in.set()
                await self.all_in.wait()
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def test_the_peer_client_keeps_its_connections_for_the_next_burst() -> None:
    """A burst of forwards to a peer reuses the connections the previous burst opened.

    With a keep-alive limit (httpx's default client keeps 20), httpcore 1.0.9
    counts every connection, busy or idle, against it and closes each one
    past the limit as it becomes idle: every burst of proxied requests would
    open its connections again. This fails with `max_keepalive_connections=20`.
    """
    server = CountingServer()
    url = await server.start()
    peers = Peers("http://127.0.0.1:1", "node-test", timeout=10)
    try:
        for _ in range(2):
            server.next_round()
            answers = await asyncio.gather(*(peers.client.get(f"{url}/healthz") for _ in range(CONCURRENT)))
            assert [a.status_code for a in answers] == [200] * CONCURRENT
        assert server.connections == CONCURRENT  # the second burst opened none
    finally:
        await peers.close()
        assert server.server is not None
        server.server.close()
