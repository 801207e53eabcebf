"""What every WebSocket message carries in `data`: one pydantic model per type.

The durable types' models validate what clients send (`hub.events.parse_client_frame`)
and what HTTP writes into the log (`live-announce`, lifecycle bodies); together with the
control messages' models they generate the AsyncAPI document at `/asyncapi.json`. They
are the executable form of the "Event data" table in `docs/protocol.md`.

Unknown fields in event data are kept as sent; `None` for an optional field is the same
as leaving it out.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from annotated_types import Interval, Len, MaxLen
from pydantic import BaseModel, Field

from .values import OPEN, Finite, Seq

Message = Annotated[str, MaxLen(1000)]  # the free-text `message`/`reason` of lifecycle events
# A participant named in an event (the hub writes a token's `sub`: at most 100).
ParticipantId = Annotated[str, MaxLen(200)]
NoteType = Literal["observation", "concern", "insight", "technical"]
FeedbackType = Literal["like", "dislike", "regenerate"]
ResponseMethod = Literal["text", "voice", "skip"]
NOTE_TYPES: tuple[str, ...] = get_args(NoteType)
FEEDBACK_TYPES: tuple[str, ...] = get_args(FeedbackType)


class EventData(BaseModel):
    model_config = OPEN


class SessionStarted(EventData):
    message: Message | None = None


class SessionPaused(EventData):
    reason: Message | None = None


class SessionResumed(EventData):
    message: Message | None = None


class SessionEnding(EventData):
    seconds_remaining: Annotated[int, Interval(ge=0, le=7200)] | None = None
    summary_available: bool | None = None
    message: Message | None = None


class SessionEnded(EventData):
    """The hub adds `status` (completed or cancelled), `ended_at` and `duration_seconds`."""

    message: Message | None = None


class Presence(EventData):
    """Written by the hub only; `count` repeats `participant_count` (seed 003's name)."""

    participant_id: ParticipantId | None = None
    name: Annotated[str, MaxLen(100)] | None = None
    participant_count: Annotated[int, Interval(ge=0, le=1_000_000)] | None = None
    count: Annotated[int, Interval(ge=0, le=1_000_000)] | None = None
    # connection_lost: a dead process's member expired (hub.attendance); hub_restart: not
    # back within HUB_RESTART_GRACE of a hub start (hub.presence_recovery)
    reason: Literal["connection_lost", "hub_restart"] | None = None


class TechniqueChanged(EventData):
    technique: Annotated[str, Len(1, 100)]
    duration: Annotated[int, Interval(ge=1, le=7200)] | None = Field(None, description="seconds")
    instructions: Annotated[str, MaxLen(2000)] | None = None


class HrvUpdate(EventData):
    hrv: Annotated[Finite, Interval(ge=0, le=1000)] = Field(description="ms RMSSD")
    improvement: Annotated[Finite, Interval(ge=-100, le=200)] | None = Field(None, description="percent")
    coherence: Annotated[Finite, Interval(ge=0, le=1)] | None = None


class HrvSummary(EventData):
    """Written by the hub only (hub/group_hrv.py): the group's figures for one interval."""

    participants_reporting: Annotated[int, Interval(ge=0, le=100_000)]
    average_hrv: Annotated[Finite, Interval(ge=0, le=1000)] | None = None
    average_hrv_improvement: Finite | None = Field(None, description="percent")
    min_hrv: Annotated[Finite, Interval(ge=0, le=1000)] | None = None
    max_hrv: Annotated[Finite, Interval(ge=0, le=1000)] | None = None
    interval: Annotated[int, Interval(ge=0)] | None = None


class HrvMilestone(EventData):
    improvement: Annotated[Finite, Interval(ge=-100, le=200)] = Field(description="percent")
    participant_id: ParticipantId | None = None
    message: Message | None = None


class AchievementUnlocked(EventData):
    title: Annotated[str, Len(1, 200)]
    description: Annotated[str, MaxLen(2000)] | None = None
    participant_id: ParticipantId | None = None


class Prompt(EventData):
    text: Annotated[str, Len(1, 4000)]
    category: Annotated[str, MaxLen(100)] | None = None
    expects_response: bool | None = None


class Response(EventData):
    text: Annotated[str, MaxLen(4000)]
    prompt_seq: Seq | None = None
    method: ResponseMethod | None = None
    duration_seconds: Annotated[int, Interval(ge=0, le=86400)] | None = None


class Announcement(EventData):
    message: Annotated[str, Len(1, 2000)]
    title: Annotated[str, MaxLen(200)] | None = None
    type: Annotated[str, MaxLen(50)] | None = None
    action_url: Annotated[str, MaxLen(2000)] | None = None


SessionUpdate = Annotated[dict[str, Any], Field(min_length=1, description="a non-empty object; anything")]


class Note(EventData):
    content: Annotated[str, Len(1, 10000)]
    note_type: NoteType | None = None
    is_important: bool | None = None
    requires_followup: bool | None = None
    interaction_sequence: Seq | None = Field(None, description="seq of the interaction it is about")


class Feedback(EventData):
    message_seq: Seq = Field(description="seq of a prompt or response")
    feedback_type: FeedbackType
    comment: Annotated[str, MaxLen(2000)] | None = None


class SessionSummary(EventData):
    """Written by the hub only (hub/end_summary.py) after a session completed: its
    multi-channel summary, rendered from its own log (docs/integration.md)."""

    quality_score: Annotated[Finite, Interval(ge=1, le=5)] | None = Field(
        None, description="HRV quality table"
    )
    quality_action: str
    email: dict[str, str] = Field(description="subject, html, text")
    web: dict[str, str] = Field(description="title, content, slug, seo_description")
    social: dict[str, Any] = Field(description="twitter, linkedin, facebook: content and hashtags")
    metrics: dict[str, Any]


DATA_MODELS: dict[str, Any] = {
    "session_started": SessionStarted,
    "session_paused": SessionPaused,
    "session_resumed": SessionResumed,
    "session_ending": SessionEnding,
    "session_ended": SessionEnded,
    "participant_joined": Presence,
    "participant_left": Presence,
    "technique_changed": TechniqueChanged,
    "hrv_update": HrvUpdate,
    "hrv_summary": HrvSummary,
    "hrv_milestone": HrvMilestone,
    "achievement_unlocked": AchievementUnlocked,
    "prompt": Prompt,
    "response": Response,
    "announcement": Announcement,
    "session_update": SessionUpdate,
    "note": Note,
    "feedback": Feedback,
    "session_summary": SessionSummary,
}


# Control messages (server to client, `seq: null`): documented, never validated.


class Person(BaseModel):
    participant_id: str
    name: str


class Resume(BaseModel):
    since: int | None
    recovered: bool
    reason: Literal["ahead_of_log", "trimmed"] | None
    head_seq: int
    retained_from: int


class LatestEvent(BaseModel):
    """An event of the log as the welcome recalls it (hub/session_state.py)."""

    seq: int
    ts: str
    actor: dict[str, Any] | None
    data: dict[str, Any]


class Welcome(BaseModel):
    role: Literal["participant", "instructor", "observer"]
    participant_count: int
    participants: list[Person]
    instructors: list[Person]
    status: str
    current_technique: dict[str, Any] | None
    head_seq: int
    title: str
    session_type: str
    max_participants: int
    started_at: str | None
    resume: Resume
    heartbeat_interval: float
    idle_timeout: float
    connection_id: str
    open_prompt: LatestEvent | None = Field(description="the latest prompt of the member's view")
    latest_announcement: LatestEvent | None = Field(description="the latest announcement of the view")


class Ack(BaseModel):
    id: str = Field(description="the client's id of the event")
    seq: Seq


class Error(BaseModel):
    id: str | None = Field(description="the refused frame's id, when it had a usable one")
    code: str = Field(description="an error code of docs/protocol.md")
    message: str
    details: dict[str, Any] = Field(
        description="`field` (and `rule`) of the first problem, `errors` listing every one"
    )


class Pong(BaseModel):
    server_time: str


class TokenExpiring(BaseModel):
    expires_at: str = Field(description="when the connection's token expires, ISO-8601 UTC")
    expires_in: int = Field(description="whole seconds left")


class Refreshed(TokenExpiring):
    id: str | None = Field(description="the refresh frame's id, when it had one")


CONTROL_MODELS: dict[str, type[BaseModel]] = {
    "welcome": Welcome,
    "ack": Ack,
    "error": Error,
    "pong": Pong,
    "token_expiring": TokenExpiring,
    "refreshed": Refreshed,
}


def highest_numbers() -> dict[tuple[str, str], int | float]:
    """(event type, field) -> the largest number the event model accepts: what every
    column a projection writes that field into must hold."""
    found: dict[tuple[str, str], int | float] = {}
    for event_type, model in DATA_MODELS.items():
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            continue
        for name, prop in model.model_json_schema()["properties"].items():
            for branch in [prop, *prop.get("anyOf", [])]:
                if "maximum" in branch:
                    found[(event_type, name)] = branch["maximum"]
    return found
