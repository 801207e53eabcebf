"""A room: this process's members of one session, fed the session's log in seq order.

Events reach a room from two places: this process's own commits (at once) and the
broker (other processes' commits, and echoes of ours). Either may be late, repeated or
lost. The room keeps `next_seq`, the seq it must deliver next:

- seq < next_seq: already delivered, dropped.
- seq == next_seq: delivered to every member, then any held successors follow.
- seq > next_seq: held; if the missing seqs do not arrive within `gap_repair_delay`,
  they are read from the log (the store guarantees that if n is visible so is n-1).

So the room emits 1, 2, 3, … exactly once, whatever the broker did. Each event then
goes to the members of its audience (`hub.audience`): one frame per view, built once,
carrying the seq of the previous event of that view (`prev_seq`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from .audience import EVERYONE, STAFF, Policy, ViewCursor, data_if_needed, event_type_of, view_of, with_prev
from .connection import Connection
from .wire import WireMessage

log = logging.getLogger("hub.room")

# fetch(after_seq, upto_seq) -> [(seq, payload)] read from the log, ascending
Fetch = Callable[[int, int | None], Awaitable[list[tuple[int, str]]]]


class Room:
    def __init__(
        self,
        session_pk: int,
        session_id: str,
        account_id: str,
        fetch: Fetch,
        gap_repair_delay: float = 0.02,
        on_repair: Callable[[int], None] | None = None,
        on_event: Callable[[Room, int, str, str, int], None] | None = None,
    ):
        self.session_pk = session_pk
        self.session_id = session_id
        self.account_id = account_id
        self.members: dict[str, Connection] = {}
        # The same members by the view they read (staff: every event; participants: the
        # `everyone` events), so that fan-out walks only the audience of each event.
        self.views: dict[str, dict[str, Connection]] = {STAFF: {}, EVERYONE: {}}
        self.cursor: ViewCursor | None = None  # set with the head
        self.next_seq: int | None = None  # None until the head is known
        self._held: dict[int, str] = {}
        self._fetch = fetch
        self._gap_delay = gap_repair_delay
        self._on_repair = on_repair
        self._on_event = on_event
        self._repair_task: asyncio.Task[None] | None = None
        self.release_handle: asyncio.TimerHandle | None = None

    @property
    def head(self) -> int:
        return (self.next_seq or 1) - 1

    def set_head(self, head_seq: int, cursor: ViewCursor | None = None) -> None:
        """The log's head when the room opened, and the views as they stand there
        (`hub.audience.cursor_at`; without it the default audiences, with every view's
        last event taken to be the head): later events are the room's to deliver."""
        if self.next_seq is None:
            self.cursor = cursor or ViewCursor(Policy(), head_seq, head_seq)
            self.next_seq = head_seq + 1
            for seq in [s for s in self._held if s <= head_seq]:
                del self._held[seq]
            self._drain_held()

    def add(self, conn: Connection) -> None:
        self.members[conn.conn_id] = conn
        self.views[view_of(conn.role)][conn.conn_id] = conn
        if not conn.replaying:
            conn.last_seq = self.head

    def remove(self, conn: Connection) -> None:
        self.members.pop(conn.conn_id, None)
        self.views[view_of(conn.role)].pop(conn.conn_id, None)

    def position(self) -> tuple[int, ViewCursor]:
        """The head the room has delivered and the views there, read together."""
        assert self.cursor is not None, "the room is not open yet"
        return self.head, self.cursor.copy()

    def deliver(self, seq: int, payload: str, event_type: str | None = None) -> None:
        """`event_type`, when the caller knows it, spares reading it back from `payload`."""
        next_seq = self.next_seq
        if next_seq is None:
            self._held[seq] = payload
            return
        if seq < next_seq:
            return
        if seq > next_seq:
            self._held[seq] = payload
            self._schedule_repair()
            return
        self._emit(seq, payload, event_type or event_type_of(payload))
        if self._held:
            self._drain_held()

    def _emit(self, seq: int, payload: str, event_type: str) -> None:
        cursor = self.cursor
        assert cursor is not None
        self.next_seq = seq + 1
        step = cursor.step(seq, event_type, data_if_needed(event_type, payload))
        # One frame per view, framed once and written to every member of that view.
        deliveries = 0
        staff = self.views[STAFF]
        staff_frame: WireMessage | None = None
        if staff:
            staff_frame = WireMessage(with_prev(payload, step.prev_staff))
            members = list(staff.values())
            for member in members:
                member.push_event(seq, staff_frame)
            deliveries = len(members)
        everyone = self.views[EVERYONE]
        if step.audience == EVERYONE and everyone:
            if staff_frame is not None and step.prev_everyone == step.prev_staff:
                frame = staff_frame
            else:
                frame = WireMessage(with_prev(payload, step.prev_everyone))
            members = list(everyone.values())
            for member in members:
                member.push_event(seq, frame)
            deliveries += len(members)
        if self._on_event is not None:
            self._on_event(self, seq, event_type, payload, deliveries)

    def _drain_held(self) -> None:
        while self.next_seq is not None and self.next_seq in self._held:
            seq = self.next_seq
            payload = self._held.pop(seq)
            self._emit(seq, payload, event_type_of(payload))
        if self._held:
            self._schedule_repair()

    def request_repair(self) -> None:
        """Read the log past `next_seq` now (after a broker reconnect or a head check)."""
        self._schedule_repair(immediate=True)

    def _schedule_repair(self, immediate: bool = False) -> None:
        if self._repair_task is None or self._repair_task.done():
            self._repair_task = asyncio.create_task(
                self._repair(0.0 if immediate else self._gap_delay),
                name=f"repair-{self.session_pk}",
            )

    async def _repair(self, delay: float) -> None:
        backoff = 0.05
        if delay:
            await asyncio.sleep(delay)
        while self.next_seq is not None:
            self._drain_held()
            gap_end = min(self._held) - 1 if self._held else None
            try:
                rows = await self._fetch(self.next_seq - 1, gap_end)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the log is unreachable: keep trying, and say so
                log.warning(
                    "gap repair failed; retrying",
                    extra={"session": self.session_id, "error": f"{type(exc).__name__}: {exc}"},
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            if rows and self._on_repair is not None:
                self._on_repair(len(rows))
            for seq, payload in rows:
                self.deliver(seq, payload)
            if rows:
                continue  # more may follow (pages), or held events are now in reach
            if not self._held:
                return
            # The log does not show the gap yet (a commit in flight elsewhere): wait a bit.
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)

    def close(self) -> None:
        if self._repair_task is not None:
            self._repair_task.cancel()
        if self.release_handle is not None:
            self.release_handle.cancel()
