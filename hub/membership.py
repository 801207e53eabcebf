"""Joining and leaving a room: welcome, resume, and presence.

Join: register the connection in the room with live events held back, send `welcome`,
replay the log after `since`, then release what was held (the seq filter drops what the
replay already sent). Leave: the presence entry outlives the socket by a short grace, so
a client that reconnects at once causes neither `participant_left` nor a new join.
"""

from __future__ import annotations

import asyncio
from typing import Any

from .attendance import Attendance
from .close_codes import CloseCode
from .config import Settings
from .connection import Connection
from .errors import ErrorCode, HubError, SessionFull, Unavailable
from .events import envelope, error_message, iso
from .events import now_iso as iso_now
from .lifecycle import TERMINAL_STATUSES
from .metrics import HubMetrics
from .presence import Admission, MemberChange, Presence, Roster
from .presence_count import LIST_CAP
from .replay import LogReader
from .room import Room
from .rooms import Rooms
from .session_reads import Batched, SessionReads
from .session_state import SessionState
from .store import SessionRecord, SessionStore


def member_key(conn: Connection) -> str:
    return conn.principal.user_id


def member_info(conn: Connection) -> dict[str, Any]:
    """What the presence keeps of a member: who, in which role, since when."""
    principal = conn.principal
    return {
        "participant_id": principal.user_id,
        "name": principal.name,
        "role": conn.role,
        "joined_at": iso_now(),
    }


