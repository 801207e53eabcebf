"""What the session endpoints read from the query string and the body, and what they
answer: declared once, for the request handling and for `/openapi.json`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from annotated_types import Interval, MaxLen
from pydantic import AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field

from hub.event_data import Announcement, Message
from hub.values import SEQ_MAX, STRICT, Cursor

from .log_reads import MAX_REPLAY
from .query import Flag, QueryInt, query_model
from .session_fields import STATUSES, SessionOut, SessionType

# queries


def _status_list(value: Any) -> Any:
    return [part for part in value.split(",") if part] if isinstance(value, str) else value


Status = Literal["scheduled", "in_progress", "paused", "completed", "cancelled"]


class SessionListQuery(BaseModel):
    model_config = query_model()

    status: Annotated[list[Status], BeforeValidator(_status_list)] | None = Field(
        None, description="comma-separated: " + ", ".join(STATUSES)
    )
    session_type: SessionType | None = Field(None, validation_alias=AliasChoices("session_type", "type"))
    limit: QueryInt[Annotated[int, Interval(ge=1, le=500)]] = Field(50, description="page size")
    cursor: QueryInt[Cursor] | None = None


class LiveQuery(BaseModel):
    model_config = query_model()

    include_metrics: Flag = False


class ContentQuery(BaseModel):
    model_config = query_model()

    include_metrics: Flag = False
    include_replay: Flag = False
    replay_since: QueryInt[Annotated[int, Interval(ge=0, le=SEQ_MAX)]] = Field(
        0, description="replay the events after this seq"
    )
    replay_limit: QueryInt[Annotated[int, Interval(ge=1, le=MAX_REPLAY)]] = Field(
        MAX_REPLAY, description="replay at most this many events (the default: the whole log)"
    )


class EventsQuery(BaseModel):
    model_config = query_model()

    since: QueryInt[Annotated[int, Interval(ge=0, le=SEQ_MAX)]] = Field(0, description="seq to read after")
    limit: QueryInt[Annotated[int, Interval(ge=1, le=10_000)]] = 1000


# bodies


class LifecycleBody(BaseModel):
    """Optional: a note for the lifecycle event (`message`, or `reason` when pausing)."""

    model_config = STRICT

    message: Message | None = None
    reason: Message | None = None


class AnnounceBody(BaseModel):
    model_config = STRICT

    announcement: Announcement
    session_id: Annotated[str, MaxLen(100)] | None = Field(
        None, description="absent: every live session of the account (admin only)"
    )


# answers


class Metrics(BaseModel):
    """Derived from the log; the live listing without `include_metrics` has only the two
    counts known without reading it."""

    model_config = ConfigDict(extra="allow")

    message_count: int
    participant_count: int | None = None
    events_by_type: dict[str, int] | None = None
    participants_peak: int | None = None
    participants_average: float | None = None
    participants_total: int | None = None
    participants_at_end: int | None = None
    prompts: int | None = None
    responses: int | None = None
    engagement_rate: float | None = None
    completion_rate: float | None = None
    average_hrv: float | None = None
    average_hrv_improvement: float | None = None
    current_hrv_improvement: float | None = None
    average_response_seconds: float | None = None
    median_response_seconds: float | None = None
    max_response_seconds: float | None = None
    interactions: int | None = None
    notes: int | None = None
    achievements: int | None = None
    feedback_by_type: dict[str, int] | None = None
    techniques_used: int | None = None
    duration_seconds: int | None = None


class SessionList(BaseModel):
    count: int
    sessions: list[SessionOut]
    next_cursor: int | None = Field(description="pass as `cursor` for the next page; null: last page")


class LiveSession(BaseModel):
    session_id: str
    title: str
    session_type: str
    status: str
    participant_count: int
    active: bool
    started_at: datetime | None
    current_technique: dict[str, Any] | None
    head_seq: int
    metrics: Metrics


class LiveList(BaseModel):
    count: int
    sessions: list[LiveSession]


class StoredMessage(BaseModel):
    """One event of the log, as WebSocket members received it."""

    type: str
    session_id: str
    seq: int
    ts: datetime
    actor: dict[str, Any] | None
    data: dict[str, Any]


class Participant(BaseModel):
    participant_id: str
    name: str


class SessionInfo(SessionOut):
    participants: list[Participant]


class ArchivedReplay(BaseModel):
    """The log was archived by retention and trimmed (docs/operations.md, "Retention")."""

    reason: Literal["trimmed"]
    retained_from: int = Field(description="the oldest seq the log still holds (past the head: none)")
    location: str | None = Field(None, description="the archive file (a file:// URI on the hub's side)")
    format: str | None = None
    event_count: int | None = None
    first_seq: int | None = None
    last_seq: int | None = None
    archived_at: str | None = None
    restore: str | None = Field(None, description="the command that puts the log back")


class Replay(BaseModel):
    message_count: int
    messages: list[StoredMessage]
    next_since: int | None = Field(
        description="the replay_since of the next page; null once the head is reached"
    )
    archived: ArchivedReplay | None = Field(None, description="present when the log was trimmed")


class Content(BaseModel):
    session_id: str
    title: str
    status: str
    active: bool
    session_info: SessionInfo
    metrics: Metrics | None = Field(None, description="with include_metrics=true")
    replay: Replay | None = Field(None, description="with include_replay=true")


class EventPage(BaseModel):
    session_id: str
    head_seq: int
    retained_from: int = Field(description="the oldest seq the log still holds")
    events: list[StoredMessage]


class Written(BaseModel):
    type: str
    seq: int | None


class LifecycleOut(SessionOut):
    event: Written = Field(description="the lifecycle event the transition wrote")


class Announced(BaseModel):
    status: Literal["announced"]
    sessions_notified: list[str]
    participant_count: int = Field(description="members reached in those sessions")
