"""The hub on this process: its rooms and members, the write path, and the background
work around them. `Hub` builds the collaborators and passes each what it needs: rooms
(`hub.rooms`), joining and leaving (`hub.membership`), frames members send
(`hub.inbound`), the log read back (`hub.replay`), group commit (`hub.committer`).

Write path: a client frame is validated (`hub.events`), queued for group commit
(`hub.committer`), and once PostgreSQL has it the commit listener, in seq order, acks the
sender, delivers to this process's room and hands the event to the broker for the
others. Nothing is acknowledged or delivered before it is durable.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from .attendance import Attendance
from .broker import Broker, BrokerUnavailable, session_channel
from .close_codes import CloseCode
from .committer import GroupCommitter, PendingAppend
from .config import Settings
from .connection import Connection
from .events import ack_message, envelope, iso, now_iso
from .hrv_summaries import GroupHrvWriter
from .inbound import Inbound
from .membership import Membership
from .metrics import HubMetrics
from .presence import Presence
from .presence_count import PresenceDigests
from .presence_recovery import PresenceRecovery
from .records.projector import PROJECTED_TYPES
from .records.store import ProjectionStore
from .records.worker import RecordsWorker
from .replay import LogReader
from .room import Room
from .rooms import Rooms
from .session_state import SessionState
from .store import AppendRequest, AppendResult, SessionRecord, Store
from .supervisor import Supervisor
from .token_refresh import TokenLifetime
from .wire import WireMessage

log = logging.getLogger("hub")


class Hub:
    def __init__(self, settings: Settings, store: Store, broker: Broker, presence: Presence):
        self.settings = settings
        self.store = store
        self.broker = broker
        self.presence = presence
        self.node_id = broker.node_id or uuid.uuid4().hex[:12]
        self.metrics = HubMetrics()
        self._outbox: deque[tuple[str, int, bytes]] = deque()
        self._outbox_ready = asyncio.Event()
        self._outbox_max = 50_000
        self.committer = GroupCommitter(
            store,
            self._on_committed,
            batch_max=settings.commit_batch_max,
            queue_max=settings.commit_queue_max,
            observer=self._observe_batch,
            lanes=settings.commit_lanes,
        )
        self.supervisor = Supervisor(self.metrics)
        self.tokens = TokenLifetime(
            settings.token_warning, on_expired=self.metrics.closes.labels("token_expired").inc
        )
        self.accepting = True
        # Large classes: the group's HRV events, and presence as participants see it.
        self.group_hrv = GroupHrvWriter(settings.hrv_summary_interval, store, self._append_own)
        self.presence_digests = PresenceDigests(presence)
        # What a late joiner sees at once: the open prompt and the latest announcement.
        self.session_state = SessionState(store)
        reader = LogReader(store, settings.replay_page)
        self.rooms = Rooms(
            settings,
            store,
            broker,
            reader,
            self.metrics,
            self.node_id,
            self.group_hrv,
            self.presence_digests,
            self.session_state,
        )
        self.attendance = Attendance(settings, store, presence, self.committer, self.rooms)
        self.membership = Membership(
            settings, store, presence, self.rooms, reader, self.attendance, self.metrics, self.session_state
        )
        # After a restart: the members the log shows present, held until they come back.
        self.presence_recovery = PresenceRecovery(
            store, presence, self.attendance, self.node_id, settings.restart_grace
        )
        self.inbound = Inbound(settings, self.committer, self.metrics, self.tokens)
        # Told of the events this process stores, once per (session pk, type) and commit
        # batch; must not block or raise.
        self.commit_observers: list[Callable[[int, str], None]] = []
        # Session records projected from the log (hub/records/worker.py); attached by the app.
        self.records: RecordsWorker | None = None

    def attach_records(self, store: ProjectionStore) -> None:
        self.records = RecordsWorker(store)

    # life cycle

    async def start(self) -> None:
        await self.broker.start()
        self.broker.on_resubscribed(self.rooms.on_resubscribed)
        self.broker.on_reconnected(self.metrics.broker_reconnects.inc)
        self.broker.on_resubscribed(lambda channel: self.metrics.broker_resubscribes.inc())
        self.metrics.broker_up.set_function(lambda: float(self.broker.healthy()))
        self.committer.start()
        self.supervisor.watch("group-commit", self.committer.task)
        self.supervisor.loop("broker-publisher", self._publish_loop)
        self.supervisor.loop("sweeper", self._sweep_loop)
        self.supervisor.loop("head-check", self._head_check_loop)
        self.supervisor.loop("presence-refresh", self.attendance.refresh_loop)
        self.supervisor.loop("presence-reaper", self.attendance.reap_loop)
        await self._recover_presence()
        self.supervisor.loop("presence-digest", self.presence_digests.run)
        if self.group_hrv.enabled:
            self.supervisor.loop("group-hrv", self.group_hrv.run)
        if self.records is not None:
            self.supervisor.loop("records-projector", self.records.run)

    async def _recover_presence(self) -> None:
        """Before the first connection: hold the members the log shows present, so that
        those who come back are not joined again (hub/presence_recovery.py)."""
        try:
            await asyncio.wait_for(self.presence_recovery.restore(), timeout=30)
        except Exception:
            log.exception("presence not restored at start; retried in the background")
        self.supervisor.once("presence-recovery", self.presence_recovery.run)

    async def drain(self) -> None:
        """SIGTERM: stop accepting, flush accepted events, send everyone elsewhere."""
        self.accepting = False
        await self.committer.drain(self.settings.drain_timeout)
        deadline = time.monotonic() + 2.0
        while self._outbox and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        conns = [c for room in self.rooms for c in room.members.values()]
        for conn in conns:
            conn.close_soon(CloseCode.SERVER_SHUTDOWN)
        await asyncio.gather(*(c.wait_closed(2.0) for c in conns), return_exceptions=True)

    async def stop(self) -> None:
        self.accepting = False
        await self.membership.stop()
        await self.attendance.stop()
        await self.group_hrv.stop()
        await self.supervisor.stop()
        await self.committer.close()
        for room in self.rooms:
            for conn in list(room.members.values()):
                await conn.stop()
        self.rooms.close_all()
        await self.broker.close()
        await self.presence.close()

    def readiness(self) -> dict[str, Any]:
        failures = self.supervisor.failures()
        return {
            "broker": self.broker.healthy(),
            "broker_error": self.broker.last_error(),
            "commit_error": self.committer.last_error,
            "background_failures": failures,
        }

    # the write path

    async def append(
        self,
        session: SessionRecord,
        event_type: str,
        data: dict[str, Any],
        actor: dict[str, Any] | None,
        dedupe_key: str | None = None,
    ) -> AppendResult:
        """Store one event written by the hub itself (HTTP); deliver it."""
        return await self.committer.append(session, event_type, data, actor, dedupe_key)

    async def _append_own(
        self, room: Room, event_type: str, data: dict[str, Any], dedupe_key: str
    ) -> AppendResult:
        """Store an event the hub writes itself for a room (no actor), idempotently."""
        request = AppendRequest(room.session_pk, event_type, data, None, dedupe_key)
        return await self.committer.submit(PendingAppend(request, room.session_id))

    def _on_committed(self, batch: Sequence[PendingAppend], results: Sequence[AppendResult]) -> None:
        """A stored batch, in order: ack each sender, deliver to this process's room and
        queue for the broker; then tell the counters and observers once per batch.

        Each event is encoded once: the same bytes go to the room (which adds `prev_seq`
        per view) and to the broker; the ack is formatted straight to bytes."""
        acked_at = now_iso()  # the acks of a batch go out together: one timestamp for all
        stored: dict[tuple[int, str], int] = {}  # (session pk, type) -> new events
        last_ts: Any = None
        ts_text = ""
        rooms = self.rooms
        for pending, result in zip(batch, results, strict=True):
            seq, ts = result.seq, result.ts
            if result.error is not None or seq is None or ts is None:
                continue
            try:
                request = pending.request
                session_id = pending.session_id
                if ts != last_ts:  # a batch's events usually share their commit time
                    last_ts, ts_text = ts, iso(ts)
                data = result.data
                payload = envelope(
                    request.type,
                    session_id,
                    data if data is not None else request.data,
                    seq=seq,
                    ts=ts_text,
                    actor=request.actor,
                )
                conn = pending.origin
                if isinstance(conn, Connection):
                    # A resent id gets exactly the first ack again (the contract's idempotency).
                    conn.offer(WireMessage(ack_message(session_id, pending.client_id, seq, acked_at)))
                if not result.duplicate:
                    key = (request.session_pk, request.type)
                    stored[key] = stored.get(key, 0) + 1
                room = rooms.get(request.session_pk)
                if room is not None:
                    room.deliver(seq, payload.decode(), request.type)
                # Duplicates are published again: the first attempt may have died before publishing.
                self._enqueue_publish(session_channel(request.session_pk), seq, payload)
            except Exception:  # one bad event must not strand the rest of its batch
                log.exception("commit delivery failed")
        for (session_pk, event_type), count in stored.items():
            self.metrics.event_in(event_type, count)
            if self.records is not None and event_type in PROJECTED_TYPES:
                self.records.notify(session_pk)
            for observer in self.commit_observers:
                observer(session_pk, event_type)

    def _enqueue_publish(self, channel: str, seq: int, payload: bytes) -> None:
        if len(self._outbox) >= self._outbox_max:
            self._outbox.popleft()  # others repair it from the log
            self.metrics.broker_failures.inc()
        self._outbox.append((channel, seq, payload))
        self._outbox_ready.set()

    async def _publish_loop(self) -> None:
        while True:
            if not self._outbox:
                self._outbox_ready.clear()
                await self._outbox_ready.wait()
            # Everything queued goes in one round trip: under load, publishing one event
            # per round trip would make later events wait behind earlier ones.
            batch = [self._outbox.popleft() for _ in range(min(len(self._outbox), 256))]
            started = time.perf_counter()
            try:
                await self.broker.publish_many(batch)
            except BrokerUnavailable:
                self.metrics.broker_failures.inc(len(batch))  # other processes repair from the log
                continue
            self.metrics.broker_latency.observe(time.perf_counter() - started)

    def _observe_batch(self, size: int, seconds: float, ok: bool) -> None:
        self.metrics.batch_size.observe(size)
        if ok:
            self.metrics.persist_latency.observe(seconds)
        else:
            self.metrics.persist_failures.inc()

    # background checks

    async def _sweep_loop(self) -> None:
        """Close idle connections; warn and close those whose token runs out."""
        while True:
            await asyncio.sleep(1.0)
            now_mono, now_wall = time.monotonic(), time.time()
            for room in self.rooms:
                for conn in list(room.members.values()):
                    if now_mono - conn.last_seen > self.settings.idle_timeout:
                        self.metrics.closes.labels("idle_timeout").inc()
                        conn.close_soon(CloseCode.IDLE_TIMEOUT)
                    else:
                        self.tokens.sweep(conn, now_wall)

    async def _head_check_loop(self) -> None:
        """Catch a lost last event: compare each room with the log's head, in one query.

        A head just committed may not have reached the room yet (its commit result or
        broker message is on the way), so a room is repaired only when it is still
        behind what the previous check saw: a whole interval later.
        """
        behind: dict[int, int] = {}  # session pk -> head seen while the room lagged
        while True:
            await asyncio.sleep(1.0)
            rooms = [r for r in self.rooms if r.next_seq is not None]
            if not rooms:
                behind.clear()
                continue
            heads = await self.store.heads([r.session_pk for r in rooms])
            lagging: dict[int, int] = {}
            for room in rooms:
                head, next_seq = heads.get(room.session_pk, 0), room.next_seq or 0
                if head < next_seq:
                    continue
                previous = behind.get(room.session_pk)
                if previous is not None and next_seq <= previous:
                    room.request_repair()  # what was committed an interval ago never came
                else:
                    lagging[room.session_pk] = head
            behind = lagging
