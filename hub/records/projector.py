"""The records projector: from one stored event to the record rows it implies.

Interactions (prompt/response), notes, feedback and summaries are not written by the
endpoints that receive the events; they are derived from the log, so they can be
rebuilt from it at any time and every hub process can derive them idempotently. This
module is the pure part: `apply(state, event)` folds one event into the per-session
`ProjectionState` and returns the rows to write, keyed by (session, seq). The store
(`storage.records.projection`) runs it after commit, or over the whole replayed log.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from ..events import iso
from ..store import StoredEvent
from .conversation import (
    answered_prompt,
    feedback_of,
    int_or_none,
    remember_prompt,
    responder,
    response_duration,
    response_method,
    response_seconds,
    technique_of,
    text_or_none,
)

SUMMARY_EVERY = 5  # seed 002: a summary after every 5 participant (user) messages
_LIST_CAP = 20  # themes, techniques, ... kept in the state (summaries show a few)


@dataclass
class ProjectionState:
    """What the fold remembers between events; stored as JSON beside the checkpoint."""

    interactions: int = 0
    prompts: int = 0
    responses: int = 0
    last_prompt_seq: int | None = None
    prompt_ts: dict[str, str] = field(default_factory=dict)  # `conversation.remember_prompt`
    categories: dict[str, int] = field(default_factory=dict)
    topics: dict[str, int] = field(default_factory=dict)
    notes: int = 0
    followups: list[str] = field(default_factory=list)
    techniques: list[str] = field(default_factory=list)
    achievements: list[str] = field(default_factory=list)
    responders: list[str] = field(default_factory=list)
    feedback: dict[str, int] = field(default_factory=dict)
    started_at: str | None = None
    last_summary_seq: int | None = None

    @classmethod
    def from_json(cls, raw: dict[str, Any] | None) -> ProjectionState:
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in (raw or {}).items() if k in known})

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class InteractionRow:
    seq: int
    interaction_sequence: int
    interaction_type: str
    content: str
    prompt_category: str | None
    response_method: str | None
    prompt_seq: int | None
    topic: str | None
    duration_seconds: int | None
    actor: dict[str, Any]
    ts: Any


@dataclass(frozen=True)
class NoteRow:
    seq: int
    note_type: str
    note_content: str
    noted_at_interaction_sequence: int | None
    is_important: bool
    requires_followup: bool
    actor: dict[str, Any]
    ts: Any


@dataclass(frozen=True)
class FeedbackRow:
    seq: int
    message_seq: int
    user_id: str
    feedback_type: str
    comment: str | None
    ts: Any


@dataclass(frozen=True)
class SummaryDue:
    """A summary is due at this event; the store adds the session's record fields and
    renders it (`hub.records.summaries.render`)."""

    seq: int
    kind: str  # "periodic" | "final"
    ts: Any
    facts: dict[str, Any]
    duration_seconds: int | None = None


Write = InteractionRow | NoteRow | FeedbackRow | SummaryDue


def _add_capped(items: list[str], value: Any) -> None:
    if isinstance(value, str) and value and value not in items and len(items) < _LIST_CAP:
        items.append(value)


def _count(counter: dict[str, int], key: Any) -> None:
    if isinstance(key, str) and key:
        counter[key] = counter.get(key, 0) + 1


def facts(state: ProjectionState) -> dict[str, Any]:
    """The log-derived part of a summary: what happened so far."""
    themes = sorted(state.categories.items(), key=lambda kv: (-kv[1], kv[0]))
    topics = sorted(state.topics.items(), key=lambda kv: (-kv[1], kv[0]))
    return {
        "interactions": state.interactions,
        "prompts": state.prompts,
        "responses": state.responses,
        "themes": [name for name, _ in themes[:5]],
        "topics_discussed": [name for name, _ in topics[:5]],
        "notes": state.notes,
        "followups": list(state.followups[:5]),
        "techniques": list(state.techniques),
        "achievements": list(state.achievements),
        "participants_responding": len(state.responders),
        "feedback": dict(sorted(state.feedback.items())),
        "started_at": state.started_at,
    }


def _prompt(state: ProjectionState, event: StoredEvent) -> InteractionRow:
    data = event.data
    state.interactions += 1
    state.prompts += 1
    state.last_prompt_seq = event.seq
    remember_prompt(state.prompt_ts, event)
    _count(state.categories, data.get("category"))
    _count(state.topics, data.get("topic"))
    return InteractionRow(
        event.seq,
        state.interactions,
        "prompt",
        str(data.get("text", "")),
        text_or_none(data.get("category")),
        None,
        None,
        text_or_none(data.get("topic")),
        None,
        event.actor or {},
        event.ts,
    )


def _response(state: ProjectionState, event: StoredEvent) -> InteractionRow:
    data = event.data
    state.interactions += 1
    state.responses += 1
    user = responder(event)
    if user is not None and user not in state.responders:
        state.responders.append(user)
    prompt_seq = answered_prompt(data, state.last_prompt_seq, state.prompt_ts)
    seconds = response_seconds(state.prompt_ts, prompt_seq, event.ts)
    return InteractionRow(
        event.seq,
        state.interactions,
        "response",
        str(data.get("text", "")),
        None,
        response_method(data),
        prompt_seq,
        text_or_none(data.get("topic")),
        response_duration(data, seconds),
        event.actor or {},
        event.ts,
    )


def _note(state: ProjectionState, event: StoredEvent) -> NoteRow:
    data = event.data
    state.notes += 1
    if data.get("requires_followup") is True:
        _add_capped(state.followups, str(data.get("content", ""))[:200])
    note_type = data.get("note_type")
    return NoteRow(
        event.seq,
        note_type if isinstance(note_type, str) else "observation",
        str(data.get("content", "")),
        int_or_none(data.get("interaction_sequence")),
        data.get("is_important") is True,
        data.get("requires_followup") is True,
        event.actor or {},
        event.ts,
    )


# The types `apply` reads; the others leave the projection as it is. The hub wakes the
# projector only for these (a class streaming HRV would otherwise keep it catching up
# after every commit); the periodic sweep moves the checkpoint past the rest.
PROJECTED_TYPES = frozenset(
    {
        "prompt",
        "response",
        "note",
        "feedback",
        "technique_changed",
        "achievement_unlocked",
        "session_started",
        "session_ended",
    }
)


def apply(state: ProjectionState, event: StoredEvent) -> list[Write]:
    """Fold one event into `state`; return the rows it implies (possibly none)."""
    data = event.data or {}
    writes: list[Write] = []
    if event.type == "prompt":
        writes.append(_prompt(state, event))
    elif event.type == "response":
        writes.append(_response(state, event))
        if state.responses % SUMMARY_EVERY == 0:
            writes.append(SummaryDue(event.seq, "periodic", event.ts, facts(state)))
            state.last_summary_seq = event.seq
    elif event.type == "note":
        writes.append(_note(state, event))
    elif event.type == "feedback":
        given = feedback_of(event)
        if given is not None:
            _count(state.feedback, given.feedback_type)
            writes.append(
                FeedbackRow(
                    event.seq, given.message_seq, given.user_id, given.feedback_type, given.comment, event.ts
                )
            )
    elif event.type == "technique_changed":
        _add_capped(state.techniques, technique_of(event))
    elif event.type == "achievement_unlocked":
        _add_capped(state.achievements, data.get("title"))
    elif event.type == "session_started":
        state.started_at = iso(event.ts)
    elif event.type == "session_ended":
        duration = int_or_none(data.get("duration_seconds"))
        writes.append(SummaryDue(event.seq, "final", event.ts, facts(state), duration))
        state.last_summary_seq = event.seq
    return writes


def project_all(events: Iterable[StoredEvent]) -> tuple[ProjectionState, list[Write]]:
    """The whole fold from an empty state: what `rebuild` writes."""
    state = ProjectionState()
    writes: list[Write] = []
    for event in events:
        writes.extend(apply(state, event))
    return state, writes
