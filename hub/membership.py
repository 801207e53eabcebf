"""Joining and leaving a room: welcome, resume, presence, and the frames members send.

Join: register the connection in the room with live events held back, send `welcome`,
replay the log after `since`, then release what was held (the seq filter drops what the
replay already sent). Leave: the presence entry outlives the socket by a short grace, so
a client that reconnects at once causes neither `participant_left` nor a new join.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

import orjson

from .audience import ViewCursor, cursor_at, frame_in_view, view_of
from .close_codes import CloseCode
from .committer import CommitFailed, CommitOverloaded, PendingAppend
from .connection import Connection
from .errors import ErrorCode, HubError, Invalid, SessionFull
from .events import (
    TERMINAL_STATUSES,
    envelope,
    error_message,
    iso,
    parse_client_frame,
)
from .events import now_iso as iso_now
from .presence import Roster
from .presence_count import LIST_CAP
from .room import Room
from .safe_json import json_problem
from .store import AppendRequest, AppendResult, SessionRecord

if TYPE_CHECKING:
    from .service import Hub

log = logging.getLogger("hub.membership")

_ERROR_TEXT: dict[str, str] = {
    ErrorCode.NOT_FOUND: "the session does not exist",
    ErrorCode.CONFLICT: "the session's status does not allow this event",
}


def member_key(conn: Connection) -> str:
    return conn.principal.user_id


def presence_event_data(participant_id: Any, name: Any, count: int) -> dict[str, Any]:
    """Data of `participant_joined` / `participant_left`: who, and the count after it.

    The count goes by both names: `participant_count` (the contract's welcome) and
    `count` (seed 003's event table).
    """
    return {"participant_id": participant_id, "name": name, "participant_count": count, "count": count}


class Membership:
    def __init__(self, hub: Hub):
        self.hub = hub
        self.settings = hub.settings
        self._leaving: dict[tuple[int, str, str], asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    def start(self) -> None:
        self.hub.supervisor.loop("presence-refresh", self._refresh_loop)

    async def stop(self) -> None:
        for handle in self._leaving.values():
            handle.cancel()
        self._leaving.clear()
        for task in list(self._tasks):
            task.cancel()

    # join

    async def join(self, conn: Connection, session: SessionRecord, since: int | None) -> bool:
        """Bring `conn` into the session's room. False: it was refused and is closing."""
        hub = self.hub
        room_key = str(session.pk)
        key = member_key(conn)
        is_participant = conn.role == "participant"
        ended = session.status in TERMINAL_STATUSES
        info = {
            "participant_id": conn.principal.user_id,
            "name": conn.principal.name,
            "role": conn.role,
            "joined_at": iso_now(),
        }
        admission = None
        if not ended:
            # The cap is checked and the member registered in one atomic step on the
            # presence, so racing joins on several processes never pass it together.
            # A reconnect within the grace finds its old entry still present: no new join.
            limit = session.max_participants if is_participant else None
            admission = await hub.presence.join(room_key, key, conn.conn_id, info, limit)
            if not admission.admitted:
                self._refuse(
                    conn, SessionFull("the session is full", {"max_participants": session.max_participants})
                )
                return False

        room = await hub.open_room(session)
        conn.replaying = True
        conn.start()
        room.add(conn)
        hub.metrics.connections.inc()

        roster = await hub.presence.roster(room_key, LIST_CAP)
        fresh = await hub.store.get_session_by_pk(session.pk) or session
        room_head, room_cursor = room.position()  # together: the replay starts from them
        head = max(fresh.head_seq, room_head)
        resume = self._resume_info(since, head, fresh.retained_from)
        conn.offer(self._welcome(conn, fresh, roster, head, resume))
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
                cursor = await cursor_at(hub.store, fresh, start_after)
            await self._replay(conn, fresh, start_after, head, cursor)
        conn.last_seq = max(conn.last_seq, start_after)
        conn.finish_replay()

        if ended:
            conn.close_soon(CloseCode.SESSION_ENDED)
        elif admission is not None and admission.first and is_participant:
            data = presence_event_data(
                conn.principal.user_id, conn.principal.name, admission.participant_count
            )
            self._background(hub.append(fresh, "participant_joined", data, conn.principal.actor))
        return True

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
    ) -> str:
        data = {
            "role": conn.role,
            "participant_count": roster.participant_count,
            # Bounded however large the class: the first LIST_CAP to join (the count is
            # exact), so a 1000-person welcome stays a few KiB.
            "participants": [
                {"participant_id": p["participant_id"], "name": p["name"]} for p in roster.participants
            ],
            "instructors": [
                {"participant_id": p["participant_id"], "name": p["name"]}
                for p in roster.staff
                if p.get("role") == "instructor"
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

    async def _replay(
        self, conn: Connection, session: SessionRecord, after: int, upto: int, cursor: ViewCursor
    ) -> None:
        """The log after `after` as the member's view holds it (`cursor` stands at `after`)."""
        page = self.settings.replay_page
        view = view_of(conn.role)
        while after < upto and not conn.closed:
            rows = await self.hub._fetch_payloads(session, after, upto)
            for seq, payload in rows:
                framed = frame_in_view(cursor, view, seq, payload)
                if framed is not None:
                    await conn.put(framed)
                conn.last_seq = seq
            if len(rows) < page:
                break
            after = rows[-1][0]

    # leave

    async def leave(self, conn: Connection, session: SessionRecord) -> None:
        hub = self.hub
        room = hub.rooms.get(session.pk)
        if room is not None and conn.conn_id in room.members:
            room.remove(conn)
            hub.metrics.connections.dec()
            hub.schedule_release(room)
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
        hub = self.hub
        self._leaving.pop((session.pk, key, conn.conn_id), None)
        room_key = str(session.pk)
        gone = await hub.presence.remove(room_key, key, conn.conn_id)
        if not gone or conn.role != "participant":
            return
        count = (await hub.presence.roster(room_key, 0)).participant_count
        data = presence_event_data(conn.principal.user_id, conn.principal.name, count)
        result = await hub.append(session, "participant_left", data, conn.principal.actor)
        if result.error not in (None, ErrorCode.CONFLICT):
            log.warning("participant_left not stored", extra={"error": result.error})

    # frames from members

    def handle_frame(self, conn: Connection, room: Room, raw: str | bytes) -> None:
        conn.last_seen = time.monotonic()
        if not conn.bucket.take():
            conn.strikes += 1
            if conn.strikes >= self.settings.rate_limit_strikes:
                self.hub.metrics.closes.labels("rate_limited").inc()
                conn.close_soon(CloseCode.RATE_LIMITED)
            else:
                # Not counted towards HUB_MAX_ERRORS: sustained abuse ends in 3508, not 3507.
                message = "too many messages; slow down"
                self._reply_error(
                    conn, room, ErrorCode.RATE_LIMITED, message, _client_id_of(raw), counted=False
                )
            return
        if conn.strikes and conn.bucket.tokens >= conn.bucket.capacity - 1:
            conn.strikes = 0  # the bucket refilled: the client slowed down, forgive the burst
        try:
            event = parse_client_frame(raw, conn.role)
            # Valid JSON PostgreSQL cannot store (NUL, deep nesting) would fail the whole batch.
            unsafe = json_problem(event.data) if event is not None else None
            if unsafe is None and event is not None:
                unsafe = json_problem(event.client_id, "id")
            if unsafe is not None:
                field, why = unsafe
                error = Invalid(f"{field} {why}", {"field": field, "rule": "storable"})
                error.client_id = event.client_id if event is not None else None
                raise error
        except HubError as exc:
            self._reply_error(conn, room, exc.code, exc.message, exc.client_id, exc.details)
            return
        if event is None:
            data = {"server_time": iso_now()}
            conn.offer(envelope("pong", room.session_id, data).decode())
            return
        data = event.data
        if event.type == "session_ended":
            data = {**data, "status": "completed"}  # cancelling is an HTTP operation
        request = AppendRequest(
            room.session_pk,
            event.type,
            data,
            conn.principal.actor,
            dedupe_key=f"{conn.principal.user_id}\x1f{event.client_id}",
        )
        pending = PendingAppend(request, room.session_id, origin=conn, client_id=event.client_id)
        try:
            future = self.hub.submit(pending)
        except CommitOverloaded as exc:
            # The hub's fault, not the client's: never counted towards HUB_MAX_ERRORS (a
            # database outage must not end connections with a do-not-reconnect code).
            self._reply_error(conn, room, exc.code, exc.message, event.client_id, counted=False)
            return
        future.add_done_callback(lambda f: self._after_commit(conn, room, event.client_id, f))

    def _after_commit(
        self, conn: Connection, room: Room, client_id: str, future: asyncio.Future[AppendResult]
    ) -> None:
        if future.cancelled():
            return
        exc = future.exception()
        if isinstance(exc, CommitFailed):
            message = "the event could not be stored; send it again"
            self._reply_error(conn, room, ErrorCode.UNAVAILABLE, message, client_id, counted=False)
            return
        if exc is not None:
            # A fault in the hub, not a dependency: say so and close with 1011 rather than
            # let the client retry into the same fault.
            log.error("unexpected commit failure", exc_info=exc)
            message = "internal error; the fault is logged on the hub"
            self._reply_error(conn, room, ErrorCode.INTERNAL, message, client_id, counted=False)
            conn.close_soon(CloseCode.UNEXPECTED_CONDITION)
            return
        result = future.result()
        if result.error is not None:
            message = _ERROR_TEXT.get(result.error, result.error)
            if result.error == ErrorCode.CONFLICT:
                message = f"the session is {result.status}; this event is not allowed now"
            self._reply_error(conn, room, result.error, message, client_id, {"status": result.status})

    def _reply_error(
        self,
        conn: Connection,
        room: Room,
        code: str,
        message: str,
        client_id: Any = None,
        details: Any = None,
        counted: bool = True,
    ) -> None:
        self.hub.metrics.frames_refused.labels(code).inc()
        conn.errors += 1 if counted else 0
        conn.offer(error_message(room.session_id, code, message, client_id, details).decode())
        if conn.errors >= self.settings.max_errors_per_connection:
            self.hub.metrics.closes.labels("too_many_errors").inc()
            conn.close_soon(CloseCode.TOO_MANY_ERRORS)

    def _refuse(self, conn: Connection, error: HubError) -> None:
        conn.start()
        conn.offer(error_message(conn.session_id, error.code, error.message, details=error.details).decode())
        conn.close_soon(error.close_code)

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

    async def _refresh_loop(self) -> None:
        """Keep this process's presence alive and sweep members of dead processes."""
        interval = max(self.settings.presence_ttl / 3, 0.5)
        while True:
            await asyncio.sleep(interval)
            await self.hub.presence.refresh()
            # Every room with presence entries, not only ours: when the process that served
            # a room died with all its members, some other process must write their leave.
            rooms = {str(pk) for pk in self.hub.rooms} | set(await self.hub.presence.rooms())
            for room_key in rooms:
                for info in await self.hub.presence.reap(room_key):
                    await self._emit_reaped(int(room_key), info)

    async def _emit_reaped(self, session_pk: int, info: dict[str, Any]) -> None:
        if info.get("role") != "participant":
            return
        session = await self.hub.store.get_session_by_pk(session_pk)
        if session is None or session.status in TERMINAL_STATUSES:
            return
        count = (await self.hub.presence.roster(str(session_pk), 0)).participant_count
        data = presence_event_data(info.get("participant_id"), info.get("name"), count)
        data["reason"] = "connection_lost"
        actor = {
            "user_id": info.get("participant_id"),
            "name": info.get("name"),
            "role": "participant",
        }
        await self.hub.append(session, "participant_left", data, actor)


def _client_id_of(raw: str | bytes) -> Any:
    """The frame's id, if it has a usable one, so a refusal can name what it refused."""
    try:
        message = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    client_id = message.get("id") if isinstance(message, dict) else None
    return client_id if isinstance(client_id, str) and len(client_id) <= 100 else None
