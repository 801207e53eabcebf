"""What a member needs to see at once when it joins: the open prompt and the latest
announcement, as its view holds them.

A late joiner, or a page reloaded mid-class, must not show "No prompts yet" while a
prompt is open, nor miss the announcement made a minute ago. Both live in the log, but
walking it back on every welcome would cost a scan per join (a class of a thousand
reconnecting after a restart would make that a thousand scans), so each room's latest
`prompt` and `announcement` are kept here: read from the log once when the room's first
member joins, then followed from the events the room delivers. Both sides keep the
higher seq, so a load racing a live event ends on the newest either way.

Views (`hub.audience`): staff see the latest event of each type; participants the
latest one whose audience was `everyone` when it was written.

The welcome carries them as `open_prompt` and `latest_announcement`, each
`{"seq", "ts", "actor", "data"}` or null (see docs/protocol.md, "welcome").
"""

from __future__ import annotations

from typing import Any

import orjson

from .audience import EVERYONE, STAFF, cursor_at, view_of
from .events import iso
from .room import Room
from .store import EventLog, SessionRecord, StoredEvent

# welcome field -> event type
FIELDS = {"open_prompt": "prompt", "latest_announcement": "announcement"}
TRACKED = frozenset(FIELDS.values())
_LOOK_BACK = 50  # events of a type read back to find the latest one participants may see


class Latest:
    """The latest event of a (view, type): kept as the delivered envelope and decoded
    only when a welcome asks for it (a room delivering a stream of announcements must
    not pay a decode per event for the rare joiner)."""

    __slots__ = ("_item", "_payload", "seq")

    def __init__(self, seq: int, payload: str | None = None, item: dict[str, Any] | None = None):
        self.seq = seq
        self._payload = payload
        self._item = item

    @property
    def item(self) -> dict[str, Any]:  # {"seq", "ts", "actor", "data"}
        if self._item is None:
            message = orjson.loads(self._payload or "{}")
            self._item = _item(self.seq, message.get("ts"), message.get("actor"), message.get("data"))
            self._payload = None
        return self._item


class _RoomState:
    __slots__ = ("latest", "loaded")

    def __init__(self) -> None:
        self.loaded = False
        self.latest: dict[tuple[str, str], Latest] = {}  # (view, type) -> latest

    def keep(self, view: str, event_type: str, latest: Latest) -> None:
        known = self.latest.get((view, event_type))
        if known is None or known.seq < latest.seq:
            self.latest[(view, event_type)] = latest


def _item(seq: int, ts: Any, actor: Any, data: Any) -> dict[str, Any]:
    return {"seq": seq, "ts": ts, "actor": actor, "data": data}


class SessionState:
    def __init__(self, log: EventLog):
        self._log = log
        self._rooms: dict[int, _RoomState] = {}

    def observe(self, room: Room, seq: int, event_type: str, payload: str) -> None:
        """Called for every event a room delivers, in seq order."""
        if event_type not in TRACKED:
            return
        latest = Latest(seq, payload)
        state = self._rooms.get(room.session_pk)
        if state is None:
            state = self._rooms[room.session_pk] = _RoomState()
        state.keep(STAFF, event_type, latest)
        # The room's cursor has stepped over this event; only a session_update changes
        # the policy, so it is the policy the event was written under.
        policy = room.cursor.policy if room.cursor is not None else None
        if policy is not None and policy.audience_of(event_type) == EVERYONE:
            state.keep(EVERYONE, event_type, latest)

    def forget(self, session_pk: int) -> None:
        self._rooms.pop(session_pk, None)

    async def for_member(self, session: SessionRecord, role: str) -> dict[str, Any]:
        """The welcome's `open_prompt` and `latest_announcement` for a member in `role`."""
        state = self._rooms.get(session.pk)
        if state is None:
            state = self._rooms[session.pk] = _RoomState()
        if not state.loaded:
            await self._load(session, state)
        view = view_of(role)
        found: dict[str, Any] = {}
        for name, event_type in FIELDS.items():
            latest = state.latest.get((view, event_type))
            found[name] = latest.item if latest is not None else None
        return found

    async def _load(self, session: SessionRecord, state: _RoomState) -> None:
        for event_type in TRACKED:
            events = await self._log.read_typed(session.pk, (event_type,), 0, _LOOK_BACK, newest_first=True)
            if not events:
                continue
            state.keep(STAFF, event_type, _stored(events[0]))
            for event in events:
                if await _audience_at(self._log, session, event) == EVERYONE:
                    state.keep(EVERYONE, event_type, _stored(event))
                    break
        state.loaded = True


def _stored(event: StoredEvent) -> Latest:
    return Latest(event.seq, item=_item(event.seq, iso(event.ts), event.actor, event.data))


async def _audience_at(log: EventLog, session: SessionRecord, event: StoredEvent) -> str:
    cursor = await cursor_at(log, session, event.seq)
    return cursor.policy.audience_of(event.type)
