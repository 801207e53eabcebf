"""What the records endpoints answer: one model per kind of row, and the lists of them.

These describe the JSON for `/openapi.json`; the rows themselves come from the records
store (the columns of migrations 010-012) and are answered as they are.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from hub.event_data import FeedbackType, NoteType, ResponseMethod

from ..session_fields import SessionOut
from .common import Listing


class Interaction(BaseModel):
    seq: int
    interaction_sequence: int
    interaction_type: Literal["prompt", "response"]
    content: str
    prompt_category: str | None
    response_method: ResponseMethod | None
    prompt_seq: int | None
    topic: str | None
    duration_seconds: int | None
    actor_user_id: str | None
    actor_name: str | None
    actor_role: str | None
    ts: datetime


class NoteRow(BaseModel):
    id: int
    seq: int | None = Field(description="the note event's seq; null: written over HTTP")
    note_type: NoteType
    note_content: str
    noted_at_interaction_sequence: int | None
    is_important: bool
    requires_followup: bool
    noted_by: str | None
    noted_by_role: str | None
    created_at: datetime


class FeedbackRow(BaseModel):
    id: int
    seq: int | None = Field(description="the feedback event's seq; null: written over HTTP")
    message_seq: int
    user_id: str
    feedback_type: FeedbackType
    comment: str | None
    created_at: datetime


class ArtifactRow(BaseModel):
    id: int
    artifact_type: str
    artifact_name: str | None
    content: str | None
    structured_data: dict[str, Any] | list[Any] | None
    topic: str | None
    is_provisional: bool
    is_approved: bool
    approved_at: datetime | None
    approved_by: str | None
    included_in_synthesis: bool
    created_by: str | None
    created_at: datetime
    updated_at: datetime


class SessionTopic(BaseModel):
    topic_id: int
    name: str
    topic_type: str | None
    is_primary_focus: bool
    coverage_level: Literal["introduction", "exploration", "deep_dive", "completion"] | None
    notes: str | None
    created_at: datetime
    updated_at: datetime
    prompts_completed: int = Field(description="prompts of the session on this topic")


class TopicRow(BaseModel):
    id: int
    name: str
    topic_type: str | None
    description: str | None
    created_at: datetime
    session_count: int


class TopicSession(BaseModel):
    session_id: str
    title: str
    session_type: str
    status: str
    is_primary_focus: bool
    coverage_level: str | None


class Transition(BaseModel):
    id: int
    trigger_type: str
    trigger_id: str | None
    transition_data: dict[str, Any]
    previous_values: dict[str, Any]
    new_values: dict[str, Any]
    created_at: datetime


class SummaryRow(BaseModel):
    seq: int = Field(description="the seq of the event that completed it")
    kind: Literal["periodic", "final"]
    response_count: int
    summary_text: str
    next_plan_text: str
    outline: dict[str, Any]
    created_at: datetime


class Interactions(Listing):
    interactions: list[Interaction]


class Notes(Listing):
    notes: list[NoteRow]


class FeedbackList(Listing):
    feedback: list[FeedbackRow]


class Artifacts(Listing):
    artifacts: list[ArtifactRow]


class SessionTopics(Listing):
    topics: list[SessionTopic]


class Topics(Listing):
    topics: list[TopicRow]


class TopicSessions(Listing):
    sessions: list[TopicSession]


class Transitions(Listing):
    transitions: list[Transition]


class Summaries(Listing):
    summaries: list[SummaryRow]


class Children(Listing):
    sessions: list[SessionOut]
