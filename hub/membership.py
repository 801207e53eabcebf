"""Joining and leaving a room: welcome, resume, and presence.

Join: register the connection in the room with live events held back, send `welcome`,
replay the log after `since`, then release what was held (the seq filter drops what the
replay already sent). Leave: the presence entry outlives the socket by a short grace, so
a client that reconnects at once causes neither `participant_left` nor a new join.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from .close_codes import CloseCode
from .committer import CommitFailed, CommitOverloaded, GroupCommitter
from .config import Settings
from .connection import Connection
from .events import envelope, error_message, iso
from .events import now_iso as iso_now
from .lifecycle import TERMINAL_STATUSES
from .metrics import HubMetrics
from .presence import Presence, participant_list
from .replay import LogReader
from .room import Room
from .rooms import Rooms
from .store import SessionRecord, SessionStore

log = logging.getLogger("hub.membership")


def member_key(conn: Connection) -> str:
    return conn.principal.user_id


def presence_event_data(participant_id: Any, name: Any, members: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Data of `participant_joined` / `participant_left`: who, and the count after it.

    The count goes by both names: `participant_count` (the contract's welcome) and
    `count` (seed 003's event table).
    """
    count = len(participant_list(members))
    return {"participant_id": participant_id, "name": name, "participant_count": count, "count": count}


