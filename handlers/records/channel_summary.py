"""POST /api/v2/session-summary: seed 003's multi-channel summary.

The body is validated by seed 003's rules table; every rule that fails is reported with
its own `rule` name in a 422 (`details.errors`), so a client can tell "in the future"
from "too old" without parsing messages. The body may be flat (seed 003's API example)
or `{"session_data": {...}, "channels": [...], "publish_immediately": ...}`.
"""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hub.records.channel_summary import CHANNELS, QUALITY_TABLE, quality, render

from ..errors import ApiError, json_response, read_json_object
from ..formats import SESSION_ID_PATTERN, parse_datetime
from ..session_fields import session_types
from ..sessions import caller, hub_of
from .common import op

MAX_AGE = timedelta(days=30)


class RuleErrors:
    def __init__(self) -> None:
        self.errors: list[dict[str, str]] = []

    def add(self, field: str, rule: str, message: str) -> None:
        self.errors.append({"field": field, "rule": rule, "message": message})

    def raise_if_any(self) -> None:
        if self.errors:
            first = self.errors[0]
            raise ApiError(
                422,
                "invalid",
                f"{first['field']}: {first['message']}",
                {"field": first["field"], "rule": first["rule"], "errors": self.errors},
            )


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate(data: dict[str, Any], now: datetime) -> dict[str, Any]:
    """Seed 003's validation rules table, one typed error per broken rule."""
    errors = RuleErrors()
    title = data.get("title")
    if not isinstance(title, str) or not title.strip() or len(title) > 200:
        errors.add("title", "required", "is required: a string of 1 to 200 characters")
    session_id = data.get("session_id")
    if not isinstance(session_id, str) or not SESSION_ID_PATTERN.match(session_id):
        errors.add("session_id", "required", "is required: 1-100 letters, digits, '.', '_', ':' or '-'")
    content = data.get("content")
    if content is not None and (not isinstance(content, str) or len(content) > 10_000):
        errors.add("content", "type", "must be a string of at most 10000 characters")
    session_type = data.get("session_type", "live")
    if session_type not in session_types():
        errors.add("session_type", "choice", "must be one of " + ", ".join(session_types()))

    duration = data.get("session_duration")
    if duration is None:
        errors.add("session_duration", "required", "is required")
    elif not _whole(duration) or not 1 <= duration <= 7200:
        errors.add("session_duration", "range", "must be 1-7200 seconds (max 2 hours)")

    count = data.get("participant_count")
    if count is None:
        errors.add("participant_count", "required", "is required")
    elif not _whole(count) or not 1 <= count <= 1000:
        errors.add("participant_count", "range", "must be 1-1000 participants")
    elif session_type == "workshop" and count < 5:
        errors.add("participant_count", "workshop_minimum", "must be at least 5 for workshops")

    techniques = data.get("breathing_techniques")
    if techniques is None:
        errors.add("breathing_techniques", "required", "is required")
    elif not isinstance(techniques, list) or not all(isinstance(t, str) and t.strip() for t in techniques):
        errors.add("breathing_techniques", "type", "must be a list of non-empty strings")
    elif len(techniques) < 1:
        errors.add("breathing_techniques", "min_items", "must hold at least 1 technique")
    elif len(techniques) > 10:
        errors.add("breathing_techniques", "max_items", "must hold at most 10 techniques")

    hrv = data.get("average_hrv_improvement")
    if hrv is not None and (not _number(hrv) or not -100 <= hrv <= 200):
        errors.add("average_hrv_improvement", "range", "must be between -100 and 200 (percent)")

    raw_date = data.get("session_date")
    session_date = parse_datetime(raw_date) if raw_date is not None else None
    if raw_date is None:
        errors.add("session_date", "required", "is required")
    elif session_date is None:
        errors.add("session_date", "type", "must be an ISO-8601 date-time with a time zone")
    elif session_date > now:
        errors.add("session_date", "not_future", "must not be in the future")
    elif now - session_date > MAX_AGE:
        errors.add("session_date", "max_age", "must be at most 30 days old")

    instructor = data.get("instructor_name")
    if instructor is not None and (not isinstance(instructor, str) or len(instructor) > 100):
        errors.add("instructor_name", "type", "must be a string of at most 100 characters")
    elif session_type == "live" and not (isinstance(instructor, str) and instructor.strip()):
        errors.add("instructor_name", "required_for_live", "is required for live sessions")

    achievements = data.get("key_achievements")
    if achievements is not None and (
        not isinstance(achievements, list)
        or len(achievements) > 20
        or not all(isinstance(a, str) and len(a) <= 500 for a in achievements)
    ):
        errors.add("key_achievements", "type", "must be a list of at most 20 strings")
    feedback = data.get("participant_feedback")
    if feedback is not None and not (
        isinstance(feedback, dict) and isinstance(feedback.get("items", []), list)
    ):
        errors.add("participant_feedback", "type", "must be an object with a list of items")
    errors.raise_if_any()
    return {**data, "session_type": session_type}


