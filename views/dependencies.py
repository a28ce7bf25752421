"""How a view reaches the node it runs in."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from stategate.app.node import Node


async def get_node(request: Request) -> Node:
    """The gateway node serving this request (async: FastAPI would run a sync one in a thread)."""
    node: Node = request.app.state.node
    return node


NodeDep = Annotated[Node, Depends(get_node)]