class Membership:
    def __init__(
        self,
        settings: Settings,
        sessions: SessionStore,
        presence: Presence,
        rooms: Rooms,
        reader: LogReader,
        committer: GroupCommitter,
        metrics: HubMetrics,
    ):
        self.settings = settings
        self.sessions = sessions
        self.presence = presence
        self.rooms = rooms
        self.reader = reader
        self.committer = committer
        self.metrics = metrics
        self._leaving: dict[tuple[int, str, str], asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    async def stop(self) -> None:
        for handle in self._leaving.values():
            handle.cancel()
        self._leaving.clear()
        for task in list(self._tasks):
            task.cancel()

    # join

    async def join(self, conn: Connection, session: SessionRecord, since: int | None) -> Room | None:
        """Bring `conn` into the session's room and answer the room; None: it was refused
        and is closing."""
        room_key = str(session.pk)
        key = member_key(conn)
        is_participant = conn.role == "participant"
        ended = session.status in TERMINAL_STATUSES
        members = await self.presence.members(room_key)
        if is_participant and not ended and key not in members:
            present = len(participant_list(members))
            if present >= session.max_participants:
                self._refuse(conn, "conflict", "the session is full", CloseCode.SESSION_FULL)
                return None

        room = await self.rooms.open(session)
        conn.replaying = True
        conn.start()
        room.add(conn)
        self.metrics.connections.inc()

        first = False
        if not ended:
            info = {
                "participant_id": conn.principal.user_id,
                "name": conn.principal.name,
                "role": conn.role,
                "joined_at": iso_now(),
            }
            # A reconnect within the grace finds its old entry still present: no new join.
            first = await self.presence.add(room_key, key, conn.conn_id, info)
            members = await self.presence.members(room_key)

        fresh = await self.sessions.get_session_by_pk(session.pk) or session
        head = max(fresh.head_seq, room.head)
        resume = self._resume_info(since, head, fresh.retained_from)
        conn.offer(self._welcome(conn, fresh, members, head, resume))
        if since is not None and not resume["recovered"]:
            conn.offer(
                error_message(
                    session.session_id,
                    "resume_unavailable",
                    "events after 'since' cannot be replayed; refetch the session content",
                    details=resume,
                ).decode()
            )
        start_after = since if since is not None and resume["recovered"] else head
        if since is None:
            start_after = room.head
        await self.reader.replay(conn, session, start_after, head)
        conn.last_seq = max(conn.last_seq, start_after)
        conn.finish_replay()

        if ended:
            conn.close_soon(CloseCode.SESSION_ENDED)
        elif first and is_participant:
            data = presence_event_data(conn.principal.user_id, conn.principal.name, members)
            actor = conn.principal.actor
            self._background(self.committer.append(fresh, "participant_joined", data, actor))
        return room

    @staticmethod
    def _resume_info(since: int | None, head: int, retained_from: int) -> dict[str, Any]:
        info: dict[str, Any] = {
            "since": since,
            "recovered": True,
            "reason": None,
            "head_seq": head,
            "retained_from": retained_from,
        }
        if since is None:
            return info
        if since > head:
            info.update(recovered=False, reason="ahead_of_log")
        elif since < head and since + 1 < retained_from:
            info.update(recovered=False, reason="trimmed")
        return info

    def _welcome(
        self,
        conn: Connection,
        session: SessionRecord,
        members: dict[str, dict[str, Any]],
        head: int,
        resume: dict[str, Any],
    ) -> str:
        participants = participant_list(members)
        data = {
            "role": conn.role,
            "participant_count": len(participants),
            "participants": [
                {"participant_id": p["participant_id"], "name": p["name"]} for p in participants
            ],
            "instructors": [
                {"participant_id": p["participant_id"], "name": p["name"]}
                for p in participant_list(members, "instructor")
            ],
            "status": session.status,
            "current_technique": session.current_technique,
            "head_seq": head,
            "title": session.title,
            "session_type": session.session_type,
            "max_participants": session.max_participants,
            "started_at": iso(session.started_at) if session.started_at else None,
            "resume": resume,
            "heartbeat_interval": self.settings.heartbeat_interval,
            "idle_timeout": self.settings.idle_timeout,
            "connection_id": conn.conn_id,
        }
        return envelope("welcome", session.session_id, data, actor=conn.principal.actor).decode()

    # leave

    async def leave(self, conn: Connection, session: SessionRecord) -> None:
        room = self.rooms.get(session.pk)
        if room is not None and conn.conn_id in room.members:
            room.remove(conn)
            self.metrics.connections.dec()
            self.rooms.schedule_release(room)
        await conn.stop()
        key = member_key(conn)
        if conn.close_code == CloseCode.SERVER_SHUTDOWN:
            # Drained: the client reconnects to another process. Its entry stays until the
            # TTL, so neither participant_left nor a second participant_joined is written;
            # one that does not come back is reaped (one participant_left) by the others.
            return
        grace = self.settings.presence_grace
        if conn.close_code == CloseCode.SESSION_ENDED:
            grace = 0.0
        loop = asyncio.get_running_loop()
        self._leaving[(session.pk, key, conn.conn_id)] = loop.call_later(
            grace, lambda: self._background(self._finish_leave(conn, session, key))
        )

    async def _finish_leave(self, conn: Connection, session: SessionRecord, key: str) -> None:
        self._leaving.pop((session.pk, key, conn.conn_id), None)
        room_key = str(session.pk)
        gone = await self.presence.remove(room_key, key, conn.conn_id)
        if not gone or conn.role != "participant":
            return
        members = await self.presence.members(room_key)
        data = presence_event_data(conn.principal.user_id, conn.principal.name, members)
        result = await self.committer.append(session, "participant_left", data, conn.principal.actor)
        if result.error not in (None, "conflict"):
            log.warning("participant_left not stored", extra={"error": result.error})

    def _refuse(self, conn: Connection, code: str, message: str, close: CloseCode) -> None:
        conn.start()
        conn.offer(error_message(conn.session_id, code, message).decode())
        conn.close_soon(close)

    # background

    def _background(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                exc = t.exception()
                if not isinstance(exc, CommitFailed | CommitOverloaded):
                    log.error("membership task failed", exc_info=exc)

        task.add_done_callback(done)

    async def keep_presence(self) -> None:
        """Keep this process's presence alive and sweep members of dead processes."""
        interval = max(self.settings.presence_ttl / 3, 0.5)
        while True:
            await asyncio.sleep(interval)
            await self.presence.refresh()
            # Every room with presence entries, not only ours: when the process that served
            # a room died with all its members, some other process must write their leave.
            rooms = {str(room.session_pk) for room in self.rooms} | set(await self.presence.rooms())
            for room_key in rooms:
                for info in await self.presence.reap(room_key):
                    await self._emit_reaped(int(room_key), info)

    async def _emit_reaped(self, session_pk: int, info: dict[str, Any]) -> None:
        if info.get("role") != "participant":
            return
        session = await self.sessions.get_session_by_pk(session_pk)
        if session is None or session.status in TERMINAL_STATUSES:
            return
        members = await self.presence.members(str(session_pk))
        data = presence_event_data(info.get("participant_id"), info.get("name"), members)
        data["reason"] = "connection_lost"
        actor = {
            "user_id": info.get("participant_id"),
            "name": info.get("name"),
            "role": "participant",
        }
        await self.committer.append(session, "participant_left", data, actor)
