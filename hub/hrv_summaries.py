"""The hub's own HRV events: `hrv_summary` at most once per interval while samples
arrive, and `hrv_milestone` when the group first reaches each threshold.

Every process serving a room folds the samples it delivers (`hub.group_hrv`); each
process tries to append, and the log's idempotency keys make exactly one win:

- `hrv_summary:<k>` for the summary of interval k (wall clock, `HUB_HRV_SUMMARY_INTERVAL`
  seconds long). It is written when interval k+1 ends, so samples of interval k still on
  their way from other processes are in it; a process that is late finds it stored and
  stores nothing. Intervals without samples get no summary.
- `hrv_milestone:<threshold>` for the group's first 5, 10 and 15 %: once per session.

A room's fold starts from the log (the samples before the first one this process
delivers), so every process computes the same figures.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from .group_hrv import GroupHrv, milestone_data, milestones_reached
from .room import Room
from .store import AppendResult, EventLog

log = logging.getLogger("hub.hrv")

# append(room, event type, data, dedupe key): the hub's write path for its own events
Append = Callable[[Room, str, dict[str, Any], str], Awaitable[AppendResult]]

_SEED_PAGE = 5000


@dataclass
class _RoomHrv:
    group: GroupHrv = field(default_factory=GroupHrv)
    passed: set[int] = field(default_factory=set)  # milestone thresholds already in the log
    pending: set[int] = field(default_factory=set)  # intervals with samples, not summarised
    seeded: bool = False
    early: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # while seeding


class GroupHrvWriter:
    def __init__(
        self, interval: float, log_store: EventLog, append: Append, clock: Callable[[], float] = time.time
    ):
        self.interval = interval
        self._log = log_store
        self._append = append
        self._clock = clock
        self._rooms: dict[int, tuple[Room, _RoomHrv]] = {}
        self._seeding: set[asyncio.Task[None]] = set()

    @property
    def enabled(self) -> bool:
        return self.interval > 0

    def observe(self, room: Room, seq: int, event_type: str, payload: str) -> None:
        """Called for every event a room delivers, in seq order."""
        if not self.enabled or event_type not in ("hrv_update", "hrv_milestone"):
            return
        event = orjson.loads(payload)
        data = event.get("data") or {}
        entry = self._rooms.get(room.session_pk)
        if event_type == "hrv_milestone":
            threshold = _group_threshold(event.get("actor"), data)
            if entry is not None and threshold is not None:
                entry[1].passed.add(threshold)
            return
        if entry is None:
            entry = (room, _RoomHrv())
            self._rooms[room.session_pk] = entry
            self._start_seed(room, entry[1], seq)
        state = entry[1]
        actor = event.get("actor") or {}
        sample = (str(actor.get("user_id", "")), data)
        if state.seeded:
            state.group.add(*sample)
        else:
            state.early.append(sample)
        state.pending.add(math.floor(self._clock() / self.interval))

    def forget(self, session_pk: int) -> None:
        self._rooms.pop(session_pk, None)

    def figures(self, session_pk: int) -> dict[str, Any] | None:
        entry = self._rooms.get(session_pk)
        return entry[1].group.figures() if entry is not None and entry[1].seeded else None

    def _start_seed(self, room: Room, state: _RoomHrv, first_seq: int) -> None:
        task = asyncio.create_task(self._seed(room, state, first_seq), name=f"hrv-seed-{room.session_pk}")
        self._seeding.add(task)

        def done(t: asyncio.Task[None]) -> None:
            self._seeding.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.error("group HRV seeding failed", exc_info=t.exception())

        task.add_done_callback(done)

    async def _seed(self, room: Room, state: _RoomHrv, first_seq: int) -> None:
        """Fold the samples and milestones the log holds before `first_seq`."""
        seed, after, backoff = GroupHrv(), 0, 0.1
        passed: set[int] = set()
        while after < first_seq - 1:
            try:
                rows = await self._log.read_typed(
                    room.session_pk, ("hrv_update", "hrv_milestone"), after, _SEED_PAGE
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the log is unreachable: summaries wait, and say so
                log.warning("group HRV not seeded yet; retrying", extra={"error": repr(exc)})
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            for event in rows:
                if event.seq >= first_seq:
                    break
                threshold = _group_threshold(event.actor, event.data)
                if event.type == "hrv_milestone" and threshold is not None:
                    passed.add(threshold)
                seed.add_event(event.type, event.actor, event.data)
            if len(rows) < _SEED_PAGE or rows[-1].seq >= first_seq - 1:
                break
            after = rows[-1].seq
        for sample in state.early:
            seed.add(*sample)
        state.group, state.early, state.seeded = seed, [], True
        state.passed |= passed

    async def run(self) -> None:
        """At each interval boundary, write what is due (a supervised background loop)."""
        if not self.enabled:
            return
        while True:
            now = self._clock()
            boundary = math.floor(now / self.interval) + 1
            await asyncio.sleep(max(boundary * self.interval - now, 0.0))
            due = boundary - 2  # interval k is summarised once k+1 has ended
            writes = []
            for room, state in list(self._rooms.values()):
                ready = [k for k in state.pending if k <= due]
                if not ready or not state.seeded:
                    continue
                state.pending.difference_update(ready)
                writes.append(self._write(room, state, max(ready)))
            await asyncio.gather(*writes)

    async def _write(self, room: Room, state: _RoomHrv, interval: int) -> None:
        figures = state.group.figures()
        summary = {**figures, "interval": interval, "interval_seconds": self.interval}
        try:
            await self._append(room, "hrv_summary", summary, f"hrv_summary:{interval}")
            for threshold in milestones_reached(figures["average_hrv_improvement"], state.passed):
                data = milestone_data(threshold, figures)
                result = await self._append(room, "hrv_milestone", data, f"hrv_milestone:{threshold}")
                if result.error is None:  # stored now, or by another process before
                    state.passed.add(threshold)
        except Exception as exc:  # the database is down: the next interval with samples tries again
            log.warning("group HRV event not stored", extra={"session": room.session_id, "error": repr(exc)})

    async def stop(self) -> None:
        for task in list(self._seeding):
            task.cancel()
        self._rooms.clear()


def _group_threshold(actor: Any, data: Any) -> int | None:
    """The threshold of a milestone the hub wrote for the group (no actor), else None."""
    if actor is not None or not isinstance(data, dict) or data.get("scope") != "group":
        return None
    threshold = data.get("threshold")
    return threshold if isinstance(threshold, int) and not isinstance(threshold, bool) else None
