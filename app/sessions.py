"""WebSocket sessions: the replies a client is owed, kept across a reconnect to this node or another.

A client's service calls and placed orders outlive its socket: a reply can
arrive while the client is away (a dropped connection, a node behind a
load balancer that sends the new socket elsewhere). So every socket belongs
to a session. The session numbers each message that answers a client's
request (`seq`), keeps the newest `replay` of them, and lives on for
`grace` seconds after its socket closes, collecting what arrives.

A client that reconnects with `?session=ID&seen=N`:
- to the same node: gets every kept message after N, then the session goes on;
- to another node: that node asks the session's node (named by the tag at
  the start of the id, as correlation ids do) to hand the session over,
  signed with the cluster secret. The old node answers with the kept
  messages after N and from then on forwards whatever else arrives for the
  session (the rest of a streaming reply, say) to the new node, which
  numbers them on from N.
A message older than the replay window, or a session that expired or
whose node died, cannot be recovered: the client is told (`resumed:
false`). Order subscriptions are not carried over; the client subscribes
again and each order message carries its version.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
import orjson

from .handover import SIGNATURE_HEADER, node_tag, sign, tag_of

log = logging.getLogger("stategate.sessions")

TAKEOVER_PATH = "/internal/sessions/{id}/takeover"
FORWARD_PATH = "/internal/sessions/{id}/messages"
MAX_SESSION_ID_LENGTH = 80

Message = dict[str, Any]
Push = Callable[[Message], None]


class Socket(Protocol):
    """An open WebSocket, as the node sees it: something it can ask to close."""

    def stop(self, code: int, reason: str) -> None:
        """Close the socket soon with this close code and reason."""


@dataclass(eq=False)
class Session:
    """One client's session: its numbered messages, and where they go now (a socket, another node, or nowhere)."""

    id: str
    replay_size: int
    seq: int = 0
    push: Push | None = None
    """The attached socket's writer; None while no socket is attached."""
    forward: Push | None = None
    """Set once another node took the session over: sends each message there, unnumbered."""
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    """Work done for the session (calls waiting for replies): cancelled when it expires."""
    _kept: collections.deque[tuple[int, Message]] | None = None  # made by the first message
    _expiry: asyncio.TimerHandle | None = None

    def emit(self, message: Message) -> None:
        """Number a message, keep it, and send it to wherever the session is now."""
        if self.forward is not None:
            self.forward(message)
            return
        self.seq += 1
        numbered = {**message, "seq": self.seq}
        if self._kept is None:
            self._kept = collections.deque()
        self._kept.append((self.seq, numbered))
        while len(self._kept) > self.replay_size:
            self._kept.popleft()
        if self.push is not None:
            self.push(numbered)

    def after(self, seen: int) -> tuple[list[Message], bool]:
        """The kept messages numbered after `seen`, and whether those are all there were."""
        if not self._kept:
            return [], seen >= self.seq
        messages = [message for seq, message in self._kept if seq > seen]
        complete = seen >= self.seq or self._kept[0][0] <= seen + 1
        return messages, complete


