"""After the class: the multi-channel summary a completed session gets, as a durable
`session_summary` event.

When a session completes, the hub folds its own log into facts (participants, duration,
techniques, HRV improvement, achievements, feedback), scores it with the HRV quality
table (`hub.records.channel_summary.quality`), renders email, web and social content
(`hub.channel_templates`) and appends `session_summary` to the log. The event is the
stored summary: webhooks carry it to whatever sends the email or publishes the page, and
`GET /api/v2/session/{id}/summary` serves it under `channels`.

It is written once per session (a fixed idempotency key), by whichever process saw the
session end; a sweep catches sessions whose process died before writing it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

from .channel_templates import ChannelRenderer, channel_context
from .events import iso
from .records.channel_summary import quality
from .records.session_metrics import compute_metrics
from .store import AppendResult, SessionRecord, Store, StoredEvent

log = logging.getLogger("hub.summary")

SUMMARY_TYPE = "session_summary"
SUMMARY_KEY = "hub\x1fsession_summary"  # the one idempotency key: one summary per session
SWEEP_INTERVAL = 30.0

Append = Callable[
    [SessionRecord, str, dict[str, Any], dict[str, Any] | None, str | None], Awaitable[AppendResult]
]


class SummaryLog(Protocol):
    async def missing(self, limit: int) -> list[int]:
        """Recently completed sessions whose log has no summary yet."""
        ...

    async def latest(self, session_pk: int) -> dict[str, Any] | None:
        """The session's summary (the data of its `session_summary` event), if written."""
        ...


def summary_facts(record: SessionRecord, events: Iterable[StoredEvent]) -> dict[str, Any]:
    """What the templates speak about, from the session record and its log alone."""
    events = list(events)
    metrics = compute_metrics(events)
    techniques: list[str] = []
    achievements: list[str] = []
    feedback: list[dict[str, str]] = []
    duration = metrics["duration_seconds"]
    for event in events:
        data, actor = event.data or {}, event.actor or {}
        if event.type == "technique_changed" and isinstance(data.get("technique"), str):
            if data["technique"] not in techniques:
                techniques.append(data["technique"])
        elif event.type == "achievement_unlocked" and isinstance(data.get("title"), str):
            achievements.append(data["title"])
        elif event.type == "feedback" and isinstance(data.get("comment"), str) and data["comment"]:
            feedback.append({"name": str(actor.get("name") or "A participant"), "comment": data["comment"]})
        elif event.type == "session_ended" and isinstance(data.get("duration_seconds"), int):
            duration = data["duration_seconds"]
    description = record.attributes.get("description") if record.attributes else None
    return channel_context(
        title=record.title,
        session_id=record.session_id,
        participants=max(metrics["participants_peak"], metrics["participants_total"]),
        duration_seconds=duration,
        techniques=techniques,
        improvement=metrics["average_hrv_improvement"],
        instructor=record.instructor,
        content=description if isinstance(description, str) else "",
        achievements=achievements,
        feedback=feedback,
        started_at=iso(record.started_at) if record.started_at else None,
    )


def build_summary(
    record: SessionRecord, events: Iterable[StoredEvent], renderer: ChannelRenderer
) -> dict[str, Any]:
    """The `session_summary` event's data."""
    facts = summary_facts(record, events)
    score, action = quality(facts["improvement"])
    return {
        "quality_score": score,
        "quality_action": action,
        **renderer.render(facts),
        "metrics": {
            "participant_count": facts["participants"],
            "session_duration": facts["duration_seconds"],
            "breathing_techniques": facts["techniques"],
            "average_hrv_improvement": facts["improvement"],
            "key_achievements": facts["achievements"],
        },
    }


class SummaryWriter:
    """Writes the summary of each session this process sees complete, and sweeps for
    sessions whose summary was never written (the process that ended them died)."""

    def __init__(self, store: Store, log_: SummaryLog, append: Append, renderer: ChannelRenderer, page: int):
        self.store = store
        self.log = log_
        self.append = append
        self.renderer = renderer
        self.page = page
        self._due: set[int] = set()
        self._wake = asyncio.Event()

    def observe(self, session_pk: int, event_type: str) -> None:
        """A commit observer (`Hub.commit_observers`): never blocks, never fails."""
        if event_type == "session_ended":
            self._due.add(session_pk)
            self._wake.set()

    async def run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), SWEEP_INTERVAL)
            except TimeoutError:
                self._due.update(await self.log.missing(100))
            self._wake.clear()
            due, self._due = self._due, set()
            for session_pk in sorted(due):
                await self.write(session_pk)

    async def write(self, session_pk: int) -> AppendResult | None:
        record = await self.store.get_session_by_pk(session_pk)
        if record is None or record.status != "completed":
            return None  # a cancelled session never ran: nothing to summarise
        events: list[StoredEvent] = []
        after = 0
        while True:
            page = await self.store.read_events(session_pk, after, self.page)
            events.extend(page)
            if len(page) < self.page:
                break
            after = page[-1].seq
        if any(e.type == SUMMARY_TYPE for e in events):
            return None
        data = build_summary(record, events, self.renderer)
        result = await self.append(record, SUMMARY_TYPE, data, None, SUMMARY_KEY)
        if result.error is not None:
            log.warning(
                "session summary not stored", extra={"session": record.session_id, "error": result.error}
            )
        return result
