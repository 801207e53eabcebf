"""What a session holds: interactions, notes, artifacts, feedback and topics (seeds 000, 002).

Interactions, and notes and feedback sent as live events, are projected from the log;
each reader first brings the projection up to the log (read-your-writes). Notes and
feedback can also be written here; those rows are not in the log.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hub.records.store import Conflict, FeedbackExists, MessageNotFound, NotFound

from ..errors import ApiError, json_response, query_int, read_json_object
from ..session_fields import FieldErrors
from ..sessions import STATUSES, WRITERS, caller, hub_of, load_session
from .common import (
    PARTICIPANTS,
    SESSION_ID,
    ensure_projected,
    listing,
    op,
    page_from,
    records_of,
    row_json,
    want_bool,
    want_choice,
    want_int,
    want_str,
)

NOTE_TYPES = ("observation", "concern", "insight", "technical")
FEEDBACK_TYPES = ("like", "dislike", "regenerate")
COVERAGE = ("introduction", "exploration", "deep_dive", "completion")
_SEQ_MAX = 2**62  # every seq and interaction sequence, as the event validation accepts


async def _body(request: Request) -> dict[str, Any]:
    return await read_json_object(request, hub_of(request).settings.max_body_bytes)


async def interactions(request: Request) -> Response:
    record = await load_session(request, caller(request))
    page = page_from(request, types=("prompt", "response"))
    await ensure_projected(request, record)
    rows, cursor = await records_of(request).content.interactions(record.pk, page)
    return json_response(listing("interactions", [row_json(r) for r in rows], cursor))


async def list_notes(request: Request) -> Response:
    record = await load_session(request, caller(request))
    page = page_from(request, ("important", "followup"), NOTE_TYPES)
    await ensure_projected(request, record)
    rows, cursor = await records_of(request).content.notes(record.pk, page)
    return json_response(listing("notes", [row_json(r) for r in rows], cursor))


async def add_note(request: Request) -> Response:
    principal = caller(request, WRITERS)
    record = await load_session(request, principal)
    body = await _body(request)
    errors = FieldErrors()
    fields = {
        "note_content": want_str(body, errors, "note_content", 10_000, required=True, alias="content"),
        "note_type": want_choice(body, errors, "note_type", NOTE_TYPES),
        "noted_at_interaction_sequence": want_int(
            body, errors, "noted_at_interaction_sequence", 1, _SEQ_MAX, alias="interaction_sequence"
        ),
        "is_important": want_bool(body, errors, "is_important"),
        "requires_followup": want_bool(body, errors, "requires_followup"),
    }
    errors.raise_if_any()
    row = await records_of(request).content.add_note(record.pk, fields, principal.user_id, principal.role)
    return json_response(row_json(row), 201)


async def list_artifacts(request: Request) -> Response:
    record = await load_session(request, caller(request))
    page = page_from(request, ("provisional", "approved"))
    rows, cursor = await records_of(request).catalog.artifacts(record.pk, page)
    return json_response(listing("artifacts", [row_json(r) for r in rows], cursor))


async def add_artifact(request: Request) -> Response:
    principal = caller(request, WRITERS)
    record = await load_session(request, principal)
    body = await _body(request)
    errors = FieldErrors()
    fields: dict[str, Any] = {
        "artifact_type": want_str(body, errors, "artifact_type", 50, required=True),
        "artifact_name": want_str(body, errors, "artifact_name", 200),
        "content": want_str(body, errors, "content", 100_000),
        "topic": want_str(body, errors, "topic", 200),
        "structured_data": body.get("structured_data"),
    }
    if fields["structured_data"] is not None and not isinstance(fields["structured_data"], dict | list):
        errors.add("structured_data", "must be a JSON object or array")
    errors.raise_if_any()
    row = await records_of(request).catalog.add_artifact(record.pk, fields, principal.user_id)
    return json_response(row_json(row), 201)


async def approve_artifact(request: Request) -> Response:
    principal = caller(request, PARTICIPANTS)  # seed 000: the storyteller confirms it
    record = await load_session(request, principal)
    artifact_id = _path_id(request, "artifact_id")
    include = None
    if request.headers.get("content-length") not in (None, "0"):
        body = await _body(request)
        errors = FieldErrors()
        include = want_bool(body, errors, "included_in_synthesis")
        errors.raise_if_any()
    try:
        row = await records_of(request).catalog.approve_artifact(
            record.pk, artifact_id, principal.user_id, include
        )
    except NotFound:
        raise ApiError(404, "not_found", f"artifact {artifact_id} not found") from None
    except Conflict:
        raise ApiError(409, "conflict", f"artifact {artifact_id} is already approved") from None
    return json_response(row_json(row))


def _path_id(request: Request, name: str) -> int:
    raw = request.path_params[name]
    if not raw.isdigit() or int(raw) > _SEQ_MAX:
        raise ApiError(404, "not_found", f"{name.split('_')[0]} '{raw[:50]}' not found")
    return int(raw)


async def list_feedback(request: Request) -> Response:
    record = await load_session(request, caller(request))
    page = page_from(request, types=FEEDBACK_TYPES)
    message_seq = query_int(request, "message_seq", None, 1, _SEQ_MAX)
    await ensure_projected(request, record)
    rows, cursor = await records_of(request).content.feedback(record.pk, page, message_seq)
    return json_response(listing("feedback", [row_json(r) for r in rows], cursor))


async def add_feedback(request: Request) -> Response:
    principal = caller(request, PARTICIPANTS)
    record = await load_session(request, principal)
    body = await _body(request)
    errors = FieldErrors()
    message_seq = want_int(body, errors, "message_seq", 1, _SEQ_MAX, required=True, alias="message_id")
    kind = want_choice(body, errors, "feedback_type", FEEDBACK_TYPES, required=True)
    comment = want_str(body, errors, "comment", 2000)
    errors.raise_if_any()
    assert message_seq is not None and kind is not None
    await ensure_projected(request, record)  # a live feedback event of the same kind counts
    try:
        row = await records_of(request).content.add_feedback(
            record.pk, message_seq, principal.user_id, kind, comment
        )
    except MessageNotFound as exc:
        if exc.found_type is None:
            raise ApiError(404, "not_found", f"message {message_seq} not found in this session") from None
        raise ApiError(
            422,
            "invalid",
            f"message_seq: event {message_seq} is a {exc.found_type}, not a prompt or response",
            {"field": "message_seq"},
        ) from None
    except FeedbackExists:
        raise ApiError(
            409,
            "conflict",
            f"you already gave '{kind}' feedback on message {message_seq}",
            {"feedback_type": kind, "message_seq": message_seq},
        ) from None
    return json_response(
        {
            "success": True,
            "feedback_id": row["id"],
            "message": f"Feedback ({kind}) recorded",
            "feedback": row_json(row),
        },
        201,
    )


async def list_session_topics(request: Request) -> Response:
    record = await load_session(request, caller(request))
    page = page_from(request, types=COVERAGE)
    await ensure_projected(request, record)  # prompts_completed counts projected prompts
    rows, cursor = await records_of(request).catalog.session_topics(record.pk, page)
    return json_response(listing("topics", [row_json(r) for r in rows], cursor))


async def link_topic(request: Request) -> Response:
    principal = caller(request, WRITERS)
    record = await load_session(request, principal)
    body = await _body(request)
    errors = FieldErrors()
    name = want_str(body, errors, "name", 200, required=True, alias="topic")
    fields = {
        "topic_type": want_str(body, errors, "topic_type", 100),
        "description": want_str(body, errors, "description", 4000),
        "is_primary_focus": want_bool(body, errors, "is_primary_focus"),
        "coverage_level": want_choice(body, errors, "coverage_level", COVERAGE),
        "notes": want_str(body, errors, "notes", 10_000),
    }
    errors.raise_if_any()
    assert name is not None
    row = await records_of(request).catalog.link_topic(principal.account_id, record.pk, name, fields)
    return json_response(row_json(row), 201)


async def unlink_topic(request: Request) -> Response:
    principal = caller(request, WRITERS)
    record = await load_session(request, principal)
    topic_id = _path_id(request, "topic_id")
    try:
        await records_of(request).catalog.unlink_topic(record.pk, topic_id)
    except NotFound:
        raise ApiError(404, "not_found", f"topic {topic_id} is not linked to this session") from None
    return json_response({"session_id": record.session_id, "topic_id": topic_id, "linked": False})


async def list_topics(request: Request) -> Response:
    principal = caller(request)
    page = page_from(request)
    rows, cursor = await records_of(request).catalog.topics(principal.account_id, page, principal.sessions)
    return json_response(listing("topics", [row_json(r) for r in rows], cursor))


async def topic_sessions(request: Request) -> Response:
    principal = caller(request)
    topic_id = _path_id(request, "topic_id")
    page = page_from(request, STATUSES)
    rows, cursor = await records_of(request).catalog.topic_sessions(
        principal.account_id, topic_id, page, principal.sessions
    )
    return json_response(listing("sessions", [row_json(r, drop=("id",)) for r in rows], cursor))


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

_WRITE_ERRORS = (400, 401, 403, 404, 413, 422)
_TOPIC_ID = {"name": "topic_id", "in": "path", "required": True, "schema": {"type": "integer"}}
_ARTIFACT_ID = {"name": "artifact_id", "in": "path", "required": True, "schema": {"type": "integer"}}
openapi_paths: dict[str, Any] = {
    f"{_S}/interactions": {
        "get": op("Interactions in sequence (type = prompt|response, time)", params=[SESSION_ID], listed=True)
    },
    f"{_S}/notes": {
        "get": op("Notes (type = note_type, status = important|followup)", params=[SESSION_ID], listed=True),
        "post": op("Add a note", "201", "NoteCreate", [SESSION_ID], _WRITE_ERRORS),
    },
    f"{_S}/artifacts": {
        "get": op(
            "Artifacts (status = provisional|approved, type = artifact_type)",
            params=[SESSION_ID],
            listed=True,
        ),
        "post": op("Add a provisional artifact", "201", "ArtifactCreate", [SESSION_ID], _WRITE_ERRORS),
    },
    f"{_S}/artifacts/{{artifact_id}}/approve": {
        "post": op("Approve an artifact", params=[SESSION_ID, _ARTIFACT_ID], errors=(401, 403, 404, 409, 422))
    },
    f"{_S}/feedback": {
        "get": op("Feedback (type = like|dislike|regenerate)", params=[SESSION_ID], listed=True),
        "post": op(
            "Like, dislike or regenerate a message",
            "201",
            "FeedbackCreate",
            [SESSION_ID],
            (*_WRITE_ERRORS, 409),
        ),
    },
    f"{_S}/topics": {
        "get": op(
            "Linked topics with prompts_completed (type = coverage_level)", params=[SESSION_ID], listed=True
        ),
        "post": op("Link a topic (created on first use)", "201", "TopicLink", [SESSION_ID], _WRITE_ERRORS),
    },
    f"{_S}/topics/{{topic_id}}": {"delete": op("Unlink a topic", params=[SESSION_ID, _TOPIC_ID])},
    "/api/v2/topics": {"get": op("The account's topics (type = topic_type)", listed=True)},
    "/api/v2/topics/{topic_id}/sessions": {
        "get": op("Sessions linked to a topic (status, type)", params=[_TOPIC_ID], listed=True)
    },
}

_STR = {"type": "string"}
_BOOL = {"type": "boolean"}
openapi_schemas: dict[str, Any] = {
    "NoteCreate": {
        "type": "object",
        "required": ["note_content"],
        "properties": {
            "note_content": {"type": "string", "minLength": 1, "maxLength": 10000},
            "note_type": {"type": "string", "enum": list(NOTE_TYPES)},
            "noted_at_interaction_sequence": {"type": "integer", "minimum": 1, "maximum": 2**62},
            "is_important": _BOOL,
            "requires_followup": _BOOL,
        },
    },
    "ArtifactCreate": {
        "type": "object",
        "required": ["artifact_type"],
        "properties": {
            "artifact_type": {"type": "string", "maxLength": 50},
            "artifact_name": {"type": "string", "maxLength": 200},
            "content": _STR,
            "structured_data": {"type": ["object", "array"]},
            "topic": _STR,
        },
    },
    "FeedbackCreate": {
        "type": "object",
        "required": ["message_seq", "feedback_type"],
        "properties": {
            "message_seq": {"type": "integer", "minimum": 1, "description": "seq of a prompt or response"},
            "feedback_type": {"type": "string", "enum": list(FEEDBACK_TYPES)},
            "comment": {"type": "string", "maxLength": 2000},
        },
    },
    "TopicLink": {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "maxLength": 200},
            "topic_type": _STR,
            "description": _STR,
            "is_primary_focus": _BOOL,
            "coverage_level": {"type": "string", "enum": list(COVERAGE)},
            "notes": _STR,
        },
    },
}