class Sessions:
    """This node's WebSocket sessions: made, resumed, handed over and expired."""

    def __init__(
        self,
        self_url: str,
        grace: float,
        replay_size: int,
        members: Callable[[], Iterable[str]],
        client: Callable[[], httpx.AsyncClient],
        secret: Callable[[], str],
    ) -> None:
        self.self_url = self_url.rstrip("/")
        self.tag = node_tag(self_url)
        self.grace = grace
        self.replay_size = replay_size
        self.members = members
        self.client = client
        self.secret = secret
        self._sessions: dict[str, Session] = {}

    def new(self) -> Session:
        """A fresh session, its id tagged with this node."""
        return self._add(Session(f"{self.tag}-{uuid.uuid4().hex}", self.replay_size))

    def attach(self, session: Session, push: Push) -> None:
        """A socket now receives the session's messages."""
        if session._expiry is not None:
            session._expiry.cancel()
            session._expiry = None
        session.push = push

    def detach(self, session: Session, push: Push) -> None:
        """The socket closed: keep collecting for `grace` seconds, then forget the session.

        Nothing happens when another socket has attached to the session since.
        """
        if session.push != push:  # bound methods: equal when of the same socket
            return
        session.push = None
        loop = asyncio.get_running_loop()
        session._expiry = loop.call_later(self.grace, self._expire, session)

    async def resume(self, session_id: str, seen: int) -> tuple[Session, list[Message], bool]:
        """The session `session_id` on this node, and the messages after `seen` (taken over if another node has it).

        Returns a new session (and `False`) when it cannot be resumed.
        """
        session = self._sessions.get(session_id)
        if session is not None and session.forward is None:
            messages, complete = session.after(seen)
            return session, messages, complete
        owner_tag = tag_of(session_id)
        owner = next((url for url in self.members() if node_tag(url) == owner_tag and url != self.self_url), None)
        taken = None if owner is None else await self._take_over(owner, session_id, seen)
        if taken is None:
            return self.new(), [], False
        messages, complete = taken
        session = self._add(Session(session_id, self.replay_size, seq=seen))
        for message in messages:
            session.emit({key: value for key, value in message.items() if key != "seq"})
        kept, _ = session.after(seen)
        return session, kept, complete

    def hand_over(self, session_id: str, seen: int, to: str) -> tuple[list[Message], bool] | None:
        """Another node takes a session over: the messages after `seen`; from now on forward to `to`.

        None when this node does not hold the session or `to` is not a live member.
        """
        session = self._sessions.get(session_id)
        target = to.rstrip("/")
        if session is None or session.forward is not None or target not in self._member_urls():
            return None
        messages, complete = session.after(seen)
        outgoing: asyncio.Queue[Message] = asyncio.Queue()
        session.forward = outgoing.put_nowait
        session.push = None
        self._spawn(session, self._forward(session.id, target, outgoing))
        log.info("session handed over", extra={"session": session_id, "to": target})
        return messages, complete

    def receive_forwarded(self, session_id: str, messages: list[Message]) -> bool:
        """Messages another node forwards for a session this node took over; False if it no longer has it."""
        session = self._sessions.get(session_id)
        if session is None:
            return False
        for message in messages:
            session.emit(message)
        return True

    def _add(self, session: Session) -> Session:
        self._sessions[session.id] = session
        return session

    def _expire(self, session: Session) -> None:
        if self._sessions.get(session.id) is session and session.push is None:
            del self._sessions[session.id]
            for task in session.tasks:
                task.cancel()

    def _spawn(self, session: Session, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        session.tasks.add(task)
        task.add_done_callback(session.tasks.discard)

    def _member_urls(self) -> set[str]:
        return {url.rstrip("/") for url in self.members()}

    async def _take_over(self, owner: str, session_id: str, seen: int) -> tuple[list[Message], bool] | None:
        body = orjson.dumps({"seen": seen, "to": self.self_url})
        try:
            response = await self.client().post(
                owner + TAKEOVER_PATH.format(id=session_id),
                content=body,
                headers={SIGNATURE_HEADER: sign(self.secret(), body), "content-type": "application/json"},
            )
            if response.status_code != 200:
                return None
            answer = response.json()
            return list(answer["messages"]), bool(answer["complete"])
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            log.warning("could not take a session over", extra={"session": session_id, "from": owner})
            return None

    async def _forward(self, session_id: str, target: str, outgoing: asyncio.Queue[Message]) -> None:
        """Send the session's messages to the node that took it over, one at a time, in order."""
        while True:
            body = orjson.dumps({"messages": [await outgoing.get()]})
            try:
                await self.client().post(
                    target + FORWARD_PATH.format(id=session_id),
                    content=body,
                    headers={SIGNATURE_HEADER: sign(self.secret(), body), "content-type": "application/json"},
                )
            except httpx.HTTPError as exc:
                log.warning("could not forward a session message", extra={"session": session_id, "error": repr(exc)})
