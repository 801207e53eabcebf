"""The rooms on this process, by session: opened on the first join, subscribed to the
session's broker channel while open, released a while after the last member left (a
member who reconnects at once finds the room still warm).

Each event a room delivers is also shown to the per-room work of large classes: the
group's HRV (`hub.hrv_summaries`) and the coalesced presence participants see
(`hub.presence_count`); and to what a late joiner's welcome recalls (`hub.session_state`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Iterator

from .broker import Broker, MessageHandler, session_channel
from .close_codes import CloseCode
from .config import Settings
from .hrv_summaries import GroupHrvWriter
from .metrics import HubMetrics
from .presence_count import PresenceDigests
from .replay import LogReader
from .room import Room
from .session_state import SessionState
from .store import SessionRecord, SessionStore

log = logging.getLogger("hub")


class Rooms:
    def __init__(
        self,
        settings: Settings,
        sessions: SessionStore,
        broker: Broker,
        reader: LogReader,
        metrics: HubMetrics,
        node_id: str,
        group_hrv: GroupHrvWriter,
        digests: PresenceDigests,
        session_state: SessionState,
    ):
        self.settings = settings
        self.sessions = sessions
        self.group_hrv = group_hrv
        self.digests = digests
        self.session_state = session_state
        self.broker = broker
        self.reader = reader
        self.metrics = metrics
        self.node_id = node_id
        self._rooms: dict[int, Room] = {}
        self._opening: dict[int, asyncio.Future[Room]] = {}

    def get(self, session_pk: int) -> Room | None:
        return self._rooms.get(session_pk)

    def __iter__(self) -> Iterator[Room]:
        return iter(list(self._rooms.values()))

    def __len__(self) -> int:
        return len(self._rooms)

    async def open(self, session: SessionRecord) -> Room:
        room = self._rooms.get(session.pk)
        if room is not None and room.next_seq is not None:
            if room.release_handle is not None:
                room.release_handle.cancel()
                room.release_handle = None
            return room
        opening = self._opening.get(session.pk)
        if opening is not None:
            return await asyncio.shield(opening)
        future: asyncio.Future[Room] = asyncio.get_running_loop().create_future()
        self._opening[session.pk] = future
        try:
            room = Room(
                session.pk,
                session.session_id,
                session.account_id,
                fetch=functools.partial(self.reader.fetch, session),
                gap_repair_delay=self.settings.gap_repair_delay,
                on_repair=self.metrics.gap_repairs.inc,
                on_event=self._after_delivery,
            )
            self._rooms[session.pk] = room
            await self.broker.subscribe(session_channel(session.pk), self._broker_handler(room))
            fresh = await self.sessions.get_session_by_pk(session.pk) or session
            room.set_head(fresh.head_seq, await self.reader.cursor_at(fresh, fresh.head_seq))
            self.metrics.rooms.set(len(self._rooms))
            future.set_result(room)
            return room
        except BaseException as exc:
            self._rooms.pop(session.pk, None)
            future.set_exception(exc)
            future.exception()  # mark retrieved: the caller gets the raise below
            raise
        finally:
            self._opening.pop(session.pk, None)

    def schedule_release(self, room: Room) -> None:
        if room.members or room.release_handle is not None:
            return
        loop = asyncio.get_running_loop()
        room.release_handle = loop.call_later(
            self.settings.room_linger, lambda: asyncio.ensure_future(self._release(room))
        )

    async def _release(self, room: Room) -> None:
        room.release_handle = None
        if room.members or self._rooms.get(room.session_pk) is not room:
            return
        del self._rooms[room.session_pk]
        room.close()
        self.group_hrv.forget(room.session_pk)
        self.session_state.forget(room.session_pk)
        self.metrics.rooms.set(len(self._rooms))
        try:
            await self.broker.unsubscribe(session_channel(room.session_pk))
        except Exception:
            log.warning("unsubscribe failed", extra={"session": room.session_id})

    def close_all(self) -> None:
        for room in self._rooms.values():
            room.close()
        self._rooms.clear()

    def _broker_handler(self, room: Room) -> MessageHandler:
        node_id = self.node_id

        def handle(origin: str, seq: int, payload: bytes) -> None:
            if origin != node_id:
                room.deliver(seq, payload.decode())

        return handle

    def on_resubscribed(self, channel: str) -> None:
        for room in self._rooms.values():
            if session_channel(room.session_pk) == channel:
                room.request_repair()

    def _after_delivery(self, room: Room, seq: int, event_type: str, payload: str, deliveries: int) -> None:
        self.metrics.events_delivered(deliveries)
        self.group_hrv.observe(room, seq, event_type, payload)
        self.digests.observe(room, event_type)
        self.session_state.observe(room, seq, event_type, payload)
        if event_type == "session_ended":
            for conn in list(room.members.values()):
                conn.close_soon(CloseCode.SESSION_ENDED)