def _options(body: dict[str, Any]) -> tuple[dict[str, Any], list[str], bool]:
    data = body.get("session_data", body)
    if not isinstance(data, dict):
        raise ApiError(422, "invalid", "session_data must be a JSON object", {"field": "session_data"})
    errors = RuleErrors()
    channels = body.get("channels", list(CHANNELS))
    if not isinstance(channels, list) or not channels or not all(c in CHANNELS for c in channels):
        errors.add("channels", "choice", "must be a non-empty list of " + ", ".join(CHANNELS))
        channels = []
    publish = body.get("publish_immediately", False)
    if not isinstance(publish, bool):
        errors.add("publish_immediately", "type", "must be true or false")
    errors.raise_if_any()
    return data, list(dict.fromkeys(channels)), publish


async def session_summary(request: Request) -> Response:
    caller(request)  # any authenticated caller; nothing of the account is read
    body = await read_json_object(request, hub_of(request).settings.max_body_bytes)
    data, channels, publish = _options(body)
    data = validate(data, datetime.now(UTC))
    score, action = quality(data.get("average_hrv_improvement"))
    content = render(data, channels)
    response: dict[str, Any] = {
        "status": "published" if publish else "preview",
        "content_id": str(uuid.uuid4()),
        "session_id": data["session_id"],
        "preview_urls": {"session": f"/sessions/{data['session_id']}"},
        "quality_score": score,
        "quality_action": action,
        "channels": channels,
        **content,
    }
    # Seed 003's response names for the same content.
    if "email" in content:
        response["newsletter"] = content["email"]
    if "web" in content:
        response["web_update"] = content["web"]
    return json_response(response)


routes = [Route("/api/v2/session-summary", session_summary, methods=["POST"])]

openapi_paths: dict[str, Any] = {
    "/api/v2/session-summary": {
        "post": op(
            "Seed 003's multi-channel summary (email, web, social) with the HRV quality score",
            body="SessionSummaryRequest",
            errors=(400, 401, 403, 413, 422),
        )
    }
}

openapi_schemas: dict[str, Any] = {
    "SessionSummaryRequest": {
        "type": "object",
        "description": "Flat session data, or {session_data, channels, publish_immediately}. Quality "
        "score by average_hrv_improvement: "
        + "; ".join(f"{test} -> {score}" for test, score, _ in QUALITY_TABLE),
        "required": ["title", "session_id", "session_duration", "participant_count", "breathing_techniques"],
        "properties": {
            "title": {"type": "string", "maxLength": 200},
            "content": {"type": "string"},
            "session_id": {"type": "string"},
            "session_duration": {"type": "integer", "minimum": 1, "maximum": 7200},
            "participant_count": {"type": "integer", "minimum": 1, "maximum": 1000},
            "breathing_techniques": {
                "type": "array",
                "items": {"type": "string"},
                "minItems": 1,
                "maxItems": 10,
            },
            "average_hrv_improvement": {"type": "number", "minimum": -100, "maximum": 200},
            "session_type": {"type": "string", "default": "live"},
            "instructor_name": {"type": "string", "description": "required for live sessions"},
            "session_date": {
                "type": "string",
                "format": "date-time",
                "description": "not future, max 30 days",
            },
            "key_achievements": {"type": "array", "items": {"type": "string"}},
            "participant_feedback": {"type": "object"},
            "metrics_summary": {"type": "object"},
            "channels": {"type": "array", "items": {"type": "string", "enum": list(CHANNELS)}},
            "publish_immediately": {"type": "boolean"},
        },
    }
}
