"""How a view reaches the node it runs in."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.node import Node


def get_node(request: Request) -> Node:
    """The gateway node serving this request."""
    node: Node = request.app.state.node
    return node


NodeDep = Annotated[Node, Depends(get_node)]