class Membership:
    def __init__(
        self,
        settings: Settings,
        sessions: SessionStore,
        presence: Presence,
        rooms: Rooms,
        reader: LogReader,
        attendance: Attendance,
        metrics: HubMetrics,
        session_state: SessionState,
    ):
        self.settings = settings
        self.sessions = sessions
        self.presence = presence
        self.rooms = rooms
        self.reader = reader
        self.attendance = attendance
        self.metrics = metrics
        self.session_state = session_state
        self.session_reads = SessionReads(sessions)
        self._rosters = Batched()  # joins of one room read its roster together
        self._listed: tuple[Roster | None, list[dict[str, Any]], list[dict[str, Any]]] = (None, [], [])
        self._leaving: dict[tuple[int, str, str], asyncio.TimerHandle] = {}
        # Joins between the presence registration and the welcome's replay; bounded, so a
        # burst that outruns the database is refused at once instead of queueing.
        self.joining = 0

    async def stop(self) -> None:
        for handle in self._leaving.values():
            handle.cancel()
        self._leaving.clear()

    # join

    async def find_session(self, account_id: str, session_id: str) -> SessionRecord | None:
        """The session a join asks for (admission's read, shared by joins that ask together)."""
        return await self.session_reads.by_id(account_id, session_id)

    def ensure_join_capacity(self) -> None:
        """Unavailable (retryable) while HUB_MAX_JOINS_IN_FLIGHT joins are in flight here:
        admission asks first, so a refused burst costs no read."""
        limit = self.settings.max_joins_in_flight
        if self.joining >= limit:
            message = f"too many joins in flight on this process (HUB_MAX_JOINS_IN_FLIGHT {limit}); try again"
            raise Unavailable(message, {"max_joins_in_flight": limit})

    async def join(self, conn: Connection, session: SessionRecord, since: int | None) -> Room | None:
        """Bring `conn` into the session's room and answer the room; None: it was refused
        and is closing, or its client has gone already."""
        if conn.gone():
            self.metrics.joins_abandoned.inc()
            return None  # a client that left before its welcome costs nothing more
        try:
            self.ensure_join_capacity()
        except Unavailable as busy:
            self._refuse(conn, busy)
            return None
        self.joining += 1
        try:
            return await self._join(conn, session, since)
        finally:
            self.joining -= 1

    async def _join(self, conn: Connection, session: SessionRecord, since: int | None) -> Room | None:
        room_key = str(session.pk)
        key = member_key(conn)
        is_participant = conn.role == "participant"
        ended = session.status in TERMINAL_STATUSES
        info = member_info(conn)
        admission: Admission | None = None
        if not ended:
            # The cap is checked and the member registered in one atomic step on the
            # presence, so racing joins on several processes never pass it together.
            # A reconnect within the grace finds its old entry still present: no new join.
            limit = session.max_participants if is_participant else None
            conn.present = True  # from here, leaving unregisters it
            admission = await self.presence.join(room_key, key, conn.conn_id, info, limit)
            if not admission.admitted:
                details = {"max_participants": session.max_participants}
                self._refuse(conn, SessionFull("the session is full", details))
                return None

        room = await self.rooms.open(session)
        conn.replaying = True
        conn.start()
        room.add(conn)
        self.metrics.connections.inc()

        # After registering: a read that started after this join's, shared with the joins
        # of the same room asking meanwhile (a storm's welcomes cost one read, not one each).
        roster: Roster = await self._rosters.get(room_key, lambda: self.presence.roster(room_key, LIST_CAP))
        # Read after joining the room: a change the room delivered before is in it.
        fresh = await self.session_reads.by_pk(session.pk) or session
        if conn.gone():
            self.metrics.joins_abandoned.inc()
            # Gone while joining: no welcome, no replay. Its join is written all the
            # same, so that the participant_left its leave writes has its pair.
            if admission is not None and admission.first:
                self.attendance.joined_soon(fresh, info, admission.participant_count)
            await conn.stop()  # nothing more is held or written for it
            return room
        room_head, room_cursor = room.position()  # together: the replay starts from them
        head = max(fresh.head_seq, room_head)
        resume = self._resume_info(since, head, fresh.retained_from)
        state = await self.session_state.for_member(fresh, conn.role)
        conn.offer(self._welcome(conn, fresh, roster, head, resume, state))
        if since is not None and not resume["recovered"]:
            conn.offer(
                error_message(
                    session.session_id,
                    ErrorCode.RESUME_UNAVAILABLE,
                    "events after 'since' cannot be replayed; refetch the session content",
                    details=resume,
                ).decode()
            )
        start_after = since if since is not None and resume["recovered"] else head
        if since is None:
            start_after = room_head
        if start_after < head:
            cursor = room_cursor
            if start_after != room_head:
                cursor = await self.reader.cursor_at(fresh, start_after)
            await self.reader.replay(conn, fresh, start_after, head, cursor)
        conn.last_seq = max(conn.last_seq, start_after)
        conn.finish_replay()

        if ended:
            conn.close_soon(CloseCode.SESSION_ENDED)
        elif admission is not None and admission.first:
            self.attendance.joined_soon(fresh, info, admission.participant_count)
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
        roster: Roster,
        head: int,
        resume: dict[str, Any],
        state: dict[str, Any],
    ) -> str:
        participants, instructors = self._listed_of(roster)
        data = {
            "role": conn.role,
            "participant_count": roster.participant_count,
            # Bounded however large the class: the first LIST_CAP to join (the count is
            # exact), so a 1000-person welcome stays a few KiB.
            "participants": participants,
            "instructors": instructors,
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
            **state,  # the open prompt and the latest announcement (hub/session_state.py)
        }
        return envelope("welcome", session.session_id, data, actor=conn.principal.actor).decode()

    def _listed_of(self, roster: Roster) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The welcome's lists of a roster, made once for the joins that share it."""
        if self._listed[0] is not roster:
            participants = [
                {"participant_id": p["participant_id"], "name": p["name"]} for p in roster.participants
            ]
            instructors = [
                {"participant_id": p["participant_id"], "name": p["name"]}
                for p in roster.staff
                if p.get("role") == "instructor"
            ]
            self._listed = (roster, participants, instructors)
        return self._listed[1], self._listed[2]

    # leave

    async def leave(self, conn: Connection, session: SessionRecord) -> None:
        room = self.rooms.get(session.pk)
        if room is not None and conn.conn_id in room.members:
            room.remove(conn)
            self.metrics.connections.dec()
            self.rooms.schedule_release(room)
        await conn.stop()
        if not conn.present:
            return  # never registered in the presence: nothing to unregister
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
            grace, lambda: self.attendance.spawn(self._finish_leave(conn, session, key))
        )

    async def _finish_leave(self, conn: Connection, session: SessionRecord, key: str) -> None:
        self._leaving.pop((session.pk, key, conn.conn_id), None)
        room_key = str(session.pk)
        if await self.presence.remove(room_key, key, conn.conn_id):
            await self.attendance.departed(session, MemberChange(room_key, key, member_info(conn), False))

    def _refuse(self, conn: Connection, error: HubError) -> None:
        conn.start()
        conn.offer(error_message(conn.session_id, error.code, error.message, details=error.details).decode())
        conn.close_soon(error.close_code)
