"""What a session holds: interactions, notes, artifacts, feedback and topics (seeds 000, 002).

Interactions, and notes and feedback sent as live events, are projected from the log;
each reader first brings the projection up to the log (read-your-writes). Notes and
feedback can also be written here; those rows are not in the log.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from annotated_types import Len, MaxLen
from pydantic import AliasChoices, BaseModel, BeforeValidator, Field, WithJsonSchema
from pydantic_core import PydanticCustomError
from starlette.requests import Request
from starlette.routing import Route

from hub.connection import Principal
from hub.errors import Conflict, ErrorCode, Invalid, NotFound
from hub.event_data import FeedbackType, NoteType
from hub.records.store import FeedbackExists, MessageNotFound
from hub.store import SessionRecord
from hub.values import STRICT, Seq

from ..api import operation
from ..query import QueryInt, RowId
from ..session_fields import SessionType, Title
from ..session_models import Status
from ..sessions import WRITERS
from .common import (
    PARTICIPANTS,
    AnyType,
    PageQuery,
    ensure_projected,
    listing,
    records_of,
    row_json,
    type_filter,
)
from .rows import (
    ArtifactRow,
    Artifacts,
    FeedbackList,
    FeedbackRow,
    Interactions,
    NoteRow,
    Notes,
    SessionTopic,
    SessionTopics,
    Topics,
    TopicSessions,
)

Coverage = Literal["introduction", "exploration", "deep_dive", "completion"]


def _object_or_array(value: Any) -> Any:
    if value is not None and not isinstance(value, dict | list):
        raise PydanticCustomError("type", "must be a JSON object or array")
    return value


# queries


class InteractionsQuery(PageQuery):
    type: Literal["prompt", "response"] | None = type_filter("interaction_type")


class NotesQuery(PageQuery):
    status: Literal["important", "followup"] | None = None
    type: NoteType | None = type_filter("note_type")


class ArtifactsQuery(PageQuery):
    status: Literal["provisional", "approved"] | None = None
    type: AnyType | None = type_filter("artifact_type")


class FeedbackQuery(PageQuery):
    type: FeedbackType | None = type_filter("feedback_type")
    message_seq: QueryInt[Seq] | None = Field(None, description="only feedback on this message")


class SessionTopicsQuery(PageQuery):
    type: Coverage | None = type_filter("coverage_level")


class TopicsQuery(PageQuery):
    type: AnyType | None = type_filter("topic_type")


class TopicSessionsQuery(PageQuery):
    status: Status | None = None
    type: SessionType | None = type_filter("session_type")


# bodies


class NoteCreate(BaseModel):
    model_config = STRICT

    note_content: Annotated[str, Len(1, 10_000)] = Field(
        validation_alias=AliasChoices("note_content", "content")
    )
    note_type: NoteType | None = None
    noted_at_interaction_sequence: Seq | None = Field(
        None, validation_alias=AliasChoices("noted_at_interaction_sequence", "interaction_sequence")
    )
    is_important: bool | None = None
    requires_followup: bool | None = None


class ArtifactCreate(BaseModel):
    model_config = STRICT

    artifact_type: Annotated[str, Len(1, 50)] = Field(examples=["scene_capture", "timeline_entry"])
    artifact_name: Annotated[str, MaxLen(200)] | None = None
    content: Annotated[str, MaxLen(100_000)] | None = None
    topic: Annotated[str, MaxLen(200)] | None = None
    structured_data: Annotated[
        Any, BeforeValidator(_object_or_array), WithJsonSchema({"type": ["object", "array", "null"]})
    ] = None


class Approval(BaseModel):
    model_config = STRICT

    included_in_synthesis: bool | None = None


class FeedbackCreate(BaseModel):
    model_config = STRICT

    message_seq: Seq = Field(
        validation_alias=AliasChoices("message_seq", "message_id"), description="seq of a prompt or response"
    )
    feedback_type: FeedbackType
    comment: Annotated[str, MaxLen(2000)] | None = None


class TopicLink(BaseModel):
    model_config = STRICT

    name: Title = Field(validation_alias=AliasChoices("name", "topic"), description="created on first use")
    topic_type: Annotated[str, MaxLen(100)] | None = None
    description: Annotated[str, MaxLen(4000)] | None = None
    is_primary_focus: bool | None = None
    coverage_level: Coverage | None = None
    notes: Annotated[str, MaxLen(10_000)] | None = None


class FeedbackAdded(BaseModel):
    success: Literal[True]
    feedback_id: int
    message: str
    feedback: FeedbackRow


class Unlinked(BaseModel):
    session_id: str
    topic_id: int
    linked: Literal[False]


# endpoints


@operation("Interactions in sequence (type = prompt|response, time)", Interactions, expensive=True)
async def interactions(request: Request, record: SessionRecord, query: InteractionsQuery) -> dict[str, Any]:
    await ensure_projected(request, record)
    return listing("interactions", await records_of(request).content.interactions(record.pk, query.page()))


@operation("Notes (type = note_type, status = important|followup)", Notes, expensive=True)
async def list_notes(request: Request, record: SessionRecord, query: NotesQuery) -> dict[str, Any]:
    await ensure_projected(request, record)
    return listing("notes", await records_of(request).content.notes(record.pk, query.page()))


@operation("Add a note", NoteRow, status=201, roles=WRITERS)
async def add_note(
    request: Request, principal: Principal, record: SessionRecord, body: NoteCreate
) -> dict[str, Any]:
    fields = body.model_dump()
    row = await records_of(request).content.add_note(record.pk, fields, principal.user_id, principal.role)
    return row_json(row)


@operation("Artifacts (status = provisional|approved, type = artifact_type)", Artifacts, expensive=True)
async def list_artifacts(request: Request, record: SessionRecord, query: ArtifactsQuery) -> dict[str, Any]:
    return listing("artifacts", await records_of(request).catalog.artifacts(record.pk, query.page()))


@operation("Add a provisional artifact", ArtifactRow, status=201, roles=WRITERS)
async def add_artifact(
    request: Request, principal: Principal, record: SessionRecord, body: ArtifactCreate
) -> dict[str, Any]:
    row = await records_of(request).catalog.add_artifact(record.pk, body.model_dump(), principal.user_id)
    return row_json(row)


# seed 000: the storyteller (a participant) confirms an artifact
@operation("Approve an artifact", ArtifactRow, roles=PARTICIPANTS, errors=(ErrorCode.CONFLICT,))
async def approve_artifact(
    request: Request, principal: Principal, record: SessionRecord, artifact_id: RowId, body: Approval | None
) -> dict[str, Any]:
    include = body.included_in_synthesis if body is not None else None
    catalog = records_of(request).catalog  # no such artifact: 404; approved already: 409
    row = await catalog.approve_artifact(record.pk, artifact_id, principal.user_id, include)
    return row_json(row)


@operation("Feedback (type = like|dislike|regenerate)", FeedbackList, expensive=True)
async def list_feedback(request: Request, record: SessionRecord, query: FeedbackQuery) -> dict[str, Any]:
    await ensure_projected(request, record)
    found = await records_of(request).content.feedback(record.pk, query.page(), query.message_seq)
    return listing("feedback", found)


@operation(
    "Like, dislike or regenerate a message",
    FeedbackAdded,
    status=201,
    roles=PARTICIPANTS,
    errors=(ErrorCode.CONFLICT,),
)
async def add_feedback(
    request: Request, principal: Principal, record: SessionRecord, body: FeedbackCreate
) -> dict[str, Any]:
    message_seq, kind = body.message_seq, body.feedback_type
    await ensure_projected(request, record)  # a live feedback event of the same kind counts
    try:
        row = await records_of(request).content.add_feedback(
            record.pk, message_seq, principal.user_id, kind, body.comment
        )
    except MessageNotFound as exc:
        if exc.found_type is None:
            raise NotFound(f"message {message_seq} not found in this session") from None
        message = f"event {message_seq} is a {exc.found_type}, not a prompt or response"
        problem = {"field": "message_seq", "rule": "message", "message": message}
        raise Invalid(f"message_seq: {message}", {**problem, "errors": [problem]}) from None
    except FeedbackExists:
        raise Conflict(
            f"you already gave '{kind}' feedback on message {message_seq}",
            {"feedback_type": kind, "message_seq": message_seq},
        ) from None
    return {
        "success": True,
        "feedback_id": row["id"],
        "message": f"Feedback ({kind}) recorded",
        "feedback": row_json(row),
    }


@operation("Linked topics with prompts_completed (type = coverage_level)", SessionTopics, expensive=True)
async def list_session_topics(
    request: Request, record: SessionRecord, query: SessionTopicsQuery
) -> dict[str, Any]:
    await ensure_projected(request, record)  # prompts_completed counts projected prompts
    return listing("topics", await records_of(request).catalog.session_topics(record.pk, query.page()))


@operation("Link a topic (created on first use)", SessionTopic, status=201, roles=WRITERS)
async def link_topic(
    request: Request, principal: Principal, record: SessionRecord, body: TopicLink
) -> dict[str, Any]:
    fields = body.model_dump(exclude={"name"})
    await ensure_projected(request, record)  # the answer's prompts_completed counts projected prompts
    row = await records_of(request).catalog.link_topic(principal.account_id, record.pk, body.name, fields)
    return row_json(row)


@operation("Unlink a topic", Unlinked, roles=WRITERS)
async def unlink_topic(request: Request, record: SessionRecord, topic_id: RowId) -> dict[str, Any]:
    await records_of(request).catalog.unlink_topic(record.pk, topic_id)  # not linked: 404
    return {"session_id": record.session_id, "topic_id": topic_id, "linked": False}


@operation("The account's topics (type = topic_type)", Topics, expensive=True)
async def list_topics(request: Request, principal: Principal, query: TopicsQuery) -> dict[str, Any]:
    found = await records_of(request).catalog.topics(principal.account_id, query.page(), principal.sessions)
    return listing("topics", found)


@operation("Sessions linked to a topic (status, type = session_type)", TopicSessions, expensive=True)
async def topic_sessions(
    request: Request, principal: Principal, topic_id: RowId, query: TopicSessionsQuery
) -> dict[str, Any]:
    catalog = records_of(request).catalog
    found = await catalog.topic_sessions(principal.account_id, topic_id, query.page(), principal.sessions)
    return listing("sessions", found, lambda row: row_json(row, drop=("id",)))


_S = "/api/v2/session/{session_id}"
routes = [
    Route(f"{_S}/interactions", interactions, methods=["GET"]),
    Route(f"{_S}/notes", list_notes, methods=["GET"]),
    Route(f"{_S}/notes", add_note, methods=["POST"]),
    Route(f"{_S}/artifacts", list_artifacts, methods=["GET"]),
    Route(f"{_S}/artifacts", add_artifact, methods=["POST"]),
    Route(f"{_S}/artifacts/{{artifact_id}}/approve", approve_artifact, methods=["POST"]),
    Route(f"{_S}/feedback", list_feedback, methods=["GET"]),
    Route(f"{_S}/feedback", add_feedback, methods=["POST"]),
    Route(f"{_S}/topics", list_session_topics, methods=["GET"]),
    Route(f"{_S}/topics", link_topic, methods=["POST"]),
    Route(f"{_S}/topics/{{topic_id}}", unlink_topic, methods=["DELETE"]),
    Route("/api/v2/topics", list_topics, methods=["GET"]),
    Route("/api/v2/topics/{topic_id}/sessions", topic_sessions, methods=["GET"]),
]
