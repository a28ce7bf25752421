"""Noticing that a client has gone away while its request is parked."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.types import Receive


@contextlib.asynccontextmanager
async def client_disconnect(request: Request) -> AsyncIterator[asyncio.Future[None]]:
    """A future that completes when the client disconnects, for the block's duration."""
    async with receive_disconnect(request.receive) as gone:
        yield gone


@contextlib.asynccontextmanager
async def receive_disconnect(receive: Receive) -> AsyncIterator[asyncio.Future[None]]:
    """`client_disconnect` for a plain ASGI app, which has `receive` but no Request."""
    gone: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def listen() -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                if not gone.done():
                    gone.set_result(None)
                return

    listener = asyncio.create_task(listen())
    try:
        yield gone
    finally:
        listener.cancel()
        if not gone.done():
            gone.cancel()
