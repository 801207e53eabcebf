"""Removing a user from a session on every hub process (`POST /api/v2/session/{id}/disconnect`).

The process that takes the request closes the user's connections it serves at once and
publishes the request on one broker channel that every process subscribes to; each of
them closes the user's connections it serves in that session. The close code is 3510
(`disconnected`, do not reconnect), so a well-behaved client stays away instead of coming
straight back. The broker is at most once: a process that misses the message (its Redis
link was down) keeps that user's socket, and the caller may simply ask again.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from .broker import Broker
from .close_codes import CloseCode
from .rooms import Rooms

log = logging.getLogger("hub.disconnect")

CHANNEL = "control:disconnect"


class Disconnector:
    def __init__(self, broker: Broker, rooms: Rooms):
        self.broker = broker
        self.rooms = rooms  # the hub's live map of this process's rooms

    async def start(self) -> None:
        await self.broker.subscribe(CHANNEL, self._on_message)

    async def stop(self) -> None:
        try:
            await self.broker.unsubscribe(CHANNEL)
        except Exception:
            log.warning("unsubscribe failed", extra={"channel": CHANNEL})

    async def disconnect(self, session_pk: int, user_id: str) -> int:
        """Close the user's connections everywhere; answer how many this process closed.

        Raises `BrokerUnavailable` when the other processes could not be told.
        """
        closed = self._close_local(session_pk, user_id)
        payload = orjson.dumps({"session_pk": session_pk, "user_id": user_id})
        await self.broker.publish(CHANNEL, 0, payload)
        return closed

    def _on_message(self, origin: str, seq: int, payload: bytes) -> None:
        if origin == self.broker.node_id:
            return  # closed before publishing
        try:
            message: Any = orjson.loads(payload)
            self._close_local(int(message["session_pk"]), str(message["user_id"]))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            log.warning("malformed disconnect message ignored", extra={"origin": origin})

    def _close_local(self, session_pk: int, user_id: str) -> int:
        room = self.rooms.get(session_pk)
        if room is None:
            return 0
        targets = [c for c in room.members.values() if c.principal.user_id == user_id]
        for conn in targets:
            conn.close_soon(CloseCode.DISCONNECTED)
        return len(targets)
